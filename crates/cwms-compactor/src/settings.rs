//! The compactor Lambda's settings, from environment variables read once at cold start.
//!
//! Like the transform's, every `CWMS_` variable must be known and well-formed: a typo stops the
//! cold start with a message naming it.

use cwms_parquet::Codec;

/// A setting that is missing, unknown or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    #[error("missing setting {0}")]
    Missing(&'static str),
    #[error("unknown setting {name} (known: {known})", known = KNOWN.join(", "))]
    Unknown { name: String },
    #[error("setting {name}={value:?}: {reason}")]
    Invalid { name: String, value: String, reason: String },
}

const RAW: &str = "CWMS_RAW";
const LAKE: &str = "CWMS_LAKE";
const GLUE_DATABASE: &str = "CWMS_GLUE_DATABASE";
const GLUE_TABLE_PREFIX: &str = "CWMS_GLUE_TABLE_PREFIX";
const CODEC: &str = "CWMS_CODEC";
const MAX_POINTS: &str = "CWMS_MAX_POINTS";
const MAX_DECOMPRESSED_BYTES: &str = "CWMS_MAX_DECOMPRESSED_BYTES";
const KNOWN: [&str; 7] = [RAW, LAKE, GLUE_DATABASE, GLUE_TABLE_PREFIX, CODEC, MAX_POINTS, MAX_DECOMPRESSED_BYTES];

/// Where the compactor reads and writes, and what it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `s3://bucket/raw/` (or a directory).
    pub raw: String,
    /// `s3://bucket/lake/` (or a directory).
    pub lake: String,
    /// Glue database and table prefix, when partitions are to be registered.
    pub glue: Option<(String, String)>,
    pub codec: Codec,
    /// Merged datums held in memory at most (see `Options::max_points`); size it with the
    /// function's memory.
    pub max_points: usize,
    /// Cap on one raw object's decompressed size (see `Options::max_decompressed_bytes`).
    pub max_decompressed_bytes: u64,
}

impl Settings {
    /// Reads `(name, value)` pairs; names not starting with `CWMS_` are ignored.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Settings, SettingsError> {
        let (mut raw, mut lake, mut database, mut prefix, mut codec) = (None, None, None, String::new(), Codec::default());
        let mut max_points = crate::DEFAULT_MAX_POINTS;
        let mut max_decompressed_bytes = crate::DEFAULT_MAX_DECOMPRESSED_BYTES;
        for (name, value) in vars {
            if !name.starts_with("CWMS_") {
                continue;
            }
            match name.as_str() {
                RAW => raw = Some(value),
                LAKE => lake = Some(value),
                GLUE_DATABASE => database = Some(value).filter(|v| !v.is_empty()),
                GLUE_TABLE_PREFIX => prefix = value,
                CODEC => {
                    codec = value.parse().map_err(|e: cwms_parquet::Error| SettingsError::Invalid {
                        name: name.clone(),
                        value: value.clone(),
                        reason: e.to_string(),
                    })?
                }
                MAX_POINTS => {
                    max_points = value.trim().parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| SettingsError::Invalid {
                        name: name.clone(),
                        value: value.clone(),
                        reason: "expected a positive whole number of datums".into(),
                    })?
                }
                MAX_DECOMPRESSED_BYTES => {
                    max_decompressed_bytes = value.trim().parse().ok().filter(|&n: &u64| n > 0).ok_or_else(|| SettingsError::Invalid {
                        name: name.clone(),
                        value: value.clone(),
                        reason: "expected a positive whole number of bytes".into(),
                    })?
                }
                _ => return Err(SettingsError::Unknown { name }),
            }
        }
        let raw = raw.filter(|v| !v.is_empty()).ok_or(SettingsError::Missing(RAW))?;
        let lake = lake.filter(|v| !v.is_empty()).ok_or(SettingsError::Missing(LAKE))?;
        if database.is_some() && !lake.starts_with("s3://") {
            return Err(SettingsError::Invalid { name: LAKE.into(), value: lake, reason: "Glue registration needs an s3:// lake".into() });
        }
        if database.is_none() && !prefix.is_empty() {
            return Err(SettingsError::Invalid {
                name: GLUE_TABLE_PREFIX.into(),
                value: prefix,
                reason: format!("a table prefix without {GLUE_DATABASE} would be ignored"),
            });
        }
        Ok(Settings { raw, lake, glue: database.map(|d| (d, prefix)), codec, max_points, max_decompressed_bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(vars: &[(&str, &str)]) -> Result<Settings, String> {
        Settings::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).map_err(|e| e.to_string())
    }

    #[test]
    fn settings() {
        let s =
            check(&[("CWMS_RAW", "s3://b/raw/"), ("CWMS_LAKE", "s3://b/lake/"), ("CWMS_GLUE_DATABASE", "cwms"), ("HOME", "/")]).unwrap();
        assert_eq!(s.glue, Some(("cwms".into(), String::new())));
        assert_eq!(check(&[("CWMS_LAKE", "x")]).unwrap_err(), "missing setting CWMS_RAW");
        assert_eq!(check(&[("CWMS_RAW", "x")]).unwrap_err(), "missing setting CWMS_LAKE");
        assert!(
            check(&[("CWMS_RAW", "x"), ("CWMS_LAKE", "y"), ("CWMS_LAKES", "z")]).unwrap_err().starts_with("unknown setting CWMS_LAKES")
        );
        assert!(
            check(&[("CWMS_RAW", "x"), ("CWMS_LAKE", "y"), ("CWMS_CODEC", "lz5")]).unwrap_err().starts_with("setting CWMS_CODEC=\"lz5\": ")
        );
        assert_eq!(check(&[("CWMS_RAW", "x"), ("CWMS_LAKE", "y"), ("CWMS_MAX_POINTS", "250000")]).unwrap().max_points, 250_000);
        for bad in ["0", "-1", "1e6", ""] {
            assert_eq!(
                check(&[("CWMS_RAW", "x"), ("CWMS_LAKE", "y"), ("CWMS_MAX_POINTS", bad)]).unwrap_err(),
                format!("setting CWMS_MAX_POINTS={bad:?}: expected a positive whole number of datums")
            );
        }
        assert_eq!(
            check(&[("CWMS_RAW", "x"), ("CWMS_LAKE", "y"), ("CWMS_MAX_DECOMPRESSED_BYTES", "1073741824")]).unwrap().max_decompressed_bytes,
            1 << 30
        );
        assert_eq!(check(&[("CWMS_RAW", "x"), ("CWMS_LAKE", "y")]).unwrap().max_decompressed_bytes, crate::DEFAULT_MAX_DECOMPRESSED_BYTES);
        for bad in ["0", "-1", "1GB", "1.5", ""] {
            assert_eq!(
                check(&[("CWMS_RAW", "x"), ("CWMS_LAKE", "y"), ("CWMS_MAX_DECOMPRESSED_BYTES", bad)]).unwrap_err(),
                format!("setting CWMS_MAX_DECOMPRESSED_BYTES={bad:?}: expected a positive whole number of bytes")
            );
        }
        assert_eq!(
            check(&[("CWMS_RAW", "x"), ("CWMS_LAKE", "y"), ("CWMS_GLUE_TABLE_PREFIX", "p_")]).unwrap_err(),
            "setting CWMS_GLUE_TABLE_PREFIX=\"p_\": a table prefix without CWMS_GLUE_DATABASE would be ignored"
        );
        assert_eq!(
            check(&[("CWMS_RAW", "x"), ("CWMS_LAKE", "/tmp/lake"), ("CWMS_GLUE_DATABASE", "db")]).unwrap_err(),
            "setting CWMS_LAKE=\"/tmp/lake\": Glue registration needs an s3:// lake"
        );
    }
}
