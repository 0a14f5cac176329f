//! Integration tests.

mod cli;
mod concurrent;
mod deployed;
mod firehose;
mod fuzz_regressions;
mod lake;
mod lambda;
mod otel;
mod readers;
mod run;
mod s3_faults;
mod sample_data;
mod serve;
mod sql;
mod store;
mod tidy;
