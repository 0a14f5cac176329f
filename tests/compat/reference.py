"""The lake a raw zone must give, computed from the raw objects alone (no Parquet reader involved).

Every raw object below RAW is read (gzip or plain, told by its bytes), one CloudWatch metric-stream
JSON datum per line, and the lake's rows are derived here from the documented rules:

- identity (DESIGN 4.3): account_id, region, namespace, metric_name, dimensions, timestamp; of the
  datums sharing one, the one kept has the larger count, ties broken by the total order over sum,
  max, min, additional statistics (sorted by name, compared pair by pair, then by length), unit and
  stream name, numbers compared as Rust's f64::total_cmp does;
- dimension_key (DESIGN 4.1, cwms_model::dimension_key): Name=Value pairs sorted by name, joined
  with ',', every \\ , = inside a name or value escaped with \\;
- series_id: XXH3-64, seed 0, over the length-prefixed (4-byte little-endian) UTF-8 fields
  account_id, region, namespace, metric_name, dimension_key, as a signed 64-bit integer (computed
  with the xxhash package, the C reference implementation, not with the Rust code under test);
- dt: the UTC date of the timestamp; namespace as streamed (readers unescape the Hive path);
- metrics_1h (cwms_merge::rollup_hourly): one row per series and UTC hour, timestamp = hour start,
  count and sum added in timestamp order starting from the first point, min and max by total order,
  unit of the hour's latest point, stats empty.

A raw zone Firehose wrote without a transform may hold records a producer damaged: with
lenient=True, an object that does not decompress and a line that is not a datum (the compactor
reports the first and keeps the second under _cwms/rejected/) are counted and left out, by the
rules of cwms-decode (a JSON object with account_id, region, namespace and metric_name non-empty
strings, an integer timestamp from 2000 to 2099, a value object of numbers with count, sum, max
and min); without it, they are an error.

Only the standard library and xxhash are needed, so every reader venv can compute it.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone

import xxhash

HOUR_MS = 3_600_000
MEASURES = ("count", "sum", "max", "min")

# The columns every reader is asked for, in this order; a row is a tuple of them.
COLUMNS = (
    "account_id", "region", "namespace", "dt", "metric_name", "dimensions", "dimension_key", "series_id",
    "timestamp_us", "unit", "min", "max", "sum", "count", "stats",
)
COLUMN_INDEX = {name: i for i, name in enumerate(COLUMNS)}


def total_key(x: float) -> int:
    """The order of Rust's f64::total_cmp as an integer: -NaN < -inf < ... < -0.0 < 0.0 < ... < NaN."""
    bits = struct.unpack("<q", struct.pack("<d", x))[0]
    return bits ^ 0x7FFF_FFFF_FFFF_FFFF if bits < 0 else bits


def escape(s: str) -> str:
    return "".join("\\" + c if c in "\\,=" else c for c in s)


def dimension_key(pairs: list[tuple[str, str]]) -> str:
    return ",".join(f"{escape(k)}={escape(v)}" for k, v in sorted(pairs))


def series_id(account_id: str, region: str, namespace: str, metric_name: str, dkey: str) -> int:
    h = xxhash.xxh3_64(seed=0)
    for field in (account_id, region, namespace, metric_name, dkey):
        b = field.encode()
        h.update(struct.pack("<I", len(b)) + b)
    return struct.unpack("<q", struct.pack("<Q", h.intdigest()))[0]


def utc_date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


@dataclass
class Datum:
    account_id: str
    region: str
    namespace: str
    metric_name: str
    dimensions: list[tuple[str, str]]  # sorted by name
    timestamp_ms: int
    unit: str
    count: float
    sum: float
    max: float
    min: float
    stats: list[tuple[str, float]]  # sorted by name, then value
    stream: str | None

    def identity(self):
        return (self.account_id, self.region, self.namespace, self.metric_name, tuple(self.dimensions), self.timestamp_ms)

    def order(self):
        return (
            total_key(self.count), total_key(self.sum), total_key(self.max), total_key(self.min),
            [(name, total_key(v)) for name, v in self.stats],
            self.unit,
            (0, "") if self.stream is None else (1, self.stream),
        )


def parse(line: bytes, where: str) -> Datum:
    d = json.loads(line)
    v = d["value"]
    for key in MEASURES:
        if not isinstance(v.get(key), (int, float)) or isinstance(v.get(key), bool):
            raise ValueError(f"{where}: value.{key} is {v.get(key)!r}")
    return Datum(
        account_id=d["account_id"], region=d["region"], namespace=d["namespace"], metric_name=d["metric_name"],
        dimensions=sorted((d.get("dimensions") or {}).items()), timestamp_ms=int(d["timestamp"]),
        unit=d.get("unit") or "None",
        count=float(v["count"]), sum=float(v["sum"]), max=float(v["max"]), min=float(v["min"]),
        stats=sorted(((k, float(x)) for k, x in v.items() if k not in MEASURES), key=lambda kv: (kv[0], total_key(kv[1]))),
        stream=d.get("metric_stream_name"),
    )


# The times the decoder takes as epoch milliseconds: 2000-01-01 to 2099-12-31 (cwms_decode::rules).
EARLIEST_MS, LATEST_MS = 946_684_800_000, 4_102_444_799_999


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")


def is_datum(line: bytes) -> bool:
    """Whether the compactor takes this line as a datum (the rules in the module's docstring)."""
    try:
        # NaN and Infinity are not JSON, though Python's json takes them.
        d = json.loads(line, parse_constant=_not_json)
    except ValueError:
        return False
    if not isinstance(d, dict):
        return False
    if not all(isinstance(d.get(k), str) and d[k] for k in ("account_id", "region", "namespace", "metric_name")):
        return False
    t, v = d.get("timestamp"), d.get("value")
    if not isinstance(t, int) or isinstance(t, bool) or not EARLIEST_MS <= t <= LATEST_MS:
        return False
    return isinstance(v, dict) and all(k in v for k in MEASURES) and all(_number(x) for x in v.values())


@dataclass
class RawZone:
    datums: list[Datum]
    failed_objects: int  # objects that do not decompress (lenient only)
    rejected_lines: int  # lines that are not datums (lenient only)


def read_raw(raw_dir: str, lenient: bool = False) -> RawZone:
    """Every datum of every object below raw_dir. A raw object cwms wrote always decodes, so
    without lenient any line that does not is an error here (naming the object and line)."""
    zone = RawZone([], 0, 0)
    for root, _, names in sorted(os.walk(raw_dir)):
        for name in sorted(names):
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()
            if data[:2] == b"\x1f\x8b":
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError, zlib.error):
                    if not lenient:
                        raise
                    zone.failed_objects += 1
                    continue
            for number, line in enumerate(data.split(b"\n"), 1):
                if not line.strip():
                    continue
                if lenient and not is_datum(line):
                    zone.rejected_lines += 1
                    continue
                zone.datums.append(parse(line, f"{path}:{number}"))
    if not zone.datums:
        raise ValueError(f"{raw_dir}: no datums")
    return zone


def raw_datums(raw_dir: str) -> list[Datum]:
    """Every datum of every object below raw_dir (read_raw, not lenient)."""
    return read_raw(raw_dir).datums


def merged(datums: list[Datum]) -> dict:
    best: dict = {}
    for d in datums:
        key = d.identity()
        if key not in best or d.order() > best[key].order():
            best[key] = d
    return best


def _row(d: Datum, timestamp_ms: int, unit: str, count, total, mx, mn, stats) -> tuple:
    dkey = dimension_key(d.dimensions)
    return (
        d.account_id, d.region, d.namespace, utc_date(timestamp_ms), d.metric_name, tuple(d.dimensions), dkey,
        series_id(d.account_id, d.region, d.namespace, d.metric_name, dkey),
        timestamp_ms * 1000, unit, mn, mx, total, count, tuple(stats),
    )


def tables(raw_dir: str) -> dict[str, list[tuple]]:
    """{"metrics_1m": rows, "metrics_1h": rows}, each row a tuple in COLUMNS order."""
    return tables_of(raw_datums(raw_dir))


def tables_of(datums: list[Datum]) -> dict[str, list[tuple]]:
    """tables() of these datums."""
    best = merged(datums)
    minutes = [_row(d, d.timestamp_ms, d.unit, d.count, d.sum, d.max, d.min, d.stats) for d in best.values()]
    hours: dict = {}
    for d in sorted(best.values(), key=lambda d: d.identity()):
        hours.setdefault(d.identity()[:5] + (d.timestamp_ms - d.timestamp_ms % HOUR_MS,), []).append(d)
    rollups = []
    for key, points in hours.items():
        first = points[0]
        count, total, mx, mn = first.count, first.sum, first.max, first.min
        for p in points[1:]:
            count += p.count
            total += p.sum
            if total_key(p.min) < total_key(mn):
                mn = p.min
            if total_key(p.max) > total_key(mx):
                mx = p.max
        rollups.append(_row(first, key[5], points[-1].unit, count, total, mx, mn, ()))
    return {"metrics_1m": minutes, "metrics_1h": rollups}
