#!/usr/bin/env python3
"""Checks the Athena DDL and cookbook against a cwms lake directory.

    python tests/sql/check_cookbook.py LAKE_DIR
    python tests/sql/check_cookbook.py --synthetic        # builds a small lake with synthetic_lake.py
    python tests/sql/check_cookbook.py --cwms target/debug/cwms
                       # writes a synthetic raw zone, runs `cwms compact --raw R --lake L` on it, checks L
    python tests/sql/check_cookbook.py LAKE_DIR --reference lake   # a lake whose raw zone is partial

LAKE_DIR is a bucket root holding lake/ (and usually raw/), or the lake/ directory itself (then raw/ is
looked for beside it). Layout per DESIGN 4.2: lake/metrics_1m/dt=YYYY-MM-DD/namespace=<escaped>/HH.parquet,
lake/metrics_1h/dt=.../namespace=.../day.parquet, raw/dt=YYYY-MM-DD/hour=HH/*.gz.

What it checks, each as a named check:
  ddl:<table>       the Athena DDL's columns (names, types, order) and partition keys against the real
                    files: Parquet schema of every lake file (maps with key_value/key/value, timestamp in
                    microseconds UTC, no partition column inside a file), the Hive path layout, and for raw
                    the JSON keys and value types of its lines.
  header:<query>    each cookbook file has an `-- Answers:` line and one `-- @param` line per `?`.
  query:<query>     the query, adapted to DuckDB by athena_dialect.py (the only place the dialect rules
                    live), run over the lake, equals a reference answer computed a different way: with
                    pyarrow.compute over the tables tests/compat/reference.py derives from the raw zone
                    alone (the merge law, dimension_key, series_id and the rollup computed in Python,
                    no Parquet read), and plain json+gzip for the raw table's own query.
  query:<query>@awkward  the same with the most awkward parameters the data offers (the namespace,
                    metric and series whose names have the most characters that need escaping), when
                    they differ from the busiest ones.
  lake:rollup       metrics_1h agrees with metrics_1m on the chosen day (a property of the lake itself).
Parameters are chosen from the data (the busiest day, namespace, metric, series and statistic), so a
real lake works without configuration. Ends with the line "N passed, N failed"; exit status 1 on failure.

--reference says where the reference answers come from: raw (the default when a raw zone is beside
the lake, and always with --cwms: the raw zone must then hold every datum the lake holds, as a test's
does) or lake (pyarrow over the lake's own files: only a check of the SQL, for a real lake whose raw
zone has expired, and for --synthetic, whose raw zone holds only the last hour).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import re
import subprocess
import sys
import tempfile
import traceback
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import athena_dialect as dialect  # noqa: E402
import lake_contract as contract  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compat"))
import reference as raw_reference  # noqa: E402

QUERIES_DIR = contract.REPO / "infra" / "sql" / "athena" / "queries"
REL_TOL = 1e-9
MAX_FILES_SCHEMA_CHECKED = 500


class CheckFailed(Exception):
    pass


# ---------------------------------------------------------------------------------------------------
# Locating the lake
# ---------------------------------------------------------------------------------------------------


def locate(lake_dir: Path) -> tuple[Path, Path | None]:
    """(directory holding metrics_1m/ and metrics_1h/, raw directory or None)."""
    if (lake_dir / "lake" / "metrics_1m").is_dir():
        tables, raw = lake_dir / "lake", lake_dir / "raw"
    elif (lake_dir / "metrics_1m").is_dir():
        tables, raw = lake_dir, lake_dir.parent / "raw"
    else:
        raise SystemExit(f"{lake_dir}: no lake/metrics_1m or metrics_1m directory here")
    if not (tables / "metrics_1h").is_dir():
        raise SystemExit(f"{tables}: no metrics_1h directory")
    return tables, (raw if raw.is_dir() and any(raw.rglob("*.gz")) else None)


# ---------------------------------------------------------------------------------------------------
# Reading the lake with pyarrow (the reference reader)
# ---------------------------------------------------------------------------------------------------


def read_table(tables_dir: Path, name: str):
    import pyarrow as pa
    import pyarrow.dataset as ds

    partitioning = ds.partitioning(pa.schema([("dt", pa.string()), ("namespace", pa.string())]), flavor="hive")
    table = ds.dataset(tables_dir / name, format="parquet", partitioning=partitioning).to_table()
    # The compactor may declare its string columns as Arrow dictionaries; compute on plain strings.
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table


def read_raw(raw_dir: Path) -> list[dict]:
    """Every raw line as a dict, plus its arrival partition (dt, hour) from the path."""
    rows = []
    for path in sorted(raw_dir.rglob("*.gz")):
        keys = dict(part.split("=", 1) for part in path.relative_to(raw_dir).parts[:-1] if "=" in part)
        with gzip.open(path, "rt") as f:
            for line in f:
                if line.strip():
                    rows.append(dict(json.loads(line), _dt=keys.get("dt"), _hour=keys.get("hour")))
    return rows


def reference_tables(raw_dir: Path) -> dict:
    """metrics_1m and metrics_1h as tests/compat/reference.py computes them from the raw zone alone,
    as Arrow tables with the lake's columns plus dt and namespace (as a Hive read gives them)."""
    import pyarrow as pa

    C = raw_reference.COLUMN_INDEX
    types = {
        "account_id": pa.string(), "region": pa.string(), "namespace": pa.string(), "dt": pa.string(),
        "metric_name": pa.string(), "dimensions": pa.map_(pa.string(), pa.string()), "dimension_key": pa.string(),
        "series_id": pa.int64(), "unit": pa.string(), "min": pa.float64(), "max": pa.float64(),
        "sum": pa.float64(), "count": pa.float64(), "stats": pa.map_(pa.string(), pa.float64()),
    }
    out = {}
    for table, rows in raw_reference.tables(str(raw_dir)).items():
        columns = {name: pa.array([r[C[name]] for r in rows], t) for name, t in types.items()}
        timestamps = pa.array([r[C["timestamp_us"]] for r in rows], pa.int64())
        columns["timestamp"] = timestamps.cast(pa.timestamp("us", tz="UTC"))
        out[table] = pa.table(columns)
    return out


def naive_utc(value):
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


# ---------------------------------------------------------------------------------------------------
# ddl:<table>
# ---------------------------------------------------------------------------------------------------


def check_lake_ddl(table: str, tables_dir: Path) -> str:
    import pyarrow.parquet as pq

    ddl = contract.athena_tables()[table]
    root = tables_dir / table
    files = sorted(root.rglob("*.parquet"))
    if not files:
        raise CheckFailed(f"{root}: no Parquet files")
    problems = []
    expected_name = re.compile(r"^\d{2}\.parquet$") if table == "metrics_1m" else re.compile(r"^day\.parquet$")
    partition_names = [c.name for c in ddl.partition_keys]
    for path in files[:MAX_FILES_SCHEMA_CHECKED]:
        rel = path.relative_to(root)
        keys = [p.split("=", 1)[0] for p in rel.parts[:-1]]
        if keys != partition_names:
            problems.append(f"{rel}: path keys {keys}, DDL partitions {partition_names}")
        if not expected_name.match(rel.name):
            problems.append(f"{rel}: object name is not {expected_name.pattern}")
        dt_value = rel.parts[0].split("=", 1)[-1]
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", dt_value):
            problems.append(f"{rel}: dt={dt_value} is not YYYY-MM-DD")
        ns_segment = rel.parts[1].split("=", 1)[-1] if len(rel.parts) > 2 else ""
        if "/" in ns_segment or re.search(r"[:=#?*\[\]^\\]", ns_segment):
            problems.append(f"{rel}: namespace segment {ns_segment!r} is not Hive-escaped")
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
        names = schema.names
        if names != [c.name for c in ddl.columns]:
            problems.append(f"{rel}: columns {names} != DDL {[c.name for c in ddl.columns]}")
            continue
        for col in ddl.columns:
            why = contract.arrow_matches_hive(schema.field(col.name).type, col.type)
            if why:
                problems.append(f"{rel}: column {col.name} ({col.type}): {why}")
            if col.type.startswith("map<"):
                why = contract.parquet_map_groups(pf.schema, col.name)
                if why:
                    problems.append(f"{rel}: {why}")
        for key in partition_names:
            if key in names:
                problems.append(f"{rel}: partition column {key} is also stored in the file")
    if problems:
        raise CheckFailed("\n    ".join(problems[:20]) + (f"\n    ... {len(problems) - 20} more" if len(problems) > 20 else ""))
    return f"{min(len(files), MAX_FILES_SCHEMA_CHECKED)} of {len(files)} files match {ddl.source.name}"


def check_raw_ddl(raw_dir: Path) -> str:
    ddl = contract.athena_tables()["raw"]
    columns = {c.name: c.type for c in ddl.columns}
    problems, lines = [], 0
    files = sorted(raw_dir.rglob("*.gz"))
    for path in files[:50]:
        rel = path.relative_to(raw_dir)
        keys = [p.split("=", 1)[0] for p in rel.parts[:-1]]
        if keys != [c.name for c in ddl.partition_keys]:
            problems.append(f"{rel}: path keys {keys}, DDL partitions {[c.name for c in ddl.partition_keys]}")
        with gzip.open(path, "rt") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                lines += 1
                obj = json.loads(line)
                if set(obj) != set(columns):
                    problems.append(f"{rel}:{number}: keys {sorted(obj)} != DDL {sorted(columns)}")
                for key, hive in columns.items():
                    v = obj.get(key)
                    ok = {
                        "string": isinstance(v, str),
                        "bigint": isinstance(v, int) and not isinstance(v, bool),
                        "map<string,string>": isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
                        "map<string,double>": isinstance(v, dict)
                        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v.values()),
                    }.get(hive)
                    if ok is None:
                        problems.append(f"no rule for raw column type {hive}")
                    elif not ok:
                        problems.append(f"{rel}:{number}: {key}={v!r} is not {hive}")
                if len(problems) > 20:
                    break
    if problems:
        raise CheckFailed("\n    ".join(problems[:20]))
    return f"{lines} lines in {min(len(files), 50)} raw objects match raw.sql"


# ---------------------------------------------------------------------------------------------------
# Choosing parameters from the data
# ---------------------------------------------------------------------------------------------------


def awkwardness(value) -> int:
    """How many characters of a name (or of the strings of a key) need care: anything but ASCII
    letters, digits, '_', '-' and '.'."""
    if isinstance(value, tuple):
        return sum(awkwardness(v) for v in value)
    if not isinstance(value, str):
        return 0
    return sum(not (c.isascii() and (c.isalnum() or c in "_-.")) for c in value)


def choose_params(m1m, m1h, raw_rows: list[dict] | None, awkward: bool = False) -> dict:
    """The busiest (dt, namespace), metric and series; the series with the most statistic values.
    With awkward, the most awkward ones instead (see awkwardness), the busiest of those."""

    def busiest(counter: Counter):
        # Most rows first; ties broken by the key itself so the choice is deterministic.
        rank = (lambda kv: (-awkwardness(kv[0]), -kv[1], kv[0])) if awkward else (lambda kv: (-kv[1], kv[0]))
        return sorted(counter.items(), key=rank)[0][0]

    rows = m1m.select(["dt", "namespace", "metric_name", "dimension_key"]).to_pylist()
    dt, ns = busiest(Counter((r["dt"], r["namespace"]) for r in rows))
    metric = busiest(Counter(r["metric_name"] for r in rows if (r["dt"], r["namespace"]) == (dt, ns)))
    dkey = busiest(
        Counter(r["dimension_key"] for r in rows if (r["dt"], r["namespace"], r["metric_name"]) == (dt, ns, metric))
    )
    params = {"dt": dt, "namespace": ns, "metric_name": metric, "dimension_key": dkey}

    stat_counts: Counter = Counter()
    cols = m1m.select(["dt", "namespace", "metric_name", "dimension_key", "stats"]).to_pylist()
    for r in cols:
        for key, _ in r["stats"] or []:
            stat_counts[(r["dt"], r["namespace"], r["metric_name"], r["dimension_key"], key)] += 1
    if stat_counts:
        p = busiest(stat_counts)
        params["stats"] = dict(zip(["dt", "namespace", "metric_name", "dimension_key", "statistic"], p))

    hourly = m1h.select(["dt", "namespace", "metric_name", "dimension_key"]).to_pylist()
    series_per_metric = defaultdict(set)
    for r in hourly:
        series_per_metric[(r["namespace"], r["metric_name"])].add(r["dimension_key"])
    top_ns, top_metric = busiest(Counter({k: len(v) for k, v in series_per_metric.items()}))
    days = sorted({r["dt"] for r in hourly})
    params["top"] = {"from_dt": days[0], "to_dt": days[-1], "namespace": top_ns, "metric_name": top_metric}

    if raw_rows:
        newest = max(r["timestamp"] for r in raw_rows)
        # "Now" is one minute after the newest datum, so the 30-minute window holds real data.
        now = datetime.fromtimestamp(newest / 1000, tz=timezone.utc).replace(tzinfo=None) + timedelta(minutes=1)
        window = (now - timedelta(minutes=30)).timestamp()
        recent = Counter(
            r["namespace"]
            for r in raw_rows
            if r["timestamp"] >= (now.replace(tzinfo=timezone.utc) - timedelta(minutes=30)).timestamp() * 1000
        )
        del window
        params["raw"] = {"now": now, "namespace": busiest(recent)}
    return params


# ---------------------------------------------------------------------------------------------------
# Reference answers (pyarrow.compute; json+gzip for raw), one per cookbook query
# ---------------------------------------------------------------------------------------------------


def _ratio(num, den):
    return None if den in (0, None) or num is None else num / den


def ref_series_day(lake, p):
    import pyarrow.compute as pc

    t = lake["metrics_1m"]
    t = t.filter(
        (pc.field("dt") == p["dt"])
        & (pc.field("namespace") == p["namespace"])
        & (pc.field("metric_name") == p["metric_name"])
        & (pc.field("dimension_key") == p["dimension_key"])
    )
    t = t.sort_by([("timestamp", "ascending"), ("account_id", "ascending"), ("region", "ascending")])
    avg = pc.if_else(pc.equal(t["count"], 0), None, pc.divide(t["sum"], t["count"]))
    cols = [t[c].to_pylist() for c in ["timestamp", "account_id", "region", "unit", "min", "max", "sum", "count"]]
    return [tuple(naive_utc(v) for v in row) + (a,) for row, a in zip(zip(*cols), avg.to_pylist())]


def args_series_day(p):
    return [p["dt"], p["namespace"], p["metric_name"], p["dimension_key"]]


def ref_top_series_by_average(lake, p):
    import pyarrow.compute as pc

    q = p["top"]
    t = lake["metrics_1m"]  # from the minutes, not the rollup the query reads
    t = t.filter(
        (pc.field("dt") >= q["from_dt"])
        & (pc.field("dt") <= q["to_dt"])
        & (pc.field("namespace") == q["namespace"])
        & (pc.field("metric_name") == q["metric_name"])
    )
    t = t.append_column("hour", pc.floor_temporal(t["timestamp"], unit="hour"))
    g = t.group_by(["account_id", "region", "dimension_key"]).aggregate(
        [("sum", "sum"), ("count", "sum"), ("max", "max"), ("hour", "count_distinct")]
    )
    rows = [
        (r["account_id"], r["region"], r["dimension_key"], _ratio(r["sum_sum"], r["count_sum"]), r["max_max"],
         r["count_sum"], r["hour_count_distinct"])
        for r in g.to_pylist()
    ]
    rows.sort(key=lambda r: (r[3] is None, -(r[3] or 0.0), r[2], r[0], r[1]))
    return rows[:10]


def args_top_series_by_average(p):
    q = p["top"]
    return [q["from_dt"], q["to_dt"], q["namespace"], q["metric_name"]]


def ref_percentiles_over_time(lake, p):
    import pyarrow as pa
    import pyarrow.compute as pc

    q = p["stats"]
    t = lake["metrics_1m"].filter(
        (pc.field("dt") == q["dt"])
        & (pc.field("namespace") == q["namespace"])
        & (pc.field("metric_name") == q["metric_name"])
        & (pc.field("dimension_key") == q["dimension_key"])
    )
    value = pc.map_lookup(t["stats"], pa.scalar(q["statistic"]), "first")
    t = pa.table({"hour": pc.floor_temporal(t["timestamp"], unit="hour"), "v": value})
    g = t.group_by("hour").aggregate([("v", "count"), ("v", "min"), ("v", "mean"), ("v", "max")]).sort_by("hour")
    return [(naive_utc(r["hour"]), r["v_count"], r["v_min"], r["v_mean"], r["v_max"]) for r in g.to_pylist()]


def args_percentiles_over_time(p):
    q = p["stats"]
    return [q["statistic"], q["dt"], q["namespace"], q["metric_name"], q["dimension_key"]]


def rollup_comparison(lake, p):
    """Every (series, hour) of the day with both sides and the verdict, in the query's order."""
    import pyarrow.compute as pc

    day = (pc.field("dt") == p["dt"]) & (pc.field("namespace") == p["namespace"])
    m = lake["metrics_1m"].filter(day)
    m = m.append_column("hour", pc.floor_temporal(m["timestamp"], unit="hour"))
    g = m.group_by(["series_id", "metric_name", "dimension_key", "hour"]).aggregate(
        [("min", "min"), ("max", "max"), ("sum", "sum"), ("count", "sum")]
    )
    minutes = {(r["series_id"], naive_utc(r["hour"])): r for r in g.to_pylist()}
    hours = {(r["series_id"], naive_utc(r["timestamp"])): r for r in lake["metrics_1h"].filter(day).to_pylist()}
    out = []
    for key in minutes.keys() | hours.keys():
        a, b = minutes.get(key), hours.get(key)
        if b is None:
            verdict = "missing in metrics_1h"
        elif a is None:
            verdict = "missing in metrics_1m"
        elif a["count_sum"] != b["count"]:
            verdict = "count differs"
        elif a["min_min"] != b["min"] or a["max_max"] != b["max"]:
            verdict = "min or max differs"
        elif abs(a["sum_sum"] - b["sum"]) > 1e-9 * max(abs(a["sum_sum"]), abs(b["sum"]), 1.0):
            verdict = "sum differs"
        else:
            verdict = "ok"
        src = a or b
        out.append(
            (
                (verdict != "ok", src["metric_name"], src["dimension_key"], key[1], key[0]),
                (src["metric_name"], src["dimension_key"], key[1], verdict,
                 a["count_sum"] if a else None, b["count"] if b else None,
                 a["sum_sum"] if a else None, b["sum"] if b else None),
            )
        )
    out.sort(key=lambda kv: (not kv[0][0],) + kv[0][1:])
    return [row for _, row in out]


def ref_rollup_consistency(lake, p):
    return rollup_comparison(lake, p)


def args_rollup_consistency(p):
    return [p["dt"], p["namespace"], p["dt"], p["namespace"]]


def ref_freshest_minutes(lake, p):
    q = p["raw"]
    now = q["now"].replace(tzinfo=timezone.utc)
    since_partition = (now - timedelta(hours=1)).strftime("%Y-%m-%d-%H")
    since_ms = (now - timedelta(minutes=30)).timestamp() * 1000
    groups: dict[tuple, list] = defaultdict(list)
    for r in lake["raw"]:
        if f"{r['_dt']}-{r['_hour']}" < since_partition or r["timestamp"] < since_ms or r["namespace"] != q["namespace"]:
            continue
        minute = datetime.fromtimestamp(r["timestamp"] / 1000, tz=timezone.utc).replace(second=0, microsecond=0)
        groups[(r["metric_name"], minute.replace(tzinfo=None))].append(r["value"])
    rows = [
        (metric, minute, len(vs), _ratio(sum(v["sum"] for v in vs), sum(v["count"] for v in vs)), max(v["max"] for v in vs))
        for (metric, minute), vs in groups.items()
    ]
    rows.sort(key=lambda r: (-r[1].timestamp(), r[0]))
    return rows


def args_freshest_minutes(p):
    return [p["raw"]["namespace"]]


REFERENCES = {
    "series_day": (ref_series_day, args_series_day, None),
    "top_series_by_average": (ref_top_series_by_average, args_top_series_by_average, None),
    "percentiles_over_time": (ref_percentiles_over_time, args_percentiles_over_time, "stats"),
    "rollup_consistency": (ref_rollup_consistency, args_rollup_consistency, None),
    "freshest_minutes": (ref_freshest_minutes, args_freshest_minutes, "raw"),
}


# ---------------------------------------------------------------------------------------------------
# Comparing answers
# ---------------------------------------------------------------------------------------------------


def same_value(a, b) -> bool:
    a, b = naive_utc(a), naive_utc(b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=1e-12)
    return a == b


def compare(got: list[tuple], want: list[tuple], engine: str = "DuckDB") -> None:
    if len(got) != len(want):
        raise CheckFailed(f"{len(got)} rows from {engine}, {len(want)} in the reference\n"
                          f"    first {engine} rows: {got[:3]}\n    first reference rows: {want[:3]}")
    for i, (g, w) in enumerate(zip(got, want)):
        if len(g) != len(w) or not all(same_value(x, y) for x, y in zip(g, w)):
            raise CheckFailed(f"row {i} differs:\n    {engine + ':':<10} {g}\n    reference: {w}")


def check_rollup_detects_damage(tables_dir: Path, raw_dir, params: dict, queries_dir: Path) -> str:
    """A consistent lake cannot show that the rollup query finds inconsistencies, so damage a copy of
    the chosen day's metrics_1h (drop a row, change a sum, add an hour metrics_1m lacks) and require
    the query to agree with the reference AND to report each kind of damage."""
    import shutil

    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthetic_lake import hive_escape

    with tempfile.TemporaryDirectory(prefix="cwms-damaged-") as tmp:
        copy = Path(tmp) / "lake"
        shutil.copytree(tables_dir, copy)
        day = copy / "metrics_1h" / f"dt={params['dt']}" / f"namespace={hive_escape(params['namespace'])}" / "day.parquet"
        t = pq.read_table(day)
        rows = t.to_pylist()
        dropped = rows.pop(0)
        rows[0]["sum"] += 1.0
        extra = dict(rows[1], timestamp=rows[1]["timestamp"].replace(hour=(rows[1]["timestamp"].hour + 12) % 24))
        rows.append(extra)
        pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), day)
        lake = {"metrics_1m": read_table(copy, "metrics_1m"), "metrics_1h": read_table(copy, "metrics_1h")}
        con = duckdb.connect()
        dialect.create_views(con, copy, None)
        sql = dialect.adapt((queries_dir / "rollup_consistency.sql").read_text(), now=datetime(2000, 1, 1))
        got = [tuple(r) for r in con.execute(sql, args_rollup_consistency(params)).fetchall()]
        compare(got, rollup_comparison(lake, params))
        verdicts = Counter(r[3] for r in got)
        for wanted in ("missing in metrics_1h", "sum differs", "missing in metrics_1m"):
            if not verdicts[wanted]:
                raise CheckFailed(f"damage not reported as {wanted!r}: {dict(verdicts)} (dropped {dropped['dimension_key']!r})")
        if got[0][3] == "ok":
            raise CheckFailed("mismatches are not listed first")
        return f"reported {dict(verdicts)}"


# ---------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("lake_dir", nargs="?", type=Path, help="bucket root (with lake/ and raw/) or lake/ itself")
    ap.add_argument("--synthetic", action="store_true", help="build and check a synthetic lake instead")
    ap.add_argument("--cwms", type=Path, metavar="BIN",
                    help="compact a synthetic raw zone with this cwms binary, then check the lake it wrote")
    ap.add_argument("--queries", type=Path, default=QUERIES_DIR)
    ap.add_argument("--reference", choices=["raw", "lake"],
                    help="compute the reference answers from the raw zone (default when there is one) or the lake")
    args = ap.parse_args(argv)
    if sum([args.synthetic, args.cwms is not None, args.lake_dir is not None]) != 1:
        ap.error("give exactly one of LAKE_DIR, --synthetic, --cwms BIN")
    if args.synthetic and args.reference == "raw":
        ap.error("--synthetic's raw zone holds only its last hour: its reference is the lake")

    with tempfile.TemporaryDirectory(prefix="cwms-lake-") as tmp:
        import synthetic_lake

        lake_dir = args.lake_dir
        if args.synthetic:
            synthetic_lake.write_lake(Path(tmp))
            lake_dir = Path(tmp)
        elif args.cwms is not None:
            synthetic_lake.write_raw_only(Path(tmp))
            command = [str(args.cwms), "compact", "--raw", f"{tmp}/raw", "--lake", f"{tmp}/lake"]
            proc = subprocess.run(command, capture_output=True, text=True)
            print(f"$ {' '.join(command)}\n{proc.stdout}{proc.stderr}".rstrip())
            if proc.returncode != 0:
                print(f"FAIL  cwms-compact  exit status {proc.returncode}\n0 passed, 1 failed")
                return 1
            lake_dir = Path(tmp)
        reference = args.reference or ("lake" if args.synthetic else "raw")
        # With a data set we generated, every check must run: none may be skipped.
        return run(lake_dir.resolve(), args.queries, synthetic=lake_dir != args.lake_dir, reference=reference)


def run(lake_dir: Path, queries_dir: Path, synthetic: bool, reference: str = "raw") -> int:
    import duckdb

    tables_dir, raw_dir = locate(lake_dir)
    if reference == "raw" and raw_dir is None:
        if synthetic:
            print("FAIL  reference  no raw/ zone to compute the reference from\n0 passed, 1 failed")
            return 1
        reference = "lake"
    print(f"lake tables: {tables_dir}\nraw zone:    {raw_dir or '(none)'}")
    print("reference:   " + ("tests/compat/reference.py over the raw zone" if reference == "raw"
                             else "pyarrow over the lake's own files (checks the SQL, not the lake)"))
    results: list[tuple[str, str, str]] = []  # (name, PASS/FAIL/SKIP, detail)

    def record(name, fn):
        try:
            detail = fn()
            results.append((name, "PASS", detail or ""))
        except CheckFailed as e:
            results.append((name, "FAIL", str(e)))
        except Exception:  # a crash in a check is a failure of that check, reported in full
            results.append((name, "FAIL", traceback.format_exc().strip()))

    record("ddl:metrics_1m", lambda: check_lake_ddl("metrics_1m", tables_dir))
    record("ddl:metrics_1h", lambda: check_lake_ddl("metrics_1h", tables_dir))
    if raw_dir:
        record("ddl:raw", lambda: check_raw_ddl(raw_dir))
    else:
        results.append(("ddl:raw", "SKIP", "no raw/ zone beside the lake"))

    lake = {"metrics_1m": read_table(tables_dir, "metrics_1m"), "metrics_1h": read_table(tables_dir, "metrics_1h"),
            "raw": read_raw(raw_dir) if raw_dir else None}
    # What the answers must be: from the raw zone by the independent reference, or from the lake.
    expected = dict(reference_tables(raw_dir), raw=lake["raw"]) if reference == "raw" else lake
    params = choose_params(expected["metrics_1m"], expected["metrics_1h"], expected["raw"])
    print("parameters chosen from the data:", json.dumps(params, default=str))
    awkward = choose_params(expected["metrics_1m"], expected["metrics_1h"], expected["raw"], awkward=True)
    parameter_sets = [("", params)] + ([("@awkward", awkward)] if awkward != params else [])
    if awkward != params:
        print("awkward parameters:", json.dumps(awkward, default=str, ensure_ascii=False))

    def rollup_is_consistent():
        rows = rollup_comparison(lake, params)
        bad = [r for r in rows if r[3] != "ok"]
        if bad:
            raise CheckFailed(f"{len(bad)} of {len(rows)} series-hours disagree, e.g. {bad[:3]}")
        return f"{len(rows)} series-hours agree on {params['dt']} {params['namespace']}"

    record("lake:rollup", rollup_is_consistent)

    con = duckdb.connect()
    views = dialect.create_views(con, tables_dir, raw_dir)
    query_files = sorted(queries_dir.glob("*.sql"))
    if not query_files:
        results.append(("queries", "FAIL", f"no .sql files in {queries_dir}"))
    for path in query_files:
        name = path.stem
        text = path.read_text()

        def header(text=text):
            if not dialect.header_answers(text):
                raise CheckFailed("no `-- Answers:` line in the header")
            n_params, n_marks = len(dialect.header_params(text)), dialect.placeholder_count(text)
            if n_params != n_marks:
                raise CheckFailed(f"{n_params} `-- @param` lines for {n_marks} `?` placeholders")
            return f"{n_marks} parameters"

        record(f"header:{name}", header)
        if name not in REFERENCES:
            results.append((f"query:{name}", "FAIL", "no reference answer in check_cookbook.py: add one"))
            continue
        answer, arguments, needs = REFERENCES[name]
        for suffix, chosen in parameter_sets:
            check = f"query:{name}{suffix}"
            if needs == "stats" and "stats" not in chosen:
                results.append((check, "SKIP", "the lake has no additional statistics"))
                continue
            if needs == "raw" and ("raw" not in chosen or "raw" not in views):
                results.append((check, "SKIP", "no raw/ zone"))
                continue
            if suffix and arguments(chosen) == arguments(params):
                continue  # the awkward choice for this query is the busiest one, checked above

            def run_query(text=text, answer=answer, arguments=arguments, chosen=chosen):
                now = chosen.get("raw", {}).get("now", datetime(2000, 1, 1))
                sql = dialect.adapt(text, now=now)
                got = [tuple(r) for r in con.execute(sql, arguments(chosen)).fetchall()]
                want = answer(expected, chosen)
                if not want:
                    raise CheckFailed("the reference answer is empty, so this check would prove nothing")
                compare(got, want)
                return f"{len(got)} rows agree"

            record(check, run_query)

    if synthetic and "rollup_consistency" in {p.stem for p in query_files}:
        record("synthetic:rollup-damage", lambda: check_rollup_detects_damage(tables_dir, raw_dir, params, queries_dir))

    if synthetic:
        # The synthetic lake knows its own truth: every cookbook query must have run, none skipped.
        skipped = [n for n, s, _ in results if s == "SKIP"]
        results.append(("synthetic:complete", "FAIL" if skipped else "PASS", f"skipped: {skipped}" if skipped else ""))

    width = max(len(n) for n, _, _ in results)
    for name, status, detail in results:
        first, *rest = (detail or "").split("\n") or [""]
        print(f"{status:4}  {name:<{width}}  {first}")
        for line in rest:
            print(f"      {' ' * width}  {line}")
    passed = sum(s == "PASS" for _, s, _ in results)
    failed = sum(s == "FAIL" for _, s, _ in results)
    skipped = sum(s == "SKIP" for _, s, _ in results)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
