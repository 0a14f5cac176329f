"""Writes a small synthetic cwms lake (and raw zone) with pyarrow, for developing and self-testing the
SQL checks without the Rust compactor.

    python tests/sql/synthetic_lake.py OUT_DIR              # lake written by pyarrow, plus a recent raw zone
    python tests/sql/synthetic_lake.py --raw-only OUT_DIR   # only a complete raw zone, for `cwms compact`

OUT_DIR gets the bucket layout of DESIGN 1 and 4.2:

    OUT_DIR/lake/metrics_1m/dt=YYYY-MM-DD/namespace=<hive-escaped>/HH.parquet
    OUT_DIR/lake/metrics_1h/dt=YYYY-MM-DD/namespace=<hive-escaped>/day.parquet
    OUT_DIR/raw/dt=YYYY-MM-DD/hour=HH/<name>.gz          (gzip NDJSON, metric-stream JSON, by arrival)

The files follow the lake contract (DESIGN 4.1): the 13 columns in order, maps with the Parquet spec's
`key_value`/`key`/`value` names, timestamp(us, UTC), rows sorted by (metric_name, dimension_key,
timestamp), metrics_1h rolled up from metrics_1m with empty stats. Two things are only stand-ins:
series_id is a blake2b fingerprint (the real one is XXH3-64, DESIGN 4.1; nothing here depends on the
algorithm, only on it being one id per series), and the data are random but seeded, so runs agree.
The real lake from the compactor should be checked the same way (check_cookbook.py LAKE_DIR).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import struct
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ACCOUNT = "123456789012"
REGION = "us-east-1"
STREAM = "cwms-synthetic"

# The lake's Arrow schema, DESIGN 4.1 (the compactor writes exactly these, in this order).
LAKE_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("region", pa.string()),
        ("metric_name", pa.string()),
        ("dimensions", pa.map_(pa.string(), pa.string())),
        ("dimension_key", pa.string()),
        ("series_id", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("unit", pa.string()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("sum", pa.float64()),
        ("count", pa.float64()),
        ("stats", pa.map_(pa.string(), pa.float64())),
    ]
)

# (namespace, metric_name, unit, dimension sets, additional statistics)
METRICS = [
    ("AWS/EC2", "CPUUtilization", "Percent", [{"InstanceId": "i-0aaa"}, {"InstanceId": "i-0bbb"}, {"InstanceId": "i-0ccc"}], ["p50", "p99"]),
    ("AWS/EC2", "NetworkIn", "Bytes", [{"InstanceId": "i-0aaa"}, {"InstanceId": "i-0bbb"}], []),
    ("AWS/Lambda", "Duration", "Milliseconds",
     [{"FunctionName": "api"}, {"FunctionName": "worker", "Resource": "worker:live"}, {}],
     ["p50", "p90", "p99", "TM(25%:75%)"]),
    ("AWS/Lambda", "Invocations", "Count", [{"FunctionName": "api"}, {"FunctionName": "worker"}], []),
    # Awkward names: characters that dimension_key escapes, and a namespace that Hive escapes twice over.
    ("My App:Prod", "Latency", "Seconds", [{"Route": "/a,b=c", "Method": "GET"}, {"Route": "\\x"}], ["p99.9"]),
]

# UTC hours with data: the last two hours of one day and the first four of the next.
HOURS = [datetime(2026, 11, 24, h, tzinfo=timezone.utc) for h in (22, 23)] + [
    datetime(2026, 11, 25, h, tzinfo=timezone.utc) for h in range(4)
]
RAW_NOW = datetime(2026, 11, 25, 4, 5, tzinfo=timezone.utc)  # the raw zone's "now"


def hive_escape(value: str) -> str:
    """Hive's FileUtils.escapePathName: the characters Hive, Spark and DuckDB escape in partition paths."""
    special = set('"#%\'*/:=?\\\x7f{[]^')
    return "".join(f"%{ord(c):02X}" if (c in special or ord(c) < 0x20) else c for c in value)


def dimension_key(dimensions: dict[str, str]) -> str:
    """DESIGN 4.1: Name=Value pairs sorted by name, joined with ',', escaping \\ , = with \\."""

    def esc(s: str) -> str:
        return "".join("\\" + c if c in "\\,=" else c for c in s)

    return ",".join(f"{esc(k)}={esc(v)}" for k, v in sorted(dimensions.items()))


def series_id(namespace: str, metric_name: str, dkey: str) -> int:
    """Stand-in fingerprint (the real one is XXH3-64 over the same length-prefixed fields)."""
    h = hashlib.blake2b(digest_size=8)
    for field in (ACCOUNT, REGION, namespace, metric_name, dkey):
        b = field.encode()
        h.update(struct.pack("<I", len(b)) + b)
    return struct.unpack("<q", h.digest())[0]


def datums(rng: random.Random):
    """Yields one dict per (series, minute) with some gaps, unaligned timestamps and missing stats."""
    for namespace, metric, unit, dim_sets, stat_names in METRICS:
        for dims in dim_sets:
            dkey = dimension_key(dims)
            sid = series_id(namespace, metric, dkey)
            for hour in HOURS:
                for minute in range(60):
                    if rng.random() < 0.05:  # a missing minute
                        continue
                    ts = hour + timedelta(minutes=minute)
                    if metric == "Latency":  # timestamps need not fall on a minute boundary
                        ts += timedelta(seconds=13, microseconds=250_000)
                    count = float(rng.randint(0, 5)) if metric != "CPUUtilization" else 1.0
                    values = sorted(rng.uniform(0, 100) for _ in range(max(int(count), 1)))
                    lo, hi = values[0], values[-1]
                    total = sum(values) if count else 0.0
                    stats = {}
                    if count and rng.random() > 0.1:  # a minute without its percentiles
                        for name in stat_names:
                            stats[name] = round(rng.uniform(lo, hi), 4)
                    yield {
                        "namespace": namespace,
                        "account_id": ACCOUNT,
                        "region": REGION,
                        "metric_name": metric,
                        "dimensions": dims,
                        "dimension_key": dkey,
                        "series_id": sid,
                        "timestamp": ts,
                        "unit": unit,
                        "min": lo if count else 0.0,
                        "max": hi if count else 0.0,
                        "sum": total,
                        "count": count,
                        "stats": stats,
                    }


def _table(rows: list[dict]) -> pa.Table:
    rows = sorted(rows, key=lambda r: (r["metric_name"], r["dimension_key"], r["timestamp"]))
    columns = {name: [] for name in LAKE_SCHEMA.names}
    for r in rows:
        for name in LAKE_SCHEMA.names:
            v = r[name]
            if name in ("dimensions", "stats"):
                v = sorted(v.items())  # keys sorted, DESIGN 4.1
            columns[name].append(v)
    return pa.Table.from_pydict(columns, schema=LAKE_SCHEMA)


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table,
        path,
        compression="zstd",
        use_dictionary=["account_id", "region", "metric_name", "unit", "dimension_key"],
        coerce_timestamps="us",
        write_statistics=True,
        row_group_size=4096,
    )


def rollup(rows: list[dict]) -> list[dict]:
    """DESIGN 4.3: one row per series per UTC hour; min of mins, max of maxes, sums; stats empty."""
    groups: dict[tuple, dict] = {}
    for r in rows:
        hour = r["timestamp"].replace(minute=0, second=0, microsecond=0)
        key = (r["series_id"], hour)
        g = groups.get(key)
        if g is None:
            groups[key] = dict(r, timestamp=hour, stats={})
        else:
            g["min"] = min(g["min"], r["min"])
            g["max"] = max(g["max"], r["max"])
            g["sum"] += r["sum"]
            g["count"] += r["count"]
    return list(groups.values())


def write_lake(out: Path, seed: int = 20261125) -> None:
    rng = random.Random(seed)
    rows = list(datums(rng))
    by_hour: dict[tuple, list] = {}
    by_day: dict[tuple, list] = {}
    for r in rows:
        dt = r["timestamp"].strftime("%Y-%m-%d")
        by_hour.setdefault((dt, r["namespace"], r["timestamp"].strftime("%H")), []).append(r)
        by_day.setdefault((dt, r["namespace"]), []).append(r)
    lake = out / "lake"
    for (dt, ns, hh), part in sorted(by_hour.items()):
        _write(_table(part), lake / "metrics_1m" / f"dt={dt}" / f"namespace={hive_escape(ns)}" / f"{hh}.parquet")
    for (dt, ns), part in sorted(by_day.items()):
        _write(_table(rollup(part)), lake / "metrics_1h" / f"dt={dt}" / f"namespace={hive_escape(ns)}" / "day.parquet")
    write_raw(out / "raw", rows, rng)


def write_raw_only(out: Path, seed: int = 20261125) -> None:
    """Only the raw zone, holding EVERY datum of the synthetic data set (as Firehose would have
    delivered them), for the real compactor to turn into a lake: `cwms compact --raw OUT/raw --lake OUT/lake`."""
    rng = random.Random(seed)
    write_raw(out / "raw", list(datums(rng)), rng, since=None)


def write_raw(raw: Path, rows: list[dict], rng: random.Random, since: datetime | None = RAW_NOW - timedelta(minutes=50)) -> None:
    """Metric-stream JSON lines for the datums from `since` (all when None) to 4 minutes before RAW_NOW,
    each delivered by Firehose 1 to 4 minutes after its timestamp (so arrival hours straddle the hour),
    some twice (at-least-once)."""
    by_object: dict[tuple, list[str]] = {}
    for r in rows:
        if (since is not None and r["timestamp"] < since) or r["timestamp"] >= RAW_NOW - timedelta(minutes=4):
            continue
        value = {"count": r["count"], "sum": r["sum"], "max": r["max"], "min": r["min"], **r["stats"]}
        line = json.dumps(
            {
                "metric_stream_name": STREAM,
                "account_id": r["account_id"],
                "region": r["region"],
                "namespace": r["namespace"],
                "metric_name": r["metric_name"],
                "dimensions": r["dimensions"],
                "timestamp": int(r["timestamp"].timestamp() * 1000),
                "value": value,
                "unit": r["unit"],
            },
            separators=(",", ":"),
        )
        deliveries = 2 if rng.random() < 0.05 else 1  # at-least-once
        for _ in range(deliveries):
            arrival = r["timestamp"] + timedelta(minutes=rng.randint(1, 4))
            # Firehose flushes every 5 minutes: one object per arrival 5-minute slot.
            slot = arrival.replace(minute=arrival.minute - arrival.minute % 5, second=0, microsecond=0)
            by_object.setdefault((slot,), []).append(line)
    # An older arrival hour that the freshness window must skip.
    old = RAW_NOW - timedelta(hours=5)
    by_object.setdefault((old.replace(minute=0, second=0, microsecond=0),), []).append(
        json.dumps({"metric_stream_name": STREAM, "account_id": ACCOUNT, "region": REGION, "namespace": "AWS/EC2",
                    "metric_name": "CPUUtilization", "dimensions": {"InstanceId": "i-0old"},
                    "timestamp": int(old.timestamp() * 1000),
                    "value": {"count": 1.0, "sum": 1.0, "max": 1.0, "min": 1.0}, "unit": "Percent"})
    )
    for (slot,), lines in sorted(by_object.items()):
        path = raw / f"dt={slot:%Y-%m-%d}" / f"hour={slot:%H}" / f"{STREAM}-1-{slot:%Y-%m-%d-%H-%M-%S}-synthetic.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        # mtime=0: the same input gives the same bytes.
        with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
            gz.write(("\n".join(lines) + "\n").encode())


def main(argv: list[str]) -> int:
    args = argv[1:]
    raw_only = args[:1] == ["--raw-only"]
    if raw_only:
        args = args[1:]
    if len(args) != 1:
        print("usage: synthetic_lake.py [--raw-only] OUT_DIR", file=sys.stderr)
        return 2
    if raw_only:
        write_raw_only(Path(args[0]))
        print(f"wrote a synthetic raw zone to {args[0]}/raw")
    else:
        write_lake(Path(args[0]))
        print(f"wrote a synthetic lake to {args[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
