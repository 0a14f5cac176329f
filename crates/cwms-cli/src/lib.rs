//! The cwms command: run, generate, transform, compact, replay, redrive
