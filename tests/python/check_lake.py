"""Checks a lake written by cwms with independent readers (DuckDB and pyarrow) against a
reference computed here, in Python, straight from the raw objects.

Usage: check_lake.py RAW_DIR LAKE_DIR [--expect-failed N] [--expect-rejected N]

The reference applies DESIGN 4.3 itself: one datum per (account, region, namespace, metric,
dimensions, timestamp), the one with the larger count, ties by (sum, max, min, stats, unit);
hourly rollups are min of mins, max of maxes, sum of sums and counts, with no statistics.
Raw objects that do not decompress are left out, and so are the lines of the others that are
not datums (the compactor keeps those under _cwms/rejected/), as the compactor does.
Exits non-zero, naming the first difference, when the lake disagrees.
"""

import argparse
import gzip
import json
import math
import os
import sys
from collections import defaultdict
from datetime import datetime, timezone

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

REQUIRED = ("account_id", "region", "namespace", "metric_name", "timestamp", "value")


def fail(message):
    print(f"check_lake: {message}", file=sys.stderr)
    sys.exit(1)


# The times the decoder takes as epoch milliseconds: 2000-01-01 to 2099-12-31.
EARLIEST_MS, LATEST_MS = 946_684_800_000, 4_102_444_799_999


def datum_of(line):
    """The datum of one line, or None when the line is not one."""
    try:
        d = json.loads(line)
    except Exception:
        return None
    if not isinstance(d, dict) or any(k not in d for k in REQUIRED):
        return None
    v = d["value"]
    if not isinstance(v, dict) or any(not isinstance(v.get(k), (int, float)) or isinstance(v.get(k), bool) for k in ("count", "sum", "max", "min")):
        return None
    if any(not isinstance(x, (int, float)) or isinstance(x, bool) for x in v.values()):
        return None
    if not all(isinstance(d[k], str) and d[k] for k in ("account_id", "region", "namespace", "metric_name")):
        return None
    t = d["timestamp"]
    if not isinstance(t, int) or isinstance(t, bool) or not EARLIEST_MS <= t <= LATEST_MS:
        return None
    return d


def read_object(path):
    """(datums, rejected lines) of a raw object, or None when it does not decompress."""
    data = open(path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except Exception:
            return None
    datums, rejected = [], 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        d = datum_of(line)
        if d is None:
            rejected += 1
        else:
            datums.append(d)
    return datums, rejected


def raw_datums(raw_dir):
    datums, failed, rejected = [], 0, 0
    for root, _, files in os.walk(raw_dir):
        for name in sorted(files):
            got = read_object(os.path.join(root, name))
            if got is None:
                failed += 1
            else:
                datums.extend(got[0])
                rejected += got[1]
    return datums, failed, rejected


def identity(d):
    dims = tuple(sorted((d.get("dimensions") or {}).items()))
    return (d["account_id"], d["region"], d["namespace"], d["metric_name"], dims, int(d["timestamp"]))


def order(d):
    v = d["value"]
    stats = tuple(sorted((k, float(x)) for k, x in v.items() if k not in ("count", "sum", "max", "min")))
    return (float(v["count"]), float(v["sum"]), float(v["max"]), float(v["min"]), stats, d.get("unit") or "None")


def reference(datums):
    best = {}
    for d in datums:
        key = identity(d)
        if key not in best or order(d) > order(best[key]):
            best[key] = d
    return best


def close(a, b):
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("raw")
    parser.add_argument("lake")
    parser.add_argument("--expect-failed", type=int, default=None)
    parser.add_argument("--expect-rejected", type=int, default=None)
    args = parser.parse_args()

    datums, failed, rejected = raw_datums(args.raw)
    if args.expect_failed is not None and failed != args.expect_failed:
        fail(f"expected {args.expect_failed} undecodable raw objects, found {failed}")
    if args.expect_rejected is not None and rejected != args.expect_rejected:
        fail(f"expected {args.expect_rejected} rejected lines, found {rejected}")
    best = reference(datums)
    if not best:
        fail("no datums in the raw zone")

    # pyarrow: the schema is exactly the documented one, and the hive keys read back unescaped.
    files = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(args.lake, "metrics_1m")) for f in fs if f.endswith(".parquet")]
    schema = pq.read_schema(files[0])
    expected_types = {
        "account_id": "dictionary<values=string, indices=int32, ordered=0>",
        "region": "dictionary<values=string, indices=int32, ordered=0>",
        "metric_name": "dictionary<values=string, indices=int32, ordered=0>",
        "dimension_key": "string",
        "series_id": "int64",
        "timestamp": "timestamp[us, tz=UTC]",
        "unit": "dictionary<values=string, indices=int32, ordered=0>",
        "min": "double", "max": "double", "sum": "double", "count": "double",
    }
    names = [f.name for f in schema]
    want = ["account_id", "region", "metric_name", "dimensions", "dimension_key", "series_id", "timestamp", "unit", "min", "max", "sum", "count", "stats"]
    if names != want:
        fail(f"columns {names}, expected {want}")
    for name, t in expected_types.items():
        if str(schema.field(name).type) != t:
            fail(f"column {name} has type {schema.field(name).type}, expected {t}")
    for name, value_type in (("dimensions", pa.string()), ("stats", pa.float64())):
        t = schema.field(name).type
        if not pa.types.is_map(t) or t.item_type != value_type:
            fail(f"column {name} has type {t}")
    meta = pq.read_metadata(files[0])
    if not meta.created_by.startswith("cwms version"):
        fail(f"created_by is {meta.created_by!r}")
    if meta.metadata.get(b"cwms.schema_version") != b"1":
        fail(f"key-value metadata {meta.metadata}")
    dataset = ds.dataset(os.path.join(args.lake, "metrics_1m"), format="parquet", partitioning="hive")
    namespaces = set(dataset.to_table(columns=["namespace"]).column("namespace").to_pylist())
    want_ns = {k[2] for k in best}
    if namespaces != want_ns:
        fail(f"pyarrow sees namespaces {sorted(namespaces)}, the raw zone has {sorted(want_ns)}")

    # DuckDB: every row of metrics_1m equals the reference, and nothing else is there.
    con = duckdb.connect()
    rows = con.execute(
        f"""SELECT account_id, region, namespace, metric_name, map_entries(dimensions), epoch_ms("timestamp"),
                   "count", "sum", "max", "min", map_entries(stats), unit, dimension_key, dt
            FROM read_parquet('{args.lake}/metrics_1m/**/*.parquet', hive_partitioning = true)"""
    ).fetchall()
    if len(rows) != len(best):
        fail(f"metrics_1m has {len(rows)} rows, the reference {len(best)}")
    for r in rows:
        dims = tuple(sorted((e["key"], e["value"]) for e in r[4]))
        key = (r[0], r[1], r[2], r[3], dims, r[5])
        if key not in best:
            fail(f"row {key} is not in the reference")
        d = best[key]
        v = d["value"]
        got = (r[6], r[7], r[8], r[9])
        exp = tuple(float(v[k]) for k in ("count", "sum", "max", "min"))
        if got != exp:
            fail(f"row {key}: values {got}, expected {exp}")
        stats = {e["key"]: e["value"] for e in r[10]}
        exp_stats = {k: float(x) for k, x in v.items() if k not in ("count", "sum", "max", "min")}
        if stats != exp_stats:
            fail(f"row {key}: stats {stats}, expected {exp_stats}")
        if r[11] != (d.get("unit") or "None"):
            fail(f"row {key}: unit {r[11]}")
        day = datetime.fromtimestamp(r[5] / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
        if str(r[13]) != day:
            fail(f"row {key}: in partition dt={r[13]}, its UTC date is {day}")

    # DuckDB: metrics_1h equals the hourly rollup of the reference.
    hours = defaultdict(list)
    for k, d in best.items():
        hours[k[:5] + (k[5] - k[5] % 3_600_000,)].append(d)
    rows = con.execute(
        f"""SELECT account_id, region, namespace, metric_name, map_entries(dimensions), epoch_ms("timestamp"),
                   "count", "sum", "max", "min", cardinality(stats)
            FROM read_parquet('{args.lake}/metrics_1h/**/*.parquet', hive_partitioning = true)"""
    ).fetchall()
    if len(rows) != len(hours):
        fail(f"metrics_1h has {len(rows)} rows, the reference {len(hours)}")
    for r in rows:
        dims = tuple(sorted((e["key"], e["value"]) for e in r[4]))
        key = (r[0], r[1], r[2], r[3], dims, r[5])
        points = sorted(hours.get(key, []), key=lambda d: d["timestamp"])
        if not points:
            fail(f"hourly row {key} is not in the reference")
        count = sum(float(p["value"]["count"]) for p in points)
        total = 0.0
        for p in points:
            total += float(p["value"]["sum"])
        if r[6] != count or not close(r[7], total):
            fail(f"hourly row {key}: count {r[6]} sum {r[7]}, expected {count} {total}")
        if r[8] != max(float(p["value"]["max"]) for p in points) or r[9] != min(float(p["value"]["min"]) for p in points):
            fail(f"hourly row {key}: max/min {r[8]}/{r[9]}")
        if r[10] != 0:
            fail(f"hourly row {key}: a rollup must not carry statistics")

    print(f"check_lake: {len(best)} minute rows and {len(hours)} hourly rows match the reference ({failed} raw objects undecodable, {rejected} lines rejected)")


if __name__ == "__main__":
    main()
