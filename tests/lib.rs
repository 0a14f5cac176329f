//! Helpers shared by the integration tests.

pub mod lambda_emulator;
pub mod proxy;
pub mod servers;
pub mod util;
