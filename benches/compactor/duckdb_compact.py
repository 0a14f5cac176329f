#!/usr/bin/env python3
"""Runs duckdb_compact.sql: DuckDB doing the compactor's work (the DESIGN 8 peer).

    duckdb_compact.py --raw DIR --lake DIR [--codec zstd|snappy] [--threads N] [--sql FILE]

Reads every *.gz below DIR (gzip NDJSON as Firehose writes it), writes DIR_LAKE/metrics_1m and
DIR_LAKE/metrics_1h. The lake folder must not hold earlier output (the benchmark removes it
before each run, as it does for cwms). Prints one JSON line: rows written and seconds per step.
"""

import argparse
import json
import os
import sys
import time

import duckdb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", required=True, help="folder holding the raw gzip NDJSON objects (searched recursively)")
    parser.add_argument("--lake", required=True, help="output folder (metrics_1m/ and metrics_1h/ are written below it)")
    parser.add_argument("--codec", default="zstd", help="Parquet codec: zstd or snappy (DuckDB's default) or uncompressed")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: the CPUs this process may run on)")
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory_limit (default: DuckDB's, 80%% of RAM)")
    parser.add_argument("--sql", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "duckdb_compact.sql"))
    args = parser.parse_args()

    # DuckDB sizes its thread pool from the machine, not from the CPU affinity taskset sets:
    # follow the affinity so that `taskset -c 0` really means one worker.
    threads = args.threads or len(os.sched_getaffinity(0))
    raw_glob = os.path.join(os.path.abspath(args.raw), "**", "*.gz")
    lake = os.path.abspath(args.lake)
    os.makedirs(lake, exist_ok=True)

    sql = open(args.sql, encoding="utf-8").read()
    sql = sql.replace("${RAW_GLOB}", raw_glob.replace("'", "''")).replace("${LAKE}", lake.replace("'", "''")).replace("${CODEC}", args.codec)

    # An in-memory database, spilling to a folder beside the lake if it must (as cwms keeps
    # everything it writes under the lake).
    con = duckdb.connect(":memory:", config={"threads": threads})
    con.execute(f"SET temp_directory = '{os.path.join(lake, '.duckdb_tmp')}'")
    if args.memory_limit:
        con.execute(f"SET memory_limit = '{args.memory_limit}'")

    steps = {}
    for statement, for_each in split_statements(sql):
        started = time.perf_counter()
        if for_each is None:
            con.execute(statement)
        else:
            cursor = con.execute(for_each)
            names = [d[0] for d in cursor.description]
            for row in cursor.fetchall():
                values = {name: str(value) for name, value in zip(names, row)}
                if "namespace" in values:
                    values["namespace_path"] = hive_escape(values["namespace"])
                text = statement
                for name, value in values.items():
                    text = text.replace("${" + name + "}", value.replace("'", "''"))
                # COPY to one file does not create its folders.
                target = text.rsplit(" TO '", 1)[1].split("'", 1)[0]
                os.makedirs(os.path.dirname(target), exist_ok=True)
                con.execute(text)
        name = step_name(statement)
        steps[name] = round(steps.get(name, 0) + time.perf_counter() - started, 3)
    rows_1m = con.execute("SELECT count(*) FROM minutes").fetchone()[0]
    con.close()
    print(json.dumps({"threads": threads, "rows_1m": rows_1m, "seconds": steps}))
    return 0


def split_statements(sql: str):
    """Yields (statement, for_each_query or None): statements end with `;` at a line end (the
    SQL has no `;` inside strings); a `-- for each row of: QUERY` comment marks the next one."""
    chunk, for_each = [], None
    for line in sql.splitlines():
        stripped = line.strip()
        if stripped.startswith("--"):
            if stripped.startswith("-- for each row of:"):
                for_each = stripped.split(":", 1)[1].strip()
            continue
        chunk.append(line)
        if stripped.endswith(";"):
            text = "\n".join(chunk).strip()
            if text.rstrip(";").strip():
                yield text, for_each
            chunk, for_each = [], None


def step_name(statement: str) -> str:
    """`write metrics_1m`, `create minutes`, `set`, ... for the timing summary."""
    words = statement.rstrip(";").split()
    if words[0] == "COPY":
        return "write " + ("metrics_1m" if "/metrics_1m/" in statement else "metrics_1h")
    if words[0] == "CREATE":
        return "create " + words[words.index("AS") - 1]
    return words[0].lower()


def hive_escape(value: str) -> str:
    """Hive's path escaping (FileUtils.escapePathName), as DuckDB and Spark write partition folders."""
    special = set('"#%\'*/:=?\\{[]^') | {chr(0x7F)}
    return "".join(f"%{ord(c):02X}" if c in special or ord(c) < 0x20 else c for c in value)


if __name__ == "__main__":
    sys.exit(main())
