#!/usr/bin/env python3
"""Reads a cwms lake with every Parquet reader installed in this Python and compares every column of
every row of metrics_1m and metrics_1h with the reference computed from the raw zone (reference.py).

    python tests/compat/check_readers.py BUCKET_ROOT --readers pyarrow,duckdb
    python tests/compat/check_readers.py BUCKET_ROOT --readers pyarrow,polars --rewrite-with-pyarrow

BUCKET_ROOT holds raw/ (what Firehose wrote) and lake/ (what `cwms compact` made of it). Readers:
pyarrow (dataset API, hive partitioning), duckdb (read_parquet, hive_partitioning), polars
(scan_parquet, hive_partitioning) and datafusion (register_parquet with the partition columns); each
reads the whole table through its own Parquet library and reads dt and namespace from the path.
A reader named in --readers that cannot be imported is a failure, not a skip.

Floats are compared bit for bit (the lake promises exact values: 1m rows are the streamed numbers,
1h rows add them in a fixed order), strings and maps exactly, map entries in stored order.

--rewrite-with-pyarrow first rewrites every lake file with pyarrow.parquet.write_table into a
temporary copy (column orders TYPE_DEFINED_ORDER) and checks that copy instead: a way to see that a
failure comes from how cwms wrote the files and not from their content.

One line per (reader, table), naming the reader and its version; ends with "N passed, N failed".
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference  # noqa: E402

TABLES = ("metrics_1m", "metrics_1h")
C = reference.COLUMN_INDEX


# ---------------------------------------------------------------------------------------------------
# Comparing rows
# ---------------------------------------------------------------------------------------------------


def _exact(value):
    """A value in a form where == is exact: floats by their bits (so -0.0 != 0.0), pairs as tuples."""
    if isinstance(value, float):
        return ("f64", struct.pack("<d", value))
    if isinstance(value, (list, tuple)):
        return tuple(_exact(v) for v in value)
    return value


IDENTITY = ("account_id", "region", "namespace", "metric_name", "dimensions", "timestamp_us")


def compare_rows(got: list[tuple], want: list[tuple], columns=reference.COLUMNS) -> str | None:
    """None when got and want hold the same rows (as multisets: readers need not keep the files' row
    order), else what differs: counts, then up to three rows read with the columns that differ from
    the reference row of the same identity (or that no reference row has that identity)."""
    g, w = Counter(_exact(r) for r in got), Counter(_exact(r) for r in want)
    if g == w:
        return None
    extra, missing = g - w, w - g
    lines = [f"{len(got)} rows read, {len(want)} in the reference; {sum(extra.values())} rows read are not in the "
             f"reference, {sum(missing.values())} reference rows were not read"]
    key_at = [i for i, c in enumerate(columns) if c in IDENTITY]
    by_identity = {tuple(r[i] for i in key_at): r for r in want}
    shown = 0
    for r in got:
        if shown == 3:
            break
        if _exact(r) not in extra:
            continue
        ref = by_identity.get(tuple(r[i] for i in key_at))
        if ref is None:
            lines.append(f"  no reference row has this identity: {dict(zip(columns, r))}")
        else:
            diffs = [f"{c}: read {a!r}, reference {b!r}" for c, a, b in zip(columns, r, ref) if _exact(a) != _exact(b)]
            lines.append(f"  {dict((columns[i], r[i]) for i in key_at)}: " + "; ".join(diffs))
        shown += 1
    if shown == 0:
        lines.extend(f"  not read: {dict(zip(columns, r))}" for r in want if _exact(r) in missing)
        del lines[4:]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# The readers: each returns a table's rows as tuples in reference.COLUMNS order
# ---------------------------------------------------------------------------------------------------


def _pairs(value) -> tuple:
    """A map as read (a dict, a list of (key, value) tuples or of {key, value} dicts, or None) as a
    tuple of pairs, in the order the reader gives them."""
    if value is None:
        return None
    if isinstance(value, dict):  # polars 2 has a Map type and returns maps as dicts
        return tuple(value.items())
    out = []
    for entry in value:
        if isinstance(entry, dict):
            out.append((entry["key"], entry["value"]))
        else:
            out.append(tuple(entry))
    return tuple(out)


def _from_arrow(table) -> list[tuple]:
    """Rows of an Arrow table holding COLUMNS (timestamp_us already an int64 column)."""
    columns = [table.column(name).to_pylist() for name in reference.COLUMNS]
    rows = []
    for values in zip(*columns):
        row = list(values)
        row[C["dimensions"]] = _pairs(row[C["dimensions"]])
        row[C["stats"]] = _pairs(row[C["stats"]])
        rows.append(tuple(row))
    return rows


def read_pyarrow(table_dir: Path) -> list[tuple]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    partitioning = ds.partitioning(pa.schema([("dt", pa.string()), ("namespace", pa.string())]), flavor="hive")
    t = ds.dataset(str(table_dir), format="parquet", partitioning=partitioning).to_table()
    t = t.append_column("timestamp_us", pc.cast(t.column("timestamp"), pa.int64()))
    return _from_arrow(t)


SQL_COLUMNS = """account_id, region, namespace, dt, metric_name, {dimensions} AS dimensions, dimension_key, series_id,
                 {timestamp_us} AS timestamp_us, unit, "min", "max", "sum", "count", {stats} AS stats"""


def read_duckdb(table_dir: Path) -> list[tuple]:
    import duckdb

    con = duckdb.connect()
    glob = (table_dir.as_posix() + "/**/*.parquet").replace("'", "''")
    cols = SQL_COLUMNS.format(dimensions="map_entries(dimensions)", timestamp_us='epoch_us("timestamp")',
                              stats="map_entries(stats)")
    rows = con.execute(
        f"""SELECT {cols} FROM read_parquet('{glob}', hive_partitioning = true,
                                          hive_types = {{'dt': 'VARCHAR', 'namespace': 'VARCHAR'}})"""
    ).fetchall()
    return [tuple(_pairs(v) if i in (C["dimensions"], C["stats"]) else v for i, v in enumerate(r)) for r in rows]


def read_polars(table_dir: Path) -> list[tuple]:
    import polars as pl

    lf = pl.scan_parquet(
        table_dir.as_posix() + "/**/*.parquet",
        hive_partitioning=True,
        hive_schema={"dt": pl.String, "namespace": pl.String},
    )
    df = lf.with_columns(pl.col("timestamp").dt.epoch("us").alias("timestamp_us")).select(list(reference.COLUMNS)).collect()
    return [tuple(_pairs(v) if i in (C["dimensions"], C["stats"]) else v for i, v in enumerate(r)) for r in df.rows()]


def read_datafusion(table_dir: Path) -> list[tuple]:
    import pyarrow as pa
    import pyarrow.compute as pc
    from datafusion import SessionContext

    ctx = SessionContext()
    ctx.register_parquet("t", table_dir.as_posix() + "/", table_partition_cols=[("dt", pa.string()), ("namespace", pa.string())],
                         file_extension=".parquet")
    t = ctx.sql("SELECT * FROM t").to_arrow_table()
    t = t.append_column("timestamp_us", pc.cast(t.column("timestamp"), pa.int64()))
    return _from_arrow(t)


READERS = {
    "pyarrow": ("pyarrow", read_pyarrow),
    "duckdb": ("duckdb", read_duckdb),
    "polars": ("polars", read_polars),
    "datafusion": ("datafusion", read_datafusion),
}


def version_of(module: str) -> str:
    from importlib.metadata import version

    return version(module)


def describe_error(e: BaseException) -> str:
    """The exception's type and message, cut to its first lines (a Java stack trace names its cause last)."""
    text = f"{type(e).__name__}: {e}".strip()
    lines = [l for l in text.splitlines() if l.strip()]
    causes = [l.strip() for l in lines if l.strip().startswith("Caused by:")]
    head = lines[:3]
    if causes and causes[-1] not in head:
        head.append(causes[-1])
    return "\n".join(head)


# ---------------------------------------------------------------------------------------------------
# A TYPE_DEFINED_ORDER copy of the lake, written by pyarrow
# ---------------------------------------------------------------------------------------------------


def rewrite_with_pyarrow(bucket: Path, out: Path) -> None:
    """Copies raw/ and rewrites every lake Parquet file with pyarrow.parquet.write_table (same rows,
    same schema, map groups named key_value/key/value; pyarrow writes TYPE_DEFINED_ORDER for every
    column)."""
    import pyarrow.parquet as pq

    shutil.copytree(bucket / "raw", out / "raw")
    for path in sorted((bucket / "lake").rglob("*.parquet")):
        target = out / "lake" / path.relative_to(bucket / "lake")
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pq.ParquetFile(path).read(), target)


# ---------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bucket", type=Path, help="folder holding raw/ and lake/ (cwms run --out)")
    ap.add_argument("--readers", required=True, help=f"comma-separated, of {', '.join(READERS)}")
    ap.add_argument("--rewrite-with-pyarrow", action="store_true",
                    help="check a pyarrow-written copy of the lake instead (TYPE_DEFINED_ORDER)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.readers.split(",") if n.strip()]
    unknown = [n for n in names if n not in READERS]
    if unknown:
        ap.error(f"unknown readers {unknown}; known: {', '.join(READERS)}")

    with tempfile.TemporaryDirectory(prefix="cwms-compat-") as tmp:
        bucket = args.bucket.resolve()
        if args.rewrite_with_pyarrow:
            rewrite_with_pyarrow(bucket, Path(tmp))
            bucket = Path(tmp)
            print(f"checking a pyarrow {version_of('pyarrow')} rewrite of the lake in {bucket}")
        return run(bucket, names)


def run(bucket: Path, names: list[str]) -> int:
    want = reference.tables(str(bucket / "raw"))
    print(f"reference from {bucket / 'raw'}: " + ", ".join(f"{t} {len(rows)} rows" for t, rows in want.items()))
    results = []  # (status, reader, table, detail)
    for name in names:
        module, read = READERS[name]
        try:
            label = f"{name} {version_of(module)}"
            __import__(module)
        except Exception as e:
            for table in TABLES:
                results.append(("FAIL", name, table, f"cannot import {module}: {describe_error(e)}"))
            continue
        for table in TABLES:
            try:
                got = read(bucket / "lake" / table)
            except Exception as e:
                detail = describe_error(e)
                if os.environ.get("CWMS_COMPAT_TRACEBACK"):
                    detail += "\n" + traceback.format_exc()
                results.append(("FAIL", label, table, detail))
                continue
            why = compare_rows(got, want[table])
            results.append(("FAIL", label, table, why) if why else ("PASS", label, table, f"{len(got)} rows equal the reference"))
    width = max(len(r[1]) for r in results)
    for status, label, table, detail in results:
        first, *rest = detail.split("\n")
        print(f"{status:4}  {label:<{width}}  {table}  {first}")
        for line in rest:
            print(f"      {' ' * width}  {' ' * len(table)}  {line}")
    passed = sum(r[0] == "PASS" for r in results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
