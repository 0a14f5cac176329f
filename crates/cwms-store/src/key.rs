//! The rules every store applies to keys.
//!
//! S3 accepts nearly any string as a key, but a local directory does not: `..` would escape the
//! root, an empty segment or a trailing `/` names a directory rather than a file, and a backslash
//! is a separator on Windows. Applying the same rules on S3 keeps a lake portable between the two,
//! and rejects early the keys that S3-compatible servers on a file system (s3s-fs) mishandle.

use crate::{Error, Result};

/// Checks that `key` names an object the same way in every store.
///
/// A key is one or more `/`-separated segments; no segment is empty, `.` or `..`, and the key
/// holds no backslash and no NUL. So a key never starts or ends with `/`.
///
/// # Errors
///
/// [`Error::InvalidKey`], saying which rule the key breaks.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(invalid(key, "the key is empty"));
    }
    check_segments(key, key.split('/'))
}

/// Checks a listing prefix: the segments before its last `/` must be valid key segments (they
/// name directories), while the part after it is only matched against the start of file names
/// and may be anything but a backslash or NUL. The empty prefix lists everything.
///
/// # Errors
///
/// [`Error::InvalidKey`], saying which rule the prefix breaks.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    let (dirs, rest) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    if rest.contains(['\\', '\0']) {
        return Err(invalid(prefix, "the prefix holds a backslash or a NUL"));
    }
    if prefix.contains('/') {
        if dirs.is_empty() {
            return Err(invalid(prefix, "the prefix starts with `/`"));
        }
        check_segments(prefix, dirs.split('/'))?;
    }
    Ok(())
}

fn check_segments<'a>(key: &str, mut segments: impl Iterator<Item = &'a str>) -> Result<()> {
    segments.try_for_each(|segment| match segment {
        "" => Err(invalid(key, "the key has an empty segment (a leading, trailing or double `/`)")),
        "." | ".." => Err(invalid(key, "the key has a `.` or `..` segment")),
        s if s.contains(['\\', '\0']) => Err(invalid(key, "the key holds a backslash or a NUL")),
        _ => Ok(()),
    })
}

fn invalid(key: &str, reason: &'static str) -> Error {
    Error::InvalidKey { key: key.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, expected: Result<(), &str>) {
        let actual = validate_key(key).map_err(|err| err.to_string());
        assert_eq!(actual, expected.map_err(str::to_owned), "key {key:?}");
    }

    fn check_prefix(prefix: &str, expected: Result<(), &str>) {
        let actual = validate_prefix(prefix).map_err(|err| err.to_string());
        assert_eq!(actual, expected.map_err(str::to_owned), "prefix {prefix:?}");
    }

    #[test]
    fn keys() {
        check("a", Ok(()));
        check("lake/metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/h=03.parquet", Ok(()));
        check(".hidden/..x/a.b", Ok(()));
        check("", Err(r#"invalid object key "": the key is empty"#));
        check("/a", Err(r#"invalid object key "/a": the key has an empty segment (a leading, trailing or double `/`)"#));
        check("a/", Err(r#"invalid object key "a/": the key has an empty segment (a leading, trailing or double `/`)"#));
        check("a//b", Err(r#"invalid object key "a//b": the key has an empty segment (a leading, trailing or double `/`)"#));
        check("../a", Err(r#"invalid object key "../a": the key has a `.` or `..` segment"#));
        check("a/./b", Err(r#"invalid object key "a/./b": the key has a `.` or `..` segment"#));
        check(r"a\b", Err(r#"invalid object key "a\\b": the key holds a backslash or a NUL"#));
        check("a\0", Err(r#"invalid object key "a\0": the key holds a backslash or a NUL"#));
    }

    #[test]
    fn prefixes() {
        check_prefix("", Ok(()));
        check_prefix("raw", Ok(()));
        check_prefix("raw/", Ok(()));
        check_prefix("raw/2026/11/2", Ok(()));
        check_prefix("..", Ok(()));
        check_prefix("/raw", Err(r#"invalid object key "/raw": the prefix starts with `/`"#));
        check_prefix("../raw", Err(r#"invalid object key "../raw": the key has a `.` or `..` segment"#));
        check_prefix("raw//x", Err(r#"invalid object key "raw//x": the key has an empty segment (a leading, trailing or double `/`)"#));
        check_prefix(r"raw\x", Err(r#"invalid object key "raw\\x": the prefix holds a backslash or a NUL"#));
    }
}
