//! The `decode` target: see `cwms_fuzz::decode` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cwms_fuzz::decode(data));
