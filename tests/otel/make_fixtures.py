#!/usr/bin/env python3
"""OpenTelemetry metric-stream fixtures for cwms's decoder, written by encoders that share nothing
with it: the `opentelemetry-proto` package's generated 1.x classes for `opentelemetry1.0`, and for
`opentelemetry0.7` classes that `protobuf` builds from a descriptor declared below (field numbers
and types of opentelemetry-proto v0.7.0; no .proto file or protoc needed).

    python tests/otel/make_fixtures.py OUT_DIR [CONFORMANCE_DIR]

Writes into OUT_DIR:
  datums.jsonl          the datums as CloudWatch metric-stream JSON lines (json.dumps)
  otel10/NNN.bin        the same datums, in order, as Firehose records in the 1.0 format: each
  otel07/NNN.bin        record holds one to three length-prefixed ExportMetricsServiceRequest
                        messages, of different lengths; and the same in the 0.7 format
  manifest.json         the message lengths of every record, and the protobuf version used
  aws10.bin, aws07.bin  AWS's documentation examples (protobuf text format, as printed on the
                        "CloudWatch metric stream output in OpenTelemetry 1.0.0 / 0.7.0 format"
                        pages), each as one length-prefixed message
  yaml/NAME.bin         with CONFORMANCE_DIR: the Collector's OpenTelemetry YAML descriptions
                        (otel-contrib/*.yaml) read with PyYAML and protobuf's json_format, one
                        message each, not length-prefixed

Every datum is one that the OpenTelemetry formats can carry: percentiles only, whole counts. The
quantiles of half the percentiles are computed as the Collector does (p / 100), the others from
the decimal (0.999), so the decoder's naming is tested both ways.
"""

from __future__ import annotations

import json
import os
import random
import sys
from decimal import Decimal

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory, text_format
from google.protobuf import __version__ as protobuf_version
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as v10

# CloudWatch unit -> UCUM code (AWS's translation table, and its slash rule for the rates).
UNITS = {
    "Seconds": "s", "Microseconds": "us", "Milliseconds": "ms", "Bytes": "By", "Kilobytes": "kBy",
    "Megabytes": "MBy", "Gigabytes": "GBy", "Terabytes": "TBy", "Bits": "bit", "Kilobits": "kbit",
    "Megabits": "MBit", "Gigabits": "GBit", "Terabits": "Tbit", "Percent": "%", "Count": "{Count}",
    "None": "1",
}
for _name, _code in list(UNITS.items()):
    if _name not in ("Seconds", "Microseconds", "Milliseconds", "Percent", "None"):
        UNITS[_name + "/Second"] = _code + "/s"
assert len(UNITS) == 27


def v07_classes():
    """The 0.7 messages on CloudWatch's path, from a hand-declared descriptor in a private pool
    (its package name is not opentelemetry's, so it cannot clash with the 1.x classes)."""
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="cwms_otel07.proto", package="cwms07", syntax="proto3")

    def message(name, *fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, repeated, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype,
                            label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if type_name:
                f.type_name = ".cwms07." + type_name
        return m

    any_value = message("AnyValue", ("string_value", 1, F.TYPE_STRING, False, None),
                        ("bool_value", 2, F.TYPE_BOOL, False, None), ("int_value", 3, F.TYPE_INT64, False, None),
                        ("double_value", 4, F.TYPE_DOUBLE, False, None))
    any_value.oneof_decl.add(name="value")
    for f in any_value.field:
        f.oneof_index = 0
    message("KeyValue", ("key", 1, F.TYPE_STRING, False, None), ("value", 2, F.TYPE_MESSAGE, False, "AnyValue"))
    message("StringKeyValue", ("key", 1, F.TYPE_STRING, False, None), ("value", 2, F.TYPE_STRING, False, None))
    message("Resource", ("attributes", 1, F.TYPE_MESSAGE, True, "KeyValue"),
            ("dropped_attributes_count", 2, F.TYPE_UINT32, False, None))
    message("ValueAtQuantile", ("quantile", 1, F.TYPE_DOUBLE, False, None), ("value", 2, F.TYPE_DOUBLE, False, None))
    message("DoubleSummaryDataPoint", ("labels", 1, F.TYPE_MESSAGE, True, "StringKeyValue"),
            ("start_time_unix_nano", 2, F.TYPE_FIXED64, False, None),
            ("time_unix_nano", 3, F.TYPE_FIXED64, False, None), ("count", 4, F.TYPE_FIXED64, False, None),
            ("sum", 5, F.TYPE_DOUBLE, False, None),
            ("quantile_values", 6, F.TYPE_MESSAGE, True, "ValueAtQuantile"))
    message("DoubleSummary", ("data_points", 1, F.TYPE_MESSAGE, True, "DoubleSummaryDataPoint"))
    metric = message("Metric", ("name", 1, F.TYPE_STRING, False, None), ("description", 2, F.TYPE_STRING, False, None),
                     ("unit", 3, F.TYPE_STRING, False, None),
                     ("double_summary", 11, F.TYPE_MESSAGE, False, "DoubleSummary"))
    metric.oneof_decl.add(name="data")
    metric.field[3].oneof_index = 0
    message("InstrumentationLibrary", ("name", 1, F.TYPE_STRING, False, None), ("version", 2, F.TYPE_STRING, False, None))
    message("InstrumentationLibraryMetrics",
            ("instrumentation_library", 1, F.TYPE_MESSAGE, False, "InstrumentationLibrary"),
            ("metrics", 2, F.TYPE_MESSAGE, True, "Metric"))
    message("ResourceMetrics", ("resource", 1, F.TYPE_MESSAGE, False, "Resource"),
            ("instrumentation_library_metrics", 2, F.TYPE_MESSAGE, True, "InstrumentationLibraryMetrics"))
    message("ExportMetricsServiceRequest", ("resource_metrics", 1, F.TYPE_MESSAGE, True, "ResourceMetrics"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("cwms07.ExportMetricsServiceRequest"))


V07Request = v07_classes()


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def frame(messages: list[bytes]) -> bytes:
    return b"".join(varint(len(m)) + m for m in messages)


# The datums.

PERCENTILES = ["p50", "p90", "p95", "p99", "p99.9", "p99.99", "p95.45", "p0.1", "p10", "p75.5", "p1", "p0.01"]
NAMES = {
    "AWS/EC2": (["CPUUtilization", "NetworkIn", "DiskWriteOps"], ["InstanceId", "AutoScalingGroupName", "ImageId"]),
    "AWS/Lambda": (["Duration", "Invocations", "Errors"], ["FunctionName", "Resource", "ExecutedVersion"]),
    "AWS/DynamoDB": (["ConsumedReadCapacityUnits", "SuccessfulRequestLatency"], ["TableName", "Operation"]),
    "AWS/SQS": (["ApproximateNumberOfMessagesVisible"], ["QueueName"]),
    "Custom/App \u00e9": (["Latency \"p\"", "Queue\\Depth"], ["Env", "Region", "Namespace", "Host \U0001F980"]),
}
RESOURCES = [
    ("123456789012", "us-east-1", "MyMetricStream"),
    ("210987654321", "eu-west-1", "other-stream_2"),
    ("123456789012", "us-east-1", None),
]


def number(rng: random.Random) -> float:
    kind = rng.randrange(6)
    if kind == 0:
        return 0.0
    if kind == 1:
        return round(rng.uniform(0, 1000), rng.randrange(0, 4))
    if kind == 2:
        return rng.uniform(-1e6, 1e6)
    if kind == 3:
        return rng.random() * 10.0 ** rng.randrange(-300, 300)
    if kind == 4:
        return float(rng.randrange(0, 1 << 53))
    return rng.choice([-0.0, 5e-324, 1.7976931348623157e308, 0.1, 1e-7, 463.04499999999996])


def make_datums(rng: random.Random, n: int) -> list[dict]:
    datums = []
    for i in range(n):
        account, region, stream = RESOURCES[(i // 7) % len(RESOURCES)]
        namespace = rng.choice(sorted(NAMES))
        metrics, dimension_names = NAMES[namespace]
        dims = {name: rng.choice(["i-0abc", "web", "", "v\"q\\", "\u00e9t\u00e9", str(rng.randrange(100))])
                for name in rng.sample(dimension_names, rng.randrange(0, len(dimension_names) + 1))}
        unit = rng.choice(sorted(UNITS) + ["NoneTranslated", None])
        lo, hi = sorted([number(rng), number(rng)])
        value = {"count": float(rng.choice([0, 1, 2, 60, rng.randrange(1 << 40)])), "sum": number(rng), "max": hi, "min": lo}
        for name in rng.sample(PERCENTILES, rng.randrange(0, 5)):
            value[name] = number(rng)
        minute = 1_764_140_400_000 + 60_000 * rng.randrange(0, 1440)
        datum = {"account_id": account, "region": region, "namespace": namespace, "metric_name": rng.choice(metrics),
                 "dimensions": dims, "timestamp": minute + rng.choice([0, 0, 0, 1, 58_000]), "value": value}
        if stream is not None:
            datum = {"metric_stream_name": stream, **datum}
        if unit is not None:
            datum["unit"] = unit
        datums.append(datum)
    return datums


def quantile(name: str, collector_style: bool) -> float:
    if collector_style:
        return float(name[1:]) / 100  # 99.9 / 100 = 0.9990000000000001
    return float(Decimal(name[1:]) / 100)


def fill_point(point, datum: dict, rng: random.Random) -> None:
    start = datum["timestamp"] * 1_000_000
    point.start_time_unix_nano = start
    point.time_unix_nano = start + 60_000_000_000
    v = datum["value"]
    point.count = int(v["count"])
    point.sum = v["sum"]
    pairs = [(0.0, v["min"]), (1.0, v["max"])]
    pairs += [(quantile(k, rng.random() < 0.5), x) for k, x in v.items() if k.startswith("p")]
    for q, x in sorted(pairs):
        item = point.quantile_values.add()
        item.quantile = q
        item.value = x


def resource_of(rm, datum: dict) -> None:
    attributes = [("cloud.provider", "aws"), ("cloud.account.id", datum["account_id"]), ("cloud.region", datum["region"])]
    if "metric_stream_name" in datum:
        arn = "arn:aws:cloudwatch:%s:%s:metric-stream/%s" % (datum["region"], datum["account_id"], datum["metric_stream_name"])
        attributes.append(("aws.exporter.arn", arn))
    for key, value in attributes:
        kv = rm.resource.attributes.add()
        kv.key = key
        kv.value.string_value = value


def same_resource(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in ("account_id", "region", "metric_stream_name"))


def message_10(datums: list[dict], rng: random.Random) -> bytes:
    request = v10.ExportMetricsServiceRequest()
    rm = scope = None
    for i, datum in enumerate(datums):
        if rm is None or not same_resource(datums[i - 1], datum):
            rm = request.resource_metrics.add()
            resource_of(rm, datum)
            scope = rm.scope_metrics.add()
        metric = scope.metrics.add()
        metric.name = "amazonaws.com/%s/%s" % (datum["namespace"], datum["metric_name"])
        metric.unit = UNITS.get(datum.get("unit"), datum.get("unit") or "")
        point = metric.summary.data_points.add()
        fill_point(point, datum, rng)
        for key, value in [("Namespace", datum["namespace"]), ("MetricName", datum["metric_name"])]:
            kv = point.attributes.add()
            kv.key = key
            kv.value.string_value = value
        kv = point.attributes.add()
        kv.key = "Dimensions"
        kv.value.kvlist_value.SetInParent()
        for key, value in datum["dimensions"].items():
            d = kv.value.kvlist_value.values.add()
            d.key = key
            d.value.string_value = value
    return request.SerializeToString()


def message_07(datums: list[dict], rng: random.Random) -> bytes:
    request = V07Request()
    rm = scope = None
    for i, datum in enumerate(datums):
        if rm is None or not same_resource(datums[i - 1], datum):
            rm = request.resource_metrics.add()
            resource_of(rm, datum)
            scope = rm.instrumentation_library_metrics.add()
        metric = scope.metrics.add()
        metric.name = "amazonaws.com/%s/%s" % (datum["namespace"], datum["metric_name"])
        metric.unit = UNITS.get(datum.get("unit"), datum.get("unit") or "")
        point = metric.double_summary.data_points.add()
        labels = [("Namespace", datum["namespace"]), ("MetricName", datum["metric_name"]), *datum["dimensions"].items()]
        for key, value in labels:
            label = point.labels.add()
            label.key = key
            label.value = value
        fill_point(point, datum, rng)
    return request.SerializeToString()


def split(datums: list[dict], encode, rng: random.Random) -> list[tuple[bytes, list[int]]]:
    """Firehose records of one to three messages (one to eight datums each). Within a record the
    messages differ in length: equal lengths would hide the Collector's bug (issue 39462), so a
    message that would repeat a length takes one datum more."""
    out = []
    at = 0
    while at < len(datums):
        messages: list[bytes] = []
        for _ in range(rng.randrange(1, 4)):
            if at >= len(datums):
                break
            size = rng.randrange(1, 9)
            message = encode(datums[at:at + size], rng)
            while any(len(m) == len(message) for m in messages) and at + size < len(datums):
                size += 1
                message = encode(datums[at:at + size], rng)
            messages.append(message)
            at += size
        out.append((frame(messages), [len(m) for m in messages]))
    return out


AWS_10 = '''
resource_metrics {
  resource {
    attributes { key: "cloud.provider" value { string_value: "aws" } }
    attributes { key: "cloud.account.id" value { string_value: "123456789012" } }
    attributes { key: "cloud.region" value { string_value: "us-east-1" } }
    attributes { key: "aws.exporter.arn" value { string_value: "arn:aws:cloudwatch:us-east-1:123456789012:metric-stream/MyMetricStream" } }
  }
  scope_metrics {
    metrics {
      name: "amazonaws.com/AWS/DynamoDB/ConsumedReadCapacityUnits"
      unit: "NoneTranslated"
      summary {
        data_points {
          start_time_unix_nano: 60000000000
          time_unix_nano: 120000000000
          count: 1
          sum: 1.0
          quantile_values { value: 1.0 }
          quantile_values { quantile: 0.95 value: 1.0 }
          quantile_values { quantile: 0.99 value: 1.0 }
          quantile_values { quantile: 1.0 value: 1.0 }
          attributes { key: "Namespace" value { string_value: "AWS/DynamoDB" } }
          attributes { key: "MetricName" value { string_value: "ConsumedReadCapacityUnits" } }
          attributes { key: "Dimensions" value { kvlist_value { values { key: "TableName" value { string_value: "MyTable" } } } } }
        }
        data_points {
          start_time_unix_nano: 70000000000
          time_unix_nano: 130000000000
          count: 2
          sum: 5.0
          quantile_values { value: 2.0 }
          quantile_values { quantile: 1.0 value: 3.0 }
          attributes { key: "Namespace" value { string_value: "AWS/DynamoDB" } }
          attributes { key: "MetricName" value { string_value: "ConsumedReadCapacityUnits" } }
          attributes { key: "Dimensions" value { kvlist_value { values { key: "TableName" value { string_value: "MyTable" } } } } }
        }
      }
    }
  }
}
'''

AWS_07 = '''
resource_metrics {
  resource {
    attributes { key: "cloud.provider" value { string_value: "aws" } }
    attributes { key: "cloud.account.id" value { string_value: "2345678901" } }
    attributes { key: "cloud.region" value { string_value: "us-east-1" } }
    attributes { key: "aws.exporter.arn" value { string_value: "arn:aws:cloudwatch:us-east-1:123456789012:metric-stream/MyMetricStream" } }
  }
  instrumentation_library_metrics {
    metrics {
      name: "amazonaws.com/AWS/DynamoDB/ConsumedReadCapacityUnits"
      unit: "1"
      double_summary {
        data_points {
          labels { key: "Namespace" value: "AWS/DynamoDB" }
          labels { key: "MetricName" value: "ConsumedReadCapacityUnits" }
          labels { key: "TableName" value: "MyTable" }
          start_time_unix_nano: 1604948400000000000
          time_unix_nano: 1604948460000000000
          count: 1
          sum: 1.0
          quantile_values { quantile: 0.0 value: 1.0 }
          quantile_values { quantile: 0.95 value: 1.0 }
          quantile_values { quantile: 0.99 value: 1.0 }
          quantile_values { quantile: 1.0 value: 1.0 }
        }
        data_points {
          labels { key: "Namespace" value: "AWS/DynamoDB" }
          labels { key: "MetricName" value: "ConsumedReadCapacityUnits" }
          labels { key: "TableName" value: "MyTable" }
          start_time_unix_nano: 1604948460000000000
          time_unix_nano: 1604948520000000000
          count: 2
          sum: 5.0
          quantile_values { quantile: 0.0 value: 2.0 }
          quantile_values { quantile: 1.0 value: 3.0 }
        }
      }
    }
  }
}
'''


def main() -> None:
    out = sys.argv[1]
    rng = random.Random(13)
    datums = make_datums(rng, 240)
    with open(os.path.join(out, "datums.jsonl"), "w") as f:
        for d in datums:
            f.write(json.dumps(d) + "\n")
    manifest = {"protobuf": protobuf_version, "records": {}}
    for folder, encode in [("otel10", message_10), ("otel07", message_07)]:
        os.makedirs(os.path.join(out, folder), exist_ok=True)
        for i, (record, lengths) in enumerate(split(datums, encode, rng)):
            with open(os.path.join(out, folder, "%03d.bin" % i), "wb") as f:
                f.write(record)
            manifest["records"]["%s/%03d.bin" % (folder, i)] = lengths
    for name, text, cls in [("aws10.bin", AWS_10, v10.ExportMetricsServiceRequest), ("aws07.bin", AWS_07, V07Request)]:
        with open(os.path.join(out, name), "wb") as f:
            f.write(frame([text_format.Parse(text, cls()).SerializeToString()]))
    if len(sys.argv) > 2:
        import yaml  # PyYAML, which the test venv has through cfn-lint

        os.makedirs(os.path.join(out, "yaml"), exist_ok=True)
        for name in ["ext_opentelemetry1_valid_metric", "receiver_otlpmetricstream_single_record"]:
            with open(os.path.join(sys.argv[2], "otel-contrib", name + ".yaml")) as f:
                tree = yaml.safe_load(f)
            request = json_format.ParseDict(tree, v10.ExportMetricsServiceRequest())
            with open(os.path.join(out, "yaml", name + ".bin"), "wb") as f:
                f.write(request.SerializeToString())
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
