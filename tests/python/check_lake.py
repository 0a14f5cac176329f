"""Checks a lake written by cwms with independent readers (DuckDB and pyarrow) against the
reference computed in Python straight from the raw objects (tests/compat/reference.py).

Usage: check_lake.py RAW_DIR LAKE_DIR [--expect-failed N] [--expect-rejected N]

The reference applies DESIGN 4.3 itself: one datum per (account, region, namespace, metric,
dimensions, timestamp), the one with the larger count, ties by (sum, max, min, stats, unit);
dimension_key escaped and series_id hashed (XXH3-64 by the xxhash package) from the documented
rules; hourly rollups are min of mins, max of maxes, sum of sums and counts, with no statistics.
Raw objects that do not decompress are left out, and so are the lines of the others that are
not datums (the compactor keeps those under _cwms/rejected/), as the compactor does.

Every column of every row of both tables is compared, dt and namespace read back from the Hive
path, floats bit for bit. Exits non-zero, naming the differences, when the lake disagrees.
"""

import argparse
import os
import sys
from importlib.metadata import version
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compat"))

import check_readers  # noqa: E402
import reference  # noqa: E402


def fail(message):
    print(f"check_lake: {message}", file=sys.stderr)
    sys.exit(1)


def check_schema(lake: str, namespaces: set) -> None:
    """pyarrow: the schema is exactly the documented one, and the Hive keys read back unescaped."""
    files = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(lake, "metrics_1m")) for f in fs if f.endswith(".parquet")]
    if not files:
        fail(f"no metrics_1m files in {lake}")
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
    dataset = ds.dataset(os.path.join(lake, "metrics_1m"), format="parquet", partitioning="hive")
    seen = set(dataset.to_table(columns=["namespace"]).column("namespace").to_pylist())
    if seen != namespaces:
        fail(f"pyarrow sees namespaces {sorted(seen)}, the raw zone has {sorted(namespaces)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("raw")
    parser.add_argument("lake")
    parser.add_argument("--expect-failed", type=int, default=None)
    parser.add_argument("--expect-rejected", type=int, default=None)
    args = parser.parse_args()

    try:
        zone = reference.read_raw(args.raw, lenient=True)
    except ValueError as e:
        fail(str(e))
    if args.expect_failed is not None and zone.failed_objects != args.expect_failed:
        fail(f"expected {args.expect_failed} undecodable raw objects, found {zone.failed_objects}")
    if args.expect_rejected is not None and zone.rejected_lines != args.expect_rejected:
        fail(f"expected {args.expect_rejected} rejected lines, found {zone.rejected_lines}")
    want = reference.tables_of(zone.datums)
    check_schema(args.lake, {d.namespace for d in zone.datums})

    readers = [("duckdb", check_readers.read_duckdb), ("pyarrow", check_readers.read_pyarrow)]
    problems = []
    for name, read in readers:
        for table in check_readers.TABLES:
            why = check_readers.compare_rows(read(Path(args.lake) / table), want[table])
            if why:
                problems.append(f"{name} {version(name)} {table}: {why}")
    if problems:
        fail("the lake differs from the reference computed from the raw zone:\n" + "\n".join(problems))

    # What the merge law had to decide: identities that arrived with different values, and how
    # many of those include two arrivals of the same count (a tie broken by the values).
    values = {}
    for d in zone.datums:
        order = d.order()
        values.setdefault(d.identity(), set()).add(order[:4] + (tuple(order[4]),) + order[5:])
    differing = [v for v in values.values() if len(v) > 1]
    ties = sum(len({order[0] for order in v}) < len(v) for v in differing)
    print(
        f"check_lake: {len(want['metrics_1m'])} minute rows and {len(want['metrics_1h'])} hourly rows match the reference in "
        f"every column, read by " + " and ".join(f"{n} {version(n)}" for n, _ in readers)
        + f" ({zone.failed_objects} raw objects undecodable, {zone.rejected_lines} lines rejected; "
        f"{len(differing)} datums arrived with different values, {ties} of them with equal counts)"
    )


if __name__ == "__main__":
    main()
