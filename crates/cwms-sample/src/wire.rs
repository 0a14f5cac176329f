//! Datums as CloudWatch writes them on the wire.
//!
//! The field order follows what real metric streams send (seen in the captured samples under
//! `shared/conformance/`): the `value` object starts with `max`, `min`, `sum`, `count` and then
//! the additional statistics in the order they were configured, not sorted. That differs on
//! purpose from cwms's normalized line (`Datum::write_json_line`), so that a decoder or transform
//! fed with samples really has to normalize.

use cwms_model::{Datum, OwnedDatum};

use crate::catalog::Series;
use crate::values::Values;

/// The strings every datum of a sample shares.
pub(crate) struct Origin<'a> {
    pub stream_name: &'a str,
    pub account_id: &'a str,
    pub region: &'a str,
}

/// Appends one datum as a line of metric-stream JSON, terminated by `\n`.
pub(crate) fn write_line(origin: &Origin<'_>, series: &Series, timestamp_ms: i64, values: &Values, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"metric_stream_name\":");
    write_str(out, origin.stream_name);
    out.extend_from_slice(b",\"account_id\":");
    write_str(out, origin.account_id);
    out.extend_from_slice(b",\"region\":");
    write_str(out, origin.region);
    out.extend_from_slice(b",\"namespace\":");
    write_str(out, series.namespace);
    out.extend_from_slice(b",\"metric_name\":");
    write_str(out, series.metric_name);
    out.extend_from_slice(b",\"dimensions\":{");
    for (i, (name, value)) in series.dimensions.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write_str(out, value);
    }
    out.extend_from_slice(b"},\"timestamp\":");
    out.extend_from_slice(timestamp_ms.to_string().as_bytes());
    out.extend_from_slice(b",\"value\":{\"max\":");
    write_f64(out, values.max);
    out.extend_from_slice(b",\"min\":");
    write_f64(out, values.min);
    out.extend_from_slice(b",\"sum\":");
    write_f64(out, values.sum);
    out.extend_from_slice(b",\"count\":");
    write_f64(out, values.count);
    for (name, value) in series.statistics.iter().zip(&values.stats) {
        out.push(b',');
        write_str(out, name);
        out.push(b':');
        write_f64(out, *value);
    }
    out.extend_from_slice(b"},\"unit\":");
    write_str(out, series.unit);
    out.extend_from_slice(b"}\n");
}

/// The datum the line of the same arguments decodes to (normalized: statistics sorted by name).
pub(crate) fn datum(origin: &Origin<'_>, series: &Series, timestamp_ms: i64, values: &Values) -> OwnedDatum {
    let mut stats: Vec<_> = series.statistics.iter().zip(&values.stats).map(|(name, v)| ((*name).into(), *v)).collect();
    stats.sort_by(|a: &(std::borrow::Cow<'static, str>, f64), b| a.0.cmp(&b.0));
    Datum {
        metric_stream_name: Some(origin.stream_name.to_owned().into()),
        account_id: origin.account_id.to_owned().into(),
        region: origin.region.to_owned().into(),
        namespace: series.namespace.into(),
        metric_name: series.metric_name.into(),
        dimensions: series.dimensions.iter().map(|(k, v)| (k.clone().into(), v.clone().into())).collect(),
        timestamp_ms,
        unit: series.unit.into(),
        count: values.count,
        sum: values.sum,
        max: values.max,
        min: values.min,
        stats,
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing JSON into a Vec cannot fail");
}

fn write_f64(out: &mut Vec<u8>, v: f64) {
    // Finite by construction; serde_json writes the shortest text that reads back to the same bits.
    debug_assert!(v.is_finite());
    serde_json::to_writer(&mut *out, &v).expect("writing JSON into a Vec cannot fail");
}
