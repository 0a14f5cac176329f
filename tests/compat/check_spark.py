#!/usr/bin/env python3
"""Spark (pyspark, local mode, Hive catalog) over a cwms lake, through the shipped Athena DDL.

    python tests/compat/check_spark.py BUCKET_ROOT [--rewrite-with-pyarrow]

BUCKET_ROOT holds raw/ and lake/ (`cwms run --out`). One Spark session does everything:

  1. creates the database and tables by running infra/sql/athena/ddl/{00_database,metrics_1m,metrics_1h}.sql
     as written, LOCATION moved from s3://CWMS_BUCKET/ to the local folder;
  2. registers the partitions twice over: by MSCK REPAIR TABLE, then (tables dropped and created again)
     by the project's ADD PARTITION statement (ddl/metrics_add_partition.sql) once per partition folder,
     with the namespace as streamed and the folder as LOCATION;
  3. after each registration reads every column of every row of both tables with Spark's default
     (native) Parquet reader and with the Hive SerDe reader (spark.sql.hive.convertMetastoreParquet=false),
     and compares them with the reference computed from raw/ (reference.py); the Hive SerDe reader
     cannot read the INT64 TIMESTAMP_MICROS column (Hive 2.3), so it is compared on every other column,
     and a separate check requires that documented failure to still be what happens;
  4. runs the projection switch (ddl/*_projection.sql) and checks Spark still reads the registered partitions;
  5. runs every cookbook query (infra/sql/athena/queries/*.sql), adapted by athena_dialect.adapt_spark,
     with the busiest and with the most awkward parameters, and compares its answer with the one
     tests/sql/check_cookbook.py computes with pyarrow over the tables reference.py derives from raw/.

Ends with "N passed, N failed"; every line names Spark's version and the reader.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import traceback
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "sql"))

# pyspark turns timestamps into naive datetimes in the Python process's zone: make that UTC.
os.environ["TZ"] = "UTC"
time.tzset()

import athena_dialect as dialect  # noqa: E402
import check_cookbook as cookbook  # noqa: E402
import check_readers  # noqa: E402
import lake_contract as contract  # noqa: E402
import reference  # noqa: E402
from synthetic_lake import hive_escape  # noqa: E402

DDL = contract.ATHENA_DDL_DIR
TABLES = ("metrics_1m", "metrics_1h")
NO_TIMESTAMP = tuple(c for c in reference.COLUMNS if c != "timestamp_us")
# The Hive 2.3 SerDe's documented failure on an INT64 TIMESTAMP_MICROS column (infra/README.md).
HIVE_TIMESTAMP_FAILURE = "LongWritable cannot be cast to class org.apache.hadoop.hive.serde2.io.TimestampWritable"


def select_list(columns) -> str:
    exprs = {
        "dimensions": "map_entries(dimensions) AS dimensions",
        "stats": "map_entries(stats) AS stats",
        "timestamp_us": 'unix_micros("timestamp") AS timestamp_us',
    }
    return ", ".join(exprs.get(c, f'"{c}"') for c in columns)


def describe_error(e: BaseException) -> str:
    """A Spark failure in one line: the JVM exception that failed the task, with Hive's schema dump cut."""
    text = str(e)
    m = re.search(r"((?:java|org|scala)\.[\w.$]+(?:Exception|Error): .*?)(?=\n\s+at |\Z)", text, re.DOTALL)
    if not m:
        return check_readers.describe_error(e)
    line = re.sub(r"\s+", " ", m.group(1))
    # "Job aborted due to stage failure: ... (executor driver): <the task's exception>": keep the latter.
    line = re.sub(r"^org\.apache\.spark\.SparkException: Job aborted due to stage failure: .*? executor driver\): ", "", line)
    line = re.sub(r"Group type \[message .*?\] does not contain", "Group type [...] does not contain", line)
    line = re.sub(r" \((?:org\.apache\.hadoop\.io\.LongWritable and .*?)\)", "", line)
    return line[:600]


class Run:
    def __init__(self, spark, bucket: Path):
        self.spark = spark
        self.bucket = bucket
        # Not Path.as_uri(): that percent-encodes, and Spark (Hadoop's Path) takes a location's text
        # literally, so namespace=AWS%2FEC2 would become a folder named AWS%252FEC2.
        self.uri = "file://" + bucket.as_posix()
        self.version = spark.version
        self.results: list[tuple[str, str, str]] = []  # (status, name, detail)

    def record(self, name: str, fn) -> None:
        started = time.monotonic()
        try:
            detail = fn() or ""
            status = "SKIP" if detail.startswith("SKIP: ") else "PASS"
            detail = detail.removeprefix("SKIP: ")
        except cookbook.CheckFailed as e:
            status, detail = "FAIL", str(e)
        except Exception as e:
            status, detail = "FAIL", describe_error(e)
            if os.environ.get("CWMS_COMPAT_TRACEBACK"):
                detail += "\n" + traceback.format_exc()
        self.results.append((status, name, f"{detail} ({time.monotonic() - started:.1f} s)"))

    def sql(self, text: str, args=None):
        return self.spark.sql(text, args=args) if args else self.spark.sql(text)

    def rows(self, text: str, args=None) -> list[tuple]:
        out = []
        for r in self.sql(text, args).collect():
            out.append(tuple(check_readers._pairs(v) if isinstance(v, list) else v for v in r))
        return out


# ---------------------------------------------------------------------------------------------------
# Tables and partitions
# ---------------------------------------------------------------------------------------------------


def create_tables(run: Run) -> str:
    run.sql((DDL / "00_database.sql").read_text())
    run.sql("USE cwms")
    for table in TABLES:
        run.sql(f"DROP TABLE IF EXISTS {table}")
        run.sql(dialect.spark_ddl((DDL / f"{table}.sql").read_text(), run.uri))
    return f"00_database.sql, {', '.join(f'{t}.sql' for t in TABLES)} as written, LOCATION {run.uri}/lake/..."


def partition_folders(run: Run, table: str, namespaces: set[str]) -> list[tuple[str, str, Path]]:
    """(dt, namespace as streamed, folder) of every partition folder; the namespace is the one of the
    raw zone whose Hive escape is the folder's name, so this does not rely on any unescaping."""
    by_escape = {hive_escape(ns): ns for ns in namespaces}
    out = []
    for day in sorted((run.bucket / "lake" / table).glob("dt=*")):
        for folder in sorted(day.glob("namespace=*")):
            escaped = folder.name.split("=", 1)[1]
            if escaped not in by_escape:
                raise cookbook.CheckFailed(f"{folder}: not the Hive escape of any namespace in raw/")
            out.append((day.name.split("=", 1)[1], by_escape[escaped], folder))
    return out


def register_by_msck(run: Run, namespaces: set[str]) -> str:
    counts = []
    for table in TABLES:
        run.sql(f"MSCK REPAIR TABLE {table}")
        registered = len(run.sql(f"SHOW PARTITIONS {table}").collect())
        folders = len(partition_folders(run, table, namespaces))
        if registered != folders:
            raise cookbook.CheckFailed(f"{table}: MSCK registered {registered} partitions for {folders} folders")
        counts.append(f"{table} {registered}")
    return "partitions registered: " + ", ".join(counts)


def register_by_add_partition(run: Run, namespaces: set[str]) -> str:
    template = (DDL / "metrics_add_partition.sql").read_text()
    counts = []
    for table in TABLES:
        folders = partition_folders(run, table, namespaces)
        for dt, namespace, folder in folders:
            location = f"{run.uri}/lake/{table}/{folder.parent.name}/{folder.name}/"
            run.sql(dialect.spark_add_partition(template, table, dt, namespace, location))
        counts.append(f"{table} {len(folders)}")
    return "ALTER TABLE ... ADD IF NOT EXISTS PARTITION per folder: " + ", ".join(counts)


# ---------------------------------------------------------------------------------------------------
# Reading every row
# ---------------------------------------------------------------------------------------------------


def set_reader(run: Run, hive_serde: bool) -> None:
    run.spark.conf.set("spark.sql.hive.convertMetastoreParquet", "false" if hive_serde else "true")


def read_all(run: Run, table: str, want: list[tuple], hive_serde: bool) -> str:
    set_reader(run, hive_serde)
    columns = NO_TIMESTAMP if hive_serde else reference.COLUMNS
    got = run.rows(f"SELECT {select_list(columns)} FROM {table}")
    expected = [tuple(r[reference.COLUMN_INDEX[c]] for c in columns) for r in want]
    why = check_readers.compare_rows(got, expected, columns)
    if why:
        raise cookbook.CheckFailed(why)
    return f"{len(got)} rows equal the reference" + (" (every column but timestamp)" if hive_serde else "")


def hive_timestamp_limit(run: Run, table: str) -> str:
    set_reader(run, hive_serde=True)
    try:
        got = run.rows(f'SELECT max(unix_micros("timestamp")) FROM {table}')[0][0]
    except Exception as e:
        if HIVE_TIMESTAMP_FAILURE in str(e):
            return "still fails as documented: LongWritable cannot be cast to TimestampWritable"
        raise
    if got is None:
        raise cookbook.CheckFailed(f"{table} is empty, so this check proves nothing")
    raise cookbook.CheckFailed("the Hive SerDe reader now reads the timestamp column: update infra/README.md "
                               "(Readers tested) and the DDL comments, then test the column here")


def projection_switch(run: Run, want: dict) -> str:
    """Spark ignores Athena's projection properties and keeps reading the registered partitions."""
    for table in TABLES:
        run.sql(dialect.spark_ddl((DDL / f"{table}_projection.sql").read_text(), run.uri))
    set_reader(run, hive_serde=False)
    counts = {t: run.rows(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}
    expected = {t: len(want[t]) for t in TABLES}
    if counts != expected:
        raise cookbook.CheckFailed(f"after the projection switch Spark reads {counts} rows, expected {expected}")
    return f"after {', '.join(f'{t}_projection.sql' for t in TABLES)}: {counts}"


def dimension_key_literal(run: Run, want: list[tuple]) -> str:
    """What the docs say about filtering on dimension_key: a key with escapes needs them in the literal,
    and in Spark SQL each of those backslashes doubled (spark_string); the unescaped text finds nothing."""
    i = reference.COLUMN_INDEX["dimension_key"]
    keys = {r[i] for r in want if "\\," in r[i] or "\\=" in r[i]}
    if not keys:
        return "SKIP: no dimension_key with an escaped , or = in this lake"
    # The docs' example (Path=/api/v1,items=5) when the lake has it, else the shortest such key.
    key = min(keys, key=lambda k: (not k.startswith("Path=/api/v1\\,items\\=5"), len(k), k))
    set_reader(run, hive_serde=False)
    found = run.rows(f"SELECT count(*) FROM metrics_1m WHERE dimension_key = {dialect.spark_string(key)}")[0][0]
    as_in_athena = "'" + key.replace("'", "''") + "'"  # the literal an Athena user writes
    single = run.rows(f"SELECT count(*) FROM metrics_1m WHERE dimension_key = {as_in_athena}")[0][0]
    plain = key.replace("\\", "")
    unescaped = run.rows(f"SELECT count(*) FROM metrics_1m WHERE dimension_key = {dialect.spark_string(plain)}")[0][0]
    expected = sum(1 for r in want if r[i] == key)
    if (found, single, unescaped) != (expected, 0, 0):
        raise cookbook.CheckFailed(f"{key!r}: {found} rows with the escapes doubled (expected {expected}), {single} with "
                                   f"them single, {unescaped} for {plain!r} (both expected 0)")
    return (f"dimension_key {key} finds {found} rows as the Spark literal {dialect.spark_string(key)}; "
            f"{as_in_athena} and {dialect.spark_string(plain)} find none")


# ---------------------------------------------------------------------------------------------------
# The cookbook
# ---------------------------------------------------------------------------------------------------


def cookbook_checks(run: Run, queries_dir: Path) -> None:
    tables_dir, raw_dir = cookbook.locate(run.bucket)
    lake = {"metrics_1m": cookbook.read_table(tables_dir, "metrics_1m"),
            "metrics_1h": cookbook.read_table(tables_dir, "metrics_1h"),
            "raw": cookbook.read_raw(raw_dir) if raw_dir else None}
    # The answers come from raw/ by the independent reference, not from the lake Spark reads.
    expected = dict(cookbook.reference_tables(raw_dir), raw=lake["raw"]) if raw_dir else lake
    params = cookbook.choose_params(expected["metrics_1m"], expected["metrics_1h"], expected["raw"])
    awkward = cookbook.choose_params(expected["metrics_1m"], expected["metrics_1h"], expected["raw"], awkward=True)
    set_reader(run, hive_serde=False)

    def raw_table():
        raw = contract.athena_tables()["raw"]
        run.sql("DROP TABLE IF EXISTS raw")
        run.sql(dialect.spark_raw_table([(c.name, c.type) for c in raw.columns], [(c.name, c.type) for c in raw.partition_keys],
                                        "file://" + raw_dir.as_posix() + "/"))
        run.sql("MSCK REPAIR TABLE raw")
        return f"Spark JSON source with raw.sql's columns, {len(run.sql('SHOW PARTITIONS raw').collect())} partitions"

    if raw_dir:
        run.record(f"spark {run.version} cookbook: raw table", raw_table)
    for path in sorted(queries_dir.glob("*.sql")):
        name = path.stem
        label = f"spark {run.version} cookbook: {name}"
        if name not in cookbook.REFERENCES:
            run.results.append(("FAIL", label, "no reference answer in check_cookbook.py: add one"))
            continue
        ref, arguments, needs = cookbook.REFERENCES[name]
        if needs and needs not in params:
            run.results.append(("SKIP", label, f"the lake has no {needs}"))
            continue
        sets = [("", params)] + ([("@awkward", awkward)] if arguments(awkward) != arguments(params) else [])
        for suffix, chosen in sets:

            def query(path=path, ref=ref, arguments=arguments, chosen=chosen):
                now = chosen.get("raw", {}).get("now", datetime(2000, 1, 1))
                got = run.rows(dialect.adapt_spark(path.read_text(), now=now), arguments(chosen))
                want = ref(expected, chosen)
                if not want:
                    raise cookbook.CheckFailed("the reference answer is empty, so this check would prove nothing")
                cookbook.compare(got, want, engine="Spark")
                return f"{len(got)} rows agree"

            run.record(label + suffix, query)


# ---------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------


def start_spark(work: Path):
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master("local[2]")
        .appName("cwms-compat")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.warehouse.dir", (work / "warehouse").as_uri())
        .config("spark.hadoop.javax.jdo.option.ConnectionURL", f"jdbc:derby:;databaseName={work / 'metastore_db'};create=true")
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={work}")
    )
    for key, (value, _why) in dialect.SPARK_SESSION.items():
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("OFF")  # task failures are expected in the Hive SerDe checks
    return spark


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bucket", type=Path, help="folder holding raw/ and lake/ (cwms run --out)")
    ap.add_argument("--rewrite-with-pyarrow", action="store_true",
                    help="check a pyarrow-written copy of the lake instead (TYPE_DEFINED_ORDER)")
    ap.add_argument("--queries", type=Path, default=cookbook.QUERIES_DIR)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cwms-spark-") as tmp:
        work = Path(tmp)
        bucket = args.bucket.resolve()
        if args.rewrite_with_pyarrow:
            check_readers.rewrite_with_pyarrow(bucket, work / "bucket")
            bucket = work / "bucket"
            print(f"checking a pyarrow rewrite of the lake in {bucket}")
        return run_checks(bucket, work, args.queries)


def run_checks(bucket: Path, work: Path, queries_dir: Path) -> int:
    started = time.monotonic()
    want = reference.tables(str(bucket / "raw"))
    namespaces = {r[reference.COLUMN_INDEX["namespace"]] for r in want["metrics_1m"]}
    print(f"reference from {bucket / 'raw'}: " + ", ".join(f"{t} {len(rows)} rows" for t, rows in want.items()))
    spark = start_spark(work)
    run = Run(spark, bucket)
    print(f"spark {run.version} session started in {time.monotonic() - started:.1f} s")
    try:
        for registration, register in (("MSCK REPAIR TABLE", register_by_msck), ("ADD PARTITION", register_by_add_partition)):
            run.record(f"spark {run.version} DDL, {registration}", lambda: create_tables(run))
            run.record(f"spark {run.version} partitions by {registration}", lambda register=register: register(run, namespaces))
            for hive_serde, reader in ((False, "default reader"), (True, "Hive SerDe reader")):
                for table in TABLES:
                    run.record(f"spark {run.version} {reader}, {registration}: {table}",
                               lambda table=table, hive_serde=hive_serde: read_all(run, table, want[table], hive_serde))
            run.record(f"spark {run.version} Hive SerDe reader, {registration}: metrics_1m timestamp",
                       lambda: hive_timestamp_limit(run, "metrics_1m"))
        run.record(f"spark {run.version} projection DDL", lambda: projection_switch(run, want))
        run.record(f"spark {run.version} dimension_key literal", lambda: dimension_key_literal(run, want["metrics_1m"]))
        cookbook_checks(run, queries_dir)
    finally:
        spark.stop()
    width = max(len(name) for _, name, _ in run.results)
    for status, name, detail in run.results:
        first, *rest = detail.split("\n")
        print(f"{status:4}  {name:<{width}}  {first}")
        for line in rest:
            print(f"      {' ' * width}  {line}")
    passed = sum(s == "PASS" for s, _, _ in run.results)
    failed = sum(s == "FAIL" for s, _, _ in run.results)
    skipped = sum(s == "SKIP" for s, _, _ in run.results)
    print(f"spark checks took {time.monotonic() - started:.1f} s")
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
