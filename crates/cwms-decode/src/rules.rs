//! The rules every decoder of a datum shares (the JSON line's serde path and fast path, the
//! normalizer, the OpenTelemetry reader), in one place so that they cannot drift apart.

/// The earliest timestamp accepted: 2000-01-01T00:00:00Z. A metric stream carries the last two
/// hours (two days for daily metrics); a timestamp before 2000 is not one of its datums but a
/// mistake of units: epoch SECONDS read as milliseconds land in January 1970.
pub const MIN_TIMESTAMP_MS: i64 = 946_684_800_000;

/// The largest timestamp accepted: 2099-12-31T23:59:59.999Z (seconds mistaken for milliseconds
/// the other way round, or microseconds, land thousands of years ahead).
pub const MAX_TIMESTAMP_MS: i64 = 4_102_444_799_999;

/// Sorts name and value pairs (dimensions, statistics) by name, as a datum keeps them, and
/// returns a name that occurs twice, if one does: every decoder refuses those.
pub fn sort_by_name<K: Ord, V>(pairs: &mut [(K, V)]) -> Option<&K> {
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    pairs.windows(2).position(|w| w[0].0 == w[1].0).map(|i| &pairs[i].0)
}

/// The index of a required statistic (`count`, `sum`, `max`, `min`, in that order), or `None`
/// for an additional one; both decoders fill their `required` slots by it.
pub fn required_statistic(name: &str) -> Option<usize> {
    match name {
        "count" => Some(0),
        "sum" => Some(1),
        "max" => Some(2),
        "min" => Some(3),
        _ => None,
    }
}
