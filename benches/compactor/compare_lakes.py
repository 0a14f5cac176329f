#!/usr/bin/env python3
"""Checks that cwms's lake and DuckDB's hold the same rows, so the benchmark compares equal work.

    compare_lakes.py CWMS_LAKE DUCKDB_LAKE

For metrics_1m and metrics_1h: the same columns and types (series_id aside: each engine has its
own 64-bit hash), the same identities, the same values (numbers within 1e-12 relative), the rows of every file sorted by
(metric_name, dimension_key, timestamp), and the same partition folders. Exits non-zero, naming
the difference, when they differ.
"""

import sys

import duckdb

COLUMNS = ["account_id", "region", "metric_name", "dimensions", "dimension_key", "series_id",
           "timestamp", "unit", "min", "max", "sum", "count", "stats"]


def main() -> int:
    cwms_lake, duckdb_lake = sys.argv[1:3]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    failures = []
    for table in ("metrics_1m", "metrics_1h"):
        scans = {}
        for name, lake in (("cwms", cwms_lake), ("duckdb", duckdb_lake)):
            scans[name] = f"read_parquet('{lake}/{table}/**/*.parquet', hive_partitioning = true, filename = true)"
            types = con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * EXCLUDE (filename, dt, namespace{', hour' if name == 'duckdb' and table == 'metrics_1m' else ''}) FROM {scans[name]})").fetchall()
            if [c for c, _ in types] != COLUMNS:
                failures.append(f"{table} {name}: columns {[c for c, _ in types]}")
            scans[name + "_types"] = types
            unsorted = con.execute(f"""
                SELECT count(*) FROM (
                    SELECT metric_name, dimension_key, timestamp, filename,
                           lag((metric_name, dimension_key, timestamp)) OVER (PARTITION BY filename ORDER BY file_row_number) AS previous
                    FROM read_parquet('{lake}/{table}/**/*.parquet', filename = true, file_row_number = true))
                WHERE previous > (metric_name, dimension_key, timestamp)""").fetchone()[0]
            if unsorted:
                failures.append(f"{table} {name}: {unsorted} rows out of (metric_name, dimension_key, timestamp) order")
        if scans["cwms_types"] != scans["duckdb_types"]:
            pairs = [(a, b) for a, b in zip(scans["cwms_types"], scans["duckdb_types"]) if a != b and a[0] != "series_id"]
            if pairs:
                failures.append(f"{table}: types differ (cwms, duckdb): {pairs}")
        identity = "account_id, region, namespace, dt, metric_name, dimension_key, timestamp"
        rows = {name: con.execute(f"SELECT count(*) FROM {scans[name]}").fetchone()[0] for name in ("cwms", "duckdb")}
        only = {}
        for a, b in (("cwms", "duckdb"), ("duckdb", "cwms")):
            only[a] = con.execute(f"SELECT count(*) FROM (SELECT {identity} FROM {scans[a]} EXCEPT ALL SELECT {identity} FROM {scans[b]})").fetchone()[0]
        # Values: equal text, and numbers equal within 1e-12 relative. cwms parses JSON numbers
        # with serde_json's fast (not always correctly rounded) parser, which lands one unit in
        # the last place away on some values, and a rollup's sums depend on the order of addition.
        close = lambda a, b: f"(abs({a} - {b}) <= 1e-12 * greatest(abs({a}), abs({b})) OR {a} = {b})"
        differ, inexact = con.execute(f"""
            SELECT
                count(*) FILTER (WHERE NOT (
                    c.dimensions::VARCHAR = d.dimensions::VARCHAR AND c.unit = d.unit
                    AND {close('c.min', 'd.min')} AND {close('c.max', 'd.max')} AND {close('c.sum', 'd.sum')} AND {close('c.count', 'd.count')}
                    AND map_keys(c.stats) = map_keys(d.stats)
                    AND coalesce(list_bool_and(list_transform(list_zip(map_values(c.stats), map_values(d.stats)), p -> {close('p[1]', 'p[2]')})), true))),
                count(*) FILTER (WHERE NOT (c.min = d.min AND c.max = d.max AND c.sum = d.sum AND c.count = d.count
                    AND map_values(c.stats) = map_values(d.stats)))
            FROM {scans['cwms']} c JOIN {scans['duckdb']} d USING ({identity})""").fetchone()
        print(f"{table}: cwms {rows['cwms']} rows, duckdb {rows['duckdb']} rows; identities only in cwms {only['cwms']}, "
              f"only in duckdb {only['duckdb']}; values different {differ}, not bit-identical {inexact}", file=sys.stderr)
        if rows["cwms"] != rows["duckdb"] or only["cwms"] or only["duckdb"] or differ:
            failures.append(f"{table}: the lakes hold different rows")
    for failure in failures:
        print(f"compare_lakes: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
