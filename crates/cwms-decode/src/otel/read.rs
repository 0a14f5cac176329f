//! The messages of one `ExportMetricsServiceRequest`, down to its data points' datums.

use std::borrow::Cow;

use cwms_model::{Datum, UNIT_NONE};

use super::fail::{Fail, R, Segment, Within, bytes, checked, fail, fixed64, wrong_wire_type};
use super::names;
use super::strings::{KeyValue, Text, key_value, two_strings};
use super::wire::{Fields, Payload};
use super::{OtelCounts, OtelProblem, OtelVersion};
use crate::rules::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, sort_by_name};

/// What decoding carries from data point to data point.
pub(super) struct State<'a> {
    pub(super) datum: Datum<'a>,
    pub(super) counts: OtelCounts,
    /// The version every data point must be of, when the stream's format is set.
    pub(super) expect: Option<OtelVersion>,
    /// The last metric's unit code and what it reads as: metrics in a row mostly share units.
    pub(super) unit: (&'a [u8], &'a str),
}

/// `ExportMetricsServiceRequest`.
pub(super) fn request<'a>(body: &'a [u8], base: usize, state: &mut State<'a>, visit: &mut impl FnMut(&Datum<'a>)) -> R<()> {
    let mut fields = Fields::new(body, base);
    let mut index = 0;
    while let Some(field) = fields.next_field()? {
        if field.number == 1 {
            let segment = Segment::Index("resource_metrics", index);
            let b = bytes(&field, "").within(segment)?;
            resource_metrics(b, field.payload_offset, state, visit).within(segment)?;
            index += 1;
        }
    }
    Ok(())
}

/// What a `ResourceMetrics`' resource says about its datums.
#[derive(Clone, Copy)]
struct Resource<'a> {
    account_id: &'a str,
    region: &'a str,
    stream_name: Option<&'a str>,
}

/// `ResourceMetrics`: the resource first (wherever it is), then the scope metrics.
fn resource_metrics<'a>(body: &'a [u8], base: usize, state: &mut State<'a>, visit: &mut impl FnMut(&Datum<'a>)) -> R<()> {
    let mut attributes = ResourceAttributes::default();
    let mut has_scopes = false;
    let mut fields = Fields::new(body, base);
    while let Some(field) = fields.next_field()? {
        match field.number {
            1 => resource(bytes(&field, "resource")?, field.payload_offset, &mut attributes).within(Segment::Field("resource"))?,
            2 => has_scopes = true,
            _ => {}
        }
    }
    if !has_scopes {
        return Ok(());
    }
    let resource = attributes.resolve(base).within(Segment::Field("resource"))?;
    let mut fields = Fields::new(body, base);
    let mut index = 0;
    while let Some(field) = fields.next_field()? {
        if field.number == 2 {
            let segment = Segment::Index("scope_metrics", index);
            let b = bytes(&field, "").within(segment)?;
            scope_metrics(b, field.payload_offset, &resource, state, visit).within(segment)?;
            index += 1;
        }
    }
    Ok(())
}

/// The resource attributes read so far (a resource may come in several pieces, which protobuf merges).
#[derive(Default)]
struct ResourceAttributes<'a> {
    account_id: Option<&'a str>,
    region: Option<&'a str>,
    arn: Option<(&'a str, usize)>,
}

impl<'a> ResourceAttributes<'a> {
    fn resolve(&self, offset: usize) -> R<Resource<'a>> {
        let required = |value: Option<&'a str>, name: &'static str| match value {
            None => fail(offset, OtelProblem::MissingAttribute(name)),
            Some("") => fail(offset, OtelProblem::EmptyAttribute(name)),
            Some(v) => Ok(v),
        };
        let account_id = required(self.account_id, "cloud.account.id")?;
        let region = required(self.region, "cloud.region")?;
        let stream_name = match self.arn {
            None => None,
            Some((arn, at)) => Some(stream_name(arn).map_or_else(|| fail(at, OtelProblem::InvalidArn(arn.to_owned())), Ok)?),
        };
        Ok(Resource { account_id, region, stream_name })
    }
}

/// The stream name of a metric-stream ARN: `arn:<partition>:cloudwatch:<region>:<account>:metric-stream/<name>`.
fn stream_name(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, resource) = (parts.next()?, parts.nth(4)?);
    let name = resource.strip_prefix("metric-stream/")?;
    let name = name.rsplit('/').next()?;
    (prefix == "arn" && !name.is_empty()).then_some(name)
}

/// `Resource`: its attributes.
fn resource<'a>(body: &'a [u8], base: usize, out: &mut ResourceAttributes<'a>) -> R<()> {
    let mut fields = Fields::new(body, base);
    let mut index = 0;
    while let Some(field) = fields.next_field()? {
        if field.number != 1 {
            continue;
        }
        let segment = Segment::Index("attributes", index);
        index += 1;
        let kv = key_value(bytes(&field, "").within(segment)?, field.payload_offset, Text::NONE).within(segment)?;
        let duplicate = match kv.key {
            b"cloud.account.id" => out.account_id.replace(kv.string().within(segment)?).is_some(),
            b"cloud.region" => out.region.replace(kv.string().within(segment)?).is_some(),
            b"aws.exporter.arn" => out.arn.replace((kv.string().within(segment)?, kv.offset)).is_some(),
            _ => false,
        };
        if duplicate {
            return kv.duplicate().within(segment);
        }
    }
    Ok(())
}

/// `ScopeMetrics` (1.0) or `InstrumentationLibraryMetrics` (0.7): its metrics.
fn scope_metrics<'a>(
    body: &'a [u8],
    base: usize,
    resource: &Resource<'a>,
    state: &mut State<'a>,
    visit: &mut impl FnMut(&Datum<'a>),
) -> R<()> {
    let mut fields = Fields::new(body, base);
    let mut index = 0;
    while let Some(field) = fields.next_field()? {
        if field.number == 2 {
            let segment = Segment::Index("metrics", index);
            let b = bytes(&field, "").within(segment)?;
            metric(b, field.payload_offset, resource, state, visit).within(segment)?;
            index += 1;
        }
    }
    Ok(())
}

/// The metric kinds of `Metric`'s fields 4 to 10, in both versions.
const OTHER_KINDS: [&str; 7] =
    ["int gauge (0.7)", "gauge", "int sum (0.7)", "sum", "int histogram (0.7)", "histogram", "exponential histogram (1.0)"];

/// `Metric`: its name and unit first (wherever they are), then its summaries' data points.
fn metric<'a>(body: &'a [u8], base: usize, resource: &Resource<'a>, state: &mut State<'a>, visit: &mut impl FnMut(&Datum<'a>)) -> R<()> {
    // The name is only for errors, so it is read as it is (not checked as UTF-8: see the docs).
    let mut name: &[u8] = b"";
    let mut unit: (&'a [u8], usize) = (b"", base);
    let mut has_summary = false;
    let named = |result: R<()>, name: &[u8]| {
        result.map_err(|mut fail| {
            if !name.is_empty() {
                fail.metric.get_or_insert_with(|| String::from_utf8_lossy(name).into_owned());
            }
            fail
        })
    };
    let mut fields = Fields::new(body, base);
    let mut scan = || -> R<()> {
        while let Some(field) = fields.next_field()? {
            match field.number {
                1 => name = bytes(&field, "name")?,
                3 => unit = (bytes(&field, "unit")?, field.payload_offset),
                n @ 4..=10 => {
                    let kind = OTHER_KINDS[n as usize - 4];
                    return fail(field.offset, OtelProblem::NotASummary { kind });
                }
                11 => has_summary = true,
                _ => {}
            }
        }
        Ok(())
    };
    let scanned = scan();
    named(scanned, name)?;
    if !has_summary {
        return named(fail(base, OtelProblem::NoData), name);
    }
    let unit: &'a str = match unit {
        (b"", _) => UNIT_NONE,
        (code, _) if code == state.unit.0 => state.unit.1,
        (code, at) => {
            let unit = match names::cloudwatch_unit_of_bytes(code) {
                Some(unit) => unit,
                None => match checked(code, at, "unit") {
                    Ok(unit) => unit,
                    Err(fail) => return named(Err(fail), name),
                },
            };
            state.unit = (code, unit);
            unit
        }
    };
    let mut points = || -> R<()> {
        let mut fields = Fields::new(body, base);
        let mut index = 0;
        while let Some(field) = fields.next_field()? {
            if field.number != 11 {
                continue;
            }
            let summary = bytes(&field, "summary")?;
            let mut points = Fields::new(summary, field.payload_offset);
            while let Some(point) = points.next_field().map_err(Box::<Fail>::from).within(Segment::Field("summary"))? {
                if point.number == 1 {
                    let segment = Segment::Index("data_points", index);
                    let b = bytes(&point, "").within(segment).within(Segment::Field("summary"))?;
                    let version = data_point(b, point.payload_offset, resource, unit, state.expect, &mut state.datum)
                        .within(segment)
                        .within(Segment::Field("summary"))?;
                    match version {
                        OtelVersion::V1_0 => state.counts.v1_0 += 1,
                        OtelVersion::V0_7 => state.counts.v0_7 += 1,
                    }
                    visit(&state.datum);
                    index += 1;
                }
            }
        }
        Ok(())
    };
    let result = points();
    named(result, name)
}

/// Quantiles of a data point that become `min` and `max`.
#[derive(Default)]
struct Extremes {
    min: Option<f64>,
    max: Option<f64>,
}

/// A summary data point of either version, into `datum`; returns which version it is.
fn data_point<'a>(
    body: &'a [u8],
    base: usize,
    resource: &Resource<'a>,
    unit: &'a str,
    expect: Option<OtelVersion>,
    datum: &mut Datum<'a>,
) -> R<OtelVersion> {
    datum.dimensions.clear();
    datum.stats.clear();
    let mut identity = Identity::default();
    let (mut labels, mut attributes) = (0usize, 0usize);
    let mut start = (0u64, base);
    let mut count = 0u64;
    let mut sum = (0.0f64, base);
    let mut flags = 0u64;
    let mut extremes = Extremes::default();
    let mut quantiles = 0usize;
    let mut fields = Fields::new(body, base);
    while let Some(field) = fields.next_field()? {
        match field.number {
            1 => {
                let segment = Segment::Index("labels", labels);
                label(bytes(&field, "").within(segment)?, field.payload_offset, &mut identity, datum).within(segment)?;
                labels += 1;
            }
            2 => start = (fixed64(&field, "start_time_unix_nano")?, field.offset),
            3 => {
                fixed64(&field, "time_unix_nano")?;
            }
            4 => count = fixed64(&field, "count")?,
            5 => sum = (f64::from_bits(fixed64(&field, "sum")?), field.offset),
            6 => {
                let segment = Segment::Index("quantile_values", quantiles);
                let b = bytes(&field, "").within(segment)?;
                quantile(b, field.payload_offset, &mut extremes, datum).within(segment)?;
                quantiles += 1;
            }
            7 => {
                let segment = Segment::Index("attributes", attributes);
                let b = bytes(&field, "").within(segment)?;
                attribute(b, field.payload_offset, &mut identity, datum).within(segment)?;
                attributes += 1;
            }
            8 => match field.payload {
                Payload::Varint(v) => flags = v,
                _ => return wrong_wire_type(&field, "a varint", "flags"),
            },
            _ => {}
        }
    }
    if labels > 0 && attributes > 0 {
        return fail(base, OtelProblem::MixedVersions);
    }
    // A point with neither fails below, for its missing Namespace.
    let version = if labels > 0 { OtelVersion::V0_7 } else { OtelVersion::V1_0 };
    if let Some(expected) = expect
        && expected != version
        && labels + attributes > 0
    {
        return fail(base, OtelProblem::OtherVersion { expected });
    }
    let required = |value: Option<&'a str>, name: &'static str| match value {
        None => fail(base, OtelProblem::MissingAttribute(name)),
        Some("") => fail(base, OtelProblem::EmptyAttribute(name)),
        Some(v) => Ok(Cow::Borrowed(v)),
    };
    datum.namespace = required(identity.namespace, "Namespace")?;
    datum.metric_name = required(identity.metric_name, "MetricName")?;
    datum.timestamp_ms = timestamp(start.0).or_else(|problem| fail(start.1, problem).within(Segment::Field("start_time_unix_nano")))?;
    if flags & 1 != 0 {
        return fail(base, OtelProblem::NoRecordedValue);
    }
    if !sum.0.is_finite() {
        return fail(sum.1, OtelProblem::NotFinite { field: "sum", value: sum.0 }).within(Segment::Field("sum"));
    }
    let Some(min) = extremes.min else { return fail(base, OtelProblem::MissingMin) };
    let Some(max) = extremes.max else { return fail(base, OtelProblem::MissingMax) };
    if let Some(name) = sort_by_name(&mut datum.dimensions) {
        return fail(base, OtelProblem::DuplicateDimension(name.to_string()));
    }
    if let Some(name) = sort_by_name(&mut datum.stats) {
        return fail(base, OtelProblem::DuplicateQuantile(name.to_string()));
    }
    datum.metric_stream_name = resource.stream_name.map(Cow::Borrowed);
    datum.account_id = Cow::Borrowed(resource.account_id);
    datum.region = Cow::Borrowed(resource.region);
    datum.unit = Cow::Borrowed(unit);
    datum.count = count as f64;
    datum.sum = sum.0;
    datum.min = min;
    datum.max = max;
    Ok(version)
}

/// The period start in nanoseconds as epoch milliseconds, checked.
#[inline]
fn timestamp(nanos: u64) -> Result<i64, OtelProblem> {
    if nanos == 0 {
        return Err(OtelProblem::MissingStartTime);
    }
    if !nanos.is_multiple_of(1_000_000) {
        return Err(OtelProblem::NotWholeMillisecond(nanos));
    }
    let ms = (nanos / 1_000_000) as i64;
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
        return Err(OtelProblem::TimestampOutOfRange(nanos));
    }
    Ok(ms)
}

/// What a data point's attributes or labels say besides its dimensions.
#[derive(Default)]
struct Identity<'a> {
    namespace: Option<&'a str>,
    metric_name: Option<&'a str>,
    /// Whether a 1.0 `Dimensions` attribute was read.
    dimensions: bool,
}

/// A 0.7 `StringKeyValue` label: the first `Namespace` and `MetricName`, or a dimension.
#[inline]
fn label<'a>(body: &'a [u8], base: usize, identity: &mut Identity<'a>, datum: &mut Datum<'a>) -> R<()> {
    let (mut key, mut value) = ("", "");
    let text = Text::of(body, base);
    if let Some(((k, key_at), (v, value_at))) = two_strings(body, base) {
        key = text.slice(k, key_at, "key")?;
        value = text.slice(v, value_at, "value")?;
    } else {
        let mut fields = Fields::new(body, base);
        while let Some(field) = fields.next_field()? {
            match field.number {
                1 => key = text.string(&field, "key")?,
                2 => value = text.string(&field, "value")?,
                _ => {}
            }
        }
    }
    match key {
        "Namespace" if identity.namespace.is_none() => identity.namespace = Some(value),
        "MetricName" if identity.metric_name.is_none() => identity.metric_name = Some(value),
        _ => datum.dimensions.push((Cow::Borrowed(key), Cow::Borrowed(value))),
    }
    Ok(())
}

/// A 1.0 `KeyValue` attribute: `Namespace`, `MetricName` or `Dimensions`; others are ignored.
#[inline]
fn attribute<'a>(body: &'a [u8], base: usize, identity: &mut Identity<'a>, datum: &mut Datum<'a>) -> R<()> {
    let kv = key_value(body, base, Text::NONE)?;
    let slot = match kv.key {
        b"Namespace" => &mut identity.namespace,
        b"MetricName" => &mut identity.metric_name,
        b"Dimensions" if std::mem::replace(&mut identity.dimensions, true) => return kv.duplicate(),
        b"Dimensions" => return dimensions(&kv, datum),
        _ => return Ok(()),
    };
    if slot.replace(kv.string()?).is_some() {
        return kv.duplicate();
    }
    Ok(())
}

/// The `Dimensions` attribute: a kvlist of string values.
#[inline]
fn dimensions<'a>(kv: &KeyValue<'a>, datum: &mut Datum<'a>) -> R<()> {
    let list = kv.any(6)?;
    let (base, list) = (list.payload_offset, bytes(&list, "value")?);
    let text = Text::of(list, base);
    let mut fields = Fields::new(list, base);
    let mut index = 0;
    while let Some(field) = fields.next_field().map_err(Box::<Fail>::from).within(Segment::Field("value"))? {
        if field.number == 1 {
            let segment = Segment::Index("values", index);
            let b = bytes(&field, "").within(segment).within(Segment::Field("value"))?;
            let dimension = key_value(b, field.payload_offset, text).within(segment).within(Segment::Field("value"))?;
            let value = dimension.string().within(segment).within(Segment::Field("value"))?;
            let key = dimension.key_str().within(segment).within(Segment::Field("value"))?;
            datum.dimensions.push((Cow::Borrowed(key), Cow::Borrowed(value)));
            index += 1;
        }
    }
    Ok(())
}

/// A `ValueAtQuantile`: the minimum, the maximum or a percentile.
#[inline]
fn quantile<'a>(body: &'a [u8], base: usize, extremes: &mut Extremes, datum: &mut Datum<'a>) -> R<()> {
    let (mut q, mut value) = (0.0f64, 0.0f64);
    let mut fields = Fields::new(body, base);
    while let Some(field) = fields.next_field()? {
        match field.number {
            1 => q = f64::from_bits(fixed64(&field, "quantile")?),
            2 => value = f64::from_bits(fixed64(&field, "value")?),
            _ => {}
        }
    }
    if !q.is_finite() {
        return fail(base, OtelProblem::NotFinite { field: "quantile", value: q });
    }
    if !value.is_finite() {
        return fail(base, OtelProblem::NotFinite { field: "value", value });
    }
    let (slot, name) = if q == 0.0 {
        (&mut extremes.min, "min")
    } else if q == 1.0 {
        (&mut extremes.max, "max")
    } else {
        if !(0.0..=1.0).contains(&q) {
            return fail(base, OtelProblem::QuantileOutOfRange(q));
        }
        let name = names::percentile_name(q).or_else(|_| fail(base, OtelProblem::NotAPercentile(q)))?;
        datum.stats.push((name, value));
        return Ok(());
    };
    if slot.replace(value).is_some() {
        return fail(base, OtelProblem::DuplicateQuantile(name.to_owned()));
    }
    Ok(())
}
