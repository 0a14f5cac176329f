//! The Firehose data-transformation handler and its Lambda entry point
