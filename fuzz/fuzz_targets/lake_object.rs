//! The `lake_object` target: see `cwms_fuzz::lake_object` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cwms_fuzz::lake_object(data));
