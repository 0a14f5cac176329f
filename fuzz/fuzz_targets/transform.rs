//! The `transform` target: see `cwms_fuzz::transform` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cwms_fuzz::transform(data));
