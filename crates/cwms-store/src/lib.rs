//! Object storage behind one small trait: a local directory or S3
