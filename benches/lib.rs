//! Shared bench data generation.
