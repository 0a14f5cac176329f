//! The wire shapes of the three operations, as CloudWatch's Smithy model names their members.
//!
//! One set of serde types serves both protocols: serde_json for AWS JSON 1.0 and ciborium for
//! Smithy RPC v2 CBOR. The two differ only in timestamps (a JSON number of epoch seconds; a CBOR
//! tag 1 around epoch seconds), which [`Timestamp`] writes by asking the serializer whether it is
//! human-readable. Every input member is optional here, so that a missing required member is a
//! `MissingParameter` error naming it rather than a serde message; members the model has and this
//! server ignores (`LabelOptions`, `IncludeLinkedAccounts`, `OwningAccount`) are accepted and
//! unknown ones skipped, as Smithy servers do.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant in epoch milliseconds (the lake's precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// Epoch seconds of any numeric type, inside a CBOR tag 1 or a JSON number.
struct EpochSeconds(f64);

impl<'de> Deserialize<'de> for EpochSeconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Seconds;
        impl Visitor<'_> for Seconds {
            type Value = EpochSeconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a timestamp in epoch seconds")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EpochSeconds, E> {
                Ok(EpochSeconds(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EpochSeconds, E> {
                Ok(EpochSeconds(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EpochSeconds, E> {
                Ok(EpochSeconds(v as f64))
            }
        }
        deserializer.deserialize_any(Seconds)
    }
}

/// The instants the lake can hold: years 1 to 9999, as the lake's partition dates are.
const MIN_MS: i64 = -62_135_596_800_000;
const MAX_MS: i64 = 253_402_300_799_999;

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let EpochSeconds(seconds) = if deserializer.is_human_readable() {
            EpochSeconds::deserialize(deserializer)?
        } else {
            ciborium::tag::Accepted::<EpochSeconds, 1>::deserialize(deserializer)?.0
        };
        let ms = (seconds * 1000.0).round();
        if !ms.is_finite() || ms < MIN_MS as f64 || ms > MAX_MS as f64 {
            return Err(de::Error::custom(format!("timestamp {seconds} s is outside the years 1 to 9999")));
        }
        Ok(Timestamp(ms as i64))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let seconds = self.0 as f64 / 1000.0;
        if serializer.is_human_readable() {
            if self.0 % 1000 == 0 { serializer.serialize_i64(self.0 / 1000) } else { serializer.serialize_f64(seconds) }
        } else {
            // RPC v2 CBOR: tag 1 (epoch seconds) around a double, which every SDK decodes.
            ciborium::tag::Required::<f64, 1>(seconds).serialize(serializer)
        }
    }
}

/// A dimension as a request names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DimensionInput {
    pub name: Option<String>,
    pub value: Option<String>,
}

/// A metric as a request names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricInput {
    pub namespace: Option<String>,
    pub metric_name: Option<String>,
    pub dimensions: Option<Vec<DimensionInput>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListMetricsInput {
    pub namespace: Option<String>,
    pub metric_name: Option<String>,
    pub dimensions: Option<Vec<DimensionInput>>,
    pub next_token: Option<String>,
    pub recently_active: Option<String>,
    pub include_linked_accounts: Option<bool>,
    pub owning_account: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMetricStatisticsInput {
    pub namespace: Option<String>,
    pub metric_name: Option<String>,
    pub dimensions: Option<Vec<DimensionInput>>,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub period: Option<i32>,
    pub statistics: Option<Vec<String>>,
    pub extended_statistics: Option<Vec<String>>,
    pub unit: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricStatInput {
    pub metric: Option<MetricInput>,
    pub period: Option<i32>,
    pub stat: Option<String>,
    pub unit: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDataQueryInput {
    pub id: Option<String>,
    pub metric_stat: Option<MetricStatInput>,
    pub expression: Option<String>,
    pub label: Option<String>,
    pub return_data: Option<bool>,
    pub period: Option<i32>,
    pub account_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMetricDataInput {
    pub metric_data_queries: Option<Vec<MetricDataQueryInput>>,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub next_token: Option<String>,
    pub scan_by: Option<String>,
    pub max_datapoints: Option<i32>,
}

/// A dimension in a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Dimension {
    pub name: String,
    pub value: String,
}

/// A metric in a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Metric {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<Dimension>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListMetricsOutput {
    pub metrics: Vec<Metric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Datapoint {
    pub timestamp: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_count: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    pub unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_statistics: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMetricStatisticsOutput {
    pub label: String,
    pub datapoints: Vec<Datapoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageData {
    pub code: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDataResult {
    pub id: String,
    pub label: String,
    pub timestamps: Vec<Timestamp>,
    pub values: Vec<f64>,
    pub status_code: &'static str,
    pub messages: Vec<MessageData>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMetricDataOutput {
    pub metric_data_results: Vec<MetricDataResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub messages: Vec<MessageData>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_json_are_epoch_seconds() {
        let t: Timestamp = serde_json::from_str("1768471200").unwrap();
        assert_eq!(t, Timestamp(1_768_471_200_000));
        let t: Timestamp = serde_json::from_str("1768471200.5").unwrap();
        assert_eq!(t, Timestamp(1_768_471_200_500));
        assert_eq!(serde_json::to_string(&Timestamp(1_768_471_200_000)).unwrap(), "1768471200");
        assert_eq!(serde_json::to_string(&Timestamp(1_768_471_200_250)).unwrap(), "1768471200.25");
        for bad in ["1e300", "\"2026-01-15T10:00:00Z\"", "-1e20"] {
            assert!(serde_json::from_str::<Timestamp>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_in_cbor_are_tag_1() {
        let mut bytes = Vec::new();
        ciborium::into_writer(&Timestamp(1_768_471_200_000), &mut bytes).unwrap();
        // Tag 1 (0xc1), then a double (0xfb).
        assert_eq!(&bytes[..2], &[0xc1, 0xfb]);
        let back: Timestamp = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert_eq!(back, Timestamp(1_768_471_200_000));
        // An integer inside the tag, as some encoders write whole seconds.
        let mut int = Vec::new();
        ciborium::into_writer(&ciborium::tag::Required::<u64, 1>(1_768_471_200), &mut int).unwrap();
        assert_eq!(ciborium::from_reader::<Timestamp, _>(int.as_slice()).unwrap(), Timestamp(1_768_471_200_000));
        // And without a tag.
        let mut plain = Vec::new();
        ciborium::into_writer(&1_768_471_200.0f64, &mut plain).unwrap();
        assert_eq!(ciborium::from_reader::<Timestamp, _>(plain.as_slice()).unwrap(), Timestamp(1_768_471_200_000));
    }

    #[test]
    fn inputs_ignore_unknown_members() {
        let input: ListMetricsInput = serde_json::from_str(r#"{"Namespace":"AWS/EC2","SomethingNew":{"a":[1]}}"#).unwrap();
        assert_eq!(input.namespace.as_deref(), Some("AWS/EC2"));
    }
}
