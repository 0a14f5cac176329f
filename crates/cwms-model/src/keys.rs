//! The keys that identify a series in the lake: `dimension_key` and `series_id`.

use xxhash_rust::xxh3::Xxh3;

/// The canonical text form of a set of dimensions: `Name=Value` pairs sorted by name (byte order),
/// joined with `,`, where `\`, `,` and `=` inside names and values are escaped with `\`.
///
/// It is a plain string, so every engine can filter and group on it, including a Redshift COPY
/// into a `VARCHAR`. An empty set of dimensions gives the empty string.
pub fn dimension_key<'a>(dimensions: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = dimensions.into_iter().collect();
    pairs.sort_unstable();
    let mut key = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        escape_into(&mut key, name);
        key.push('=');
        escape_into(&mut key, value);
    }
    key
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Why a string is not a canonical dimension key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimensionKeyError {
    pub key: String,
    pub reason: &'static str,
}

impl std::fmt::Display for DimensionKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dimension key {:?}: {}", self.key, self.reason)
    }
}

impl std::error::Error for DimensionKeyError {}

/// Splits a canonical dimension key back into its pairs (the inverse of [`dimension_key`]).
pub fn parse_dimension_key(key: &str) -> Result<Vec<(String, String)>, DimensionKeyError> {
    let err = |reason| DimensionKeyError { key: key.to_owned(), reason };
    let mut pairs = Vec::new();
    if key.is_empty() {
        return Ok(pairs);
    }
    let (mut name, mut value, mut in_value, mut escaped) = (String::new(), String::new(), false, false);
    for c in key.chars() {
        let target = if in_value { &mut value } else { &mut name };
        match (escaped, c) {
            (true, _) => {
                target.push(c);
                escaped = false;
            }
            (false, '\\') => escaped = true,
            (false, '=') if !in_value => in_value = true,
            (false, '=') => return Err(err("unescaped `=` inside a value")),
            (false, ',') if in_value => {
                pairs.push((std::mem::take(&mut name), std::mem::take(&mut value)));
                in_value = false;
            }
            (false, ',') => return Err(err("pair without `=`")),
            (false, _) => target.push(c),
        }
    }
    if escaped {
        return Err(err("dangling `\\` at the end"));
    }
    if !in_value {
        return Err(err("pair without `=`"));
    }
    pairs.push((name, value));
    Ok(pairs)
}

/// The stable 64-bit fingerprint of a series.
///
/// Algorithm (fixed; the lake depends on it): XXH3-64 with seed 0 over the concatenation, for each
/// of `account_id`, `region`, `namespace`, `metric_name` and `dimension_key` in that order, of the
/// field's UTF-8 length as a 4-byte little-endian unsigned integer followed by its UTF-8 bytes.
/// The 64-bit result is reinterpreted as a signed integer (two's complement), since Redshift has
/// no unsigned types. The length prefixes keep `("ab","c")` and `("a","bc")` apart.
pub fn series_id(account_id: &str, region: &str, namespace: &str, metric_name: &str, dimension_key: &str) -> i64 {
    let mut hasher = Xxh3::new();
    for field in [account_id, region, namespace, metric_name, dimension_key] {
        hasher.update(&(field.len() as u32).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.digest() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pairs: &[(&str, &str)], expected: &str) {
        let key = dimension_key(pairs.iter().copied());
        assert_eq!(key, expected);
        let mut sorted: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        sorted.sort();
        assert_eq!(parse_dimension_key(&key).unwrap(), sorted, "round trip of {key:?}");
    }

    #[test]
    fn dimension_keys() {
        check(&[], "");
        check(&[("InstanceId", "i-1")], "InstanceId=i-1");
        check(&[("b", "2"), ("a", "1")], "a=1,b=2");
        check(&[("a=b", "c,d"), ("e\\", "")], "a\\=b=c\\,d,e\\\\=");
        check(&[("Name", "")], "Name=");
    }

    #[test]
    fn malformed_dimension_keys_are_named() {
        for bad in ["a", "a=1,b", "a=1=2", "a=\\"] {
            let e = parse_dimension_key(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn series_id_is_stable_and_separates_fields() {
        // The value is part of the lake's contract: it must never change between releases. These
        // literals were computed independently (Python's `xxhash.xxh3_64` over the documented
        // length-prefixed fields), so flipping the prefix's byte order, seeding the hash or
        // dropping a field fails here.
        assert_eq!(series_id("1234567890", "us-east-1", "AWS/EC2", "CPUUtilization", "InstanceId=i-1"), -9_074_687_097_455_167_890);
        assert_eq!(series_id("ab", "c", "n", "m", ""), -4_649_674_148_394_303_702);
        assert_eq!(series_id("a", "bc", "n", "m", ""), 7_770_130_956_464_768_746);
        assert_eq!(series_id("a", "r", "n", "m", ""), -5_889_417_190_847_247_340);
        assert_eq!(
            series_id("123456789012", "eu-west-1", "My App/Prod:v1", "Latency", r"Path=/api/v1\,items\=5,Stage=prod"),
            -3_050_104_129_268_659_313
        );
        assert_ne!(series_id("ab", "c", "n", "m", ""), series_id("a", "bc", "n", "m", ""));
        assert_ne!(series_id("a", "r", "n", "m", "x=1"), series_id("a", "r", "n", "m", "x=2"));
    }
}
