//! Integration tests.

mod firehose;
mod lake;
mod lambda;
mod run;
mod sample_data;
mod sql;
mod store;
