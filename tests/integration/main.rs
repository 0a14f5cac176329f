//! Integration tests.

mod firehose;
mod lake;
mod lambda;
mod sql;
mod store;
