//! Configuration from environment variables, read once at cold start.
//!
//! Every `CWMS_` variable must be one this function knows and must parse: a typo in a deployed
//! setting stops the cold start with a message instead of being silently ignored.

use cwms_model::OutputFormat;
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::MAX_RESPONSE_BYTES;

/// The default cap on one gzip-wrapped record's decompressed size: 32 MiB.
///
/// A Firehose record is at most 1,000 KiB; CloudWatch's JSON compresses about tenfold, so an
/// honest record inflates to about 10 MB, and no record whose normalized lines pass 6 MB can be
/// `Ok` in a 6 MB response anyway. The record and its normalized lines are held at once, so 32 MiB
/// keeps a bomb's cost within the template's 512 MB function with room to spare.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 32 << 20;

/// A setting that is unknown or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("unknown setting {name} (known: {known})", known = KNOWN.join(", "))]
    Unknown { name: String },
    #[error("setting {name}={value:?}: {reason}")]
    Invalid { name: String, value: String, reason: String },
}

const INCLUDE_NAMESPACES: &str = "CWMS_INCLUDE_NAMESPACES";
const EXCLUDE_NAMESPACES: &str = "CWMS_EXCLUDE_NAMESPACES";
const INCLUDE_METRICS: &str = "CWMS_INCLUDE_METRICS";
const EXCLUDE_METRICS: &str = "CWMS_EXCLUDE_METRICS";
const MAX_DECOMPRESSED_BYTES: &str = "CWMS_MAX_DECOMPRESSED_BYTES";
const MAX_RESPONSE: &str = "CWMS_MAX_RESPONSE_BYTES";
const STREAM_FORMAT: &str = "CWMS_STREAM_FORMAT";
const KNOWN: [&str; 7] =
    [INCLUDE_NAMESPACES, EXCLUDE_NAMESPACES, INCLUDE_METRICS, EXCLUDE_METRICS, MAX_DECOMPRESSED_BYTES, MAX_RESPONSE, STREAM_FORMAT];

/// The handler's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub filters: Filters,
    /// Cap on the decompressed size of one gzip-wrapped record.
    pub max_decompressed_bytes: usize,
    /// Cap on the serialized response (Lambda's limit is 6 MB).
    pub max_response_bytes: usize,
    /// The records' format, when set (`CWMS_STREAM_FORMAT`: CloudWatch's `OutputFormat` names, or
    /// `auto`, the default): `None` tells each record's format by its bytes. Set to an
    /// OpenTelemetry version, a data point of the other version fails its record.
    pub stream_format: Option<OutputFormat>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            filters: Filters::default(),
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            max_response_bytes: MAX_RESPONSE_BYTES,
            stream_format: None,
        }
    }
}

/// Include and exclude filters by namespace and metric name (comma-separated globs, where `*`
/// also matches `/`: `AWS/*` matches every AWS namespace). A datum is kept when it matches the
/// include lists (an empty list includes everything) and matches no exclude list.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    include_namespaces: Option<GlobSet>,
    exclude_namespaces: Option<GlobSet>,
    include_metrics: Option<GlobSet>,
    exclude_metrics: Option<GlobSet>,
}

impl Filters {
    /// True when a datum of this namespace and metric passes every filter.
    pub fn keep(&self, namespace: &str, metric_name: &str) -> bool {
        let included = |set: &Option<GlobSet>, s: &str| set.as_ref().is_none_or(|g| g.is_match(s));
        let excluded = |set: &Option<GlobSet>, s: &str| set.as_ref().is_some_and(|g| g.is_match(s));
        included(&self.include_namespaces, namespace)
            && included(&self.include_metrics, metric_name)
            && !excluded(&self.exclude_namespaces, namespace)
            && !excluded(&self.exclude_metrics, metric_name)
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(std::env::vars())
    }

    /// Reads the configuration from `(name, value)` pairs; names not starting with `CWMS_` are ignored.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        for (name, value) in vars {
            if !name.starts_with("CWMS_") {
                continue;
            }
            let invalid = |reason: String| ConfigError::Invalid { name: name.clone(), value: value.clone(), reason };
            match name.as_str() {
                INCLUDE_NAMESPACES => config.filters.include_namespaces = globs(&value).map_err(invalid)?,
                EXCLUDE_NAMESPACES => config.filters.exclude_namespaces = globs(&value).map_err(invalid)?,
                INCLUDE_METRICS => config.filters.include_metrics = globs(&value).map_err(invalid)?,
                EXCLUDE_METRICS => config.filters.exclude_metrics = globs(&value).map_err(invalid)?,
                MAX_DECOMPRESSED_BYTES => config.max_decompressed_bytes = positive(&value).map_err(invalid)?,
                MAX_RESPONSE => {
                    let bytes = positive(&value).map_err(&invalid)?;
                    if bytes > MAX_RESPONSE_BYTES {
                        return Err(invalid(format!("must not exceed {MAX_RESPONSE_BYTES}, Lambda's response limit")));
                    }
                    config.max_response_bytes = bytes;
                }
                STREAM_FORMAT => config.stream_format = stream_format(&value).map_err(invalid)?,
                _ => return Err(ConfigError::Unknown { name }),
            }
        }
        Ok(config)
    }
}

/// A comma-separated list of globs; empty text means "no filter".
fn globs(value: &str) -> Result<Option<GlobSet>, String> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for (i, pattern) in value.split(',').map(str::trim).enumerate() {
        if pattern.is_empty() {
            return Err(format!("item {} of the list is empty", i + 1));
        }
        builder.add(Glob::new(pattern).map_err(|e| format!("item {} ({pattern:?}): {e}", i + 1))?);
    }
    builder.build().map(Some).map_err(|e| e.to_string())
}

/// `auto` (or nothing) or one of CloudWatch's output format names.
fn stream_format(value: &str) -> Result<Option<OutputFormat>, String> {
    match value.trim() {
        "" | "auto" => Ok(None),
        name => name.parse().map(Some).map_err(|_| "expected auto, json, opentelemetry1.0 or opentelemetry0.7".to_owned()),
    }
}

fn positive(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(0) => Err("must be greater than zero".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number of bytes: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).map_err(|e| e.to_string())
    }

    fn check(vars: &[(&str, &str)], kept: &[(&'static str, &'static str)], dropped: &[(&'static str, &'static str)]) {
        let config = config(vars).unwrap();
        for (ns, m) in kept {
            assert!(config.filters.keep(ns, m), "{ns} {m} should be kept with {vars:?}");
        }
        for (ns, m) in dropped {
            assert!(!config.filters.keep(ns, m), "{ns} {m} should be dropped with {vars:?}");
        }
    }

    #[test]
    fn filters() {
        check(&[], &[("AWS/EC2", "CPUUtilization")], &[]);
        check(&[("PATH", "/bin"), ("CWMS_INCLUDE_NAMESPACES", "")], &[("AWS/EC2", "CPUUtilization")], &[]);
        check(&[("CWMS_INCLUDE_NAMESPACES", "AWS/*")], &[("AWS/EC2", "x"), ("AWS/CloudWatch/MetricStreams", "x")], &[("App", "x")]);
        check(&[("CWMS_EXCLUDE_NAMESPACES", "AWS/Usage, AWS/Logs")], &[("AWS/EC2", "x")], &[("AWS/Usage", "x"), ("AWS/Logs", "x")]);
        check(
            &[("CWMS_INCLUDE_NAMESPACES", "AWS/*"), ("CWMS_EXCLUDE_METRICS", "StatusCheck*")],
            &[("AWS/EC2", "CPUUtilization")],
            &[("AWS/EC2", "StatusCheckFailed"), ("App", "CPUUtilization")],
        );
        check(&[("CWMS_INCLUDE_METRICS", "CPU*,Disk*")], &[("A", "CPUUtilization"), ("A", "DiskWriteOps")], &[("A", "NetworkIn")]);
    }

    #[test]
    fn bad_settings_are_named() {
        assert_eq!(
            config(&[("CWMS_INCLUDE_NAMESPACE", "AWS/*")]).unwrap_err(),
            "unknown setting CWMS_INCLUDE_NAMESPACE (known: CWMS_INCLUDE_NAMESPACES, CWMS_EXCLUDE_NAMESPACES, CWMS_INCLUDE_METRICS, CWMS_EXCLUDE_METRICS, CWMS_MAX_DECOMPRESSED_BYTES, CWMS_MAX_RESPONSE_BYTES, CWMS_STREAM_FORMAT)"
        );
        assert_eq!(
            config(&[("CWMS_MAX_DECOMPRESSED_BYTES", "10MB")]).unwrap_err(),
            "setting CWMS_MAX_DECOMPRESSED_BYTES=\"10MB\": not a whole number of bytes: invalid digit found in string"
        );
        assert_eq!(
            config(&[("CWMS_MAX_DECOMPRESSED_BYTES", "0")]).unwrap_err(),
            "setting CWMS_MAX_DECOMPRESSED_BYTES=\"0\": must be greater than zero"
        );
        assert_eq!(
            config(&[("CWMS_MAX_RESPONSE_BYTES", "7000000")]).unwrap_err(),
            "setting CWMS_MAX_RESPONSE_BYTES=\"7000000\": must not exceed 6000000, Lambda's response limit"
        );
        assert_eq!(
            config(&[("CWMS_EXCLUDE_METRICS", "a,,b")]).unwrap_err(),
            "setting CWMS_EXCLUDE_METRICS=\"a,,b\": item 2 of the list is empty"
        );
        assert!(
            config(&[("CWMS_EXCLUDE_METRICS", "a[")]).unwrap_err().starts_with("setting CWMS_EXCLUDE_METRICS=\"a[\": item 1 (\"a[\"): ")
        );
        assert_eq!(config(&[("CWMS_MAX_DECOMPRESSED_BYTES", "1048576")]).unwrap().max_decompressed_bytes, 1 << 20);
        assert_eq!(
            config(&[("CWMS_STREAM_FORMAT", "opentelemetry1")]).unwrap_err(),
            "setting CWMS_STREAM_FORMAT=\"opentelemetry1\": expected auto, json, opentelemetry1.0 or opentelemetry0.7"
        );
    }

    #[test]
    fn stream_formats() {
        let format = |value: &str| config(&[("CWMS_STREAM_FORMAT", value)]).unwrap().stream_format;
        assert_eq!(config(&[]).unwrap().stream_format, None);
        assert_eq!(format("auto"), None);
        assert_eq!(format(""), None);
        assert_eq!(format("json"), Some(OutputFormat::Json));
        assert_eq!(format("opentelemetry1.0"), Some(OutputFormat::OpenTelemetry1_0));
        assert_eq!(format(" opentelemetry0.7 "), Some(OutputFormat::OpenTelemetry0_7));
    }
}
