//! The `checkpoint` target: see `cwms_fuzz::checkpoint` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cwms_fuzz::checkpoint(data));
