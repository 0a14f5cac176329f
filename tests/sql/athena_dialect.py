"""Mechanical adaptation of the Athena (Trino) cookbook queries to DuckDB, and to Spark SQL.

This module is the ONE place that knows how the dialects differ for the cookbook. The rules are
deliberately few and textual, so that a passing DuckDB (or Spark) run says something about the Athena
text itself: every rule replaces one Athena construct with its equivalent and nothing else, and anything
not covered here must already mean the same in both engines (or the engine fails loudly and the check
fails). infra/README.md ("Athena and DuckDB", "Athena and Spark SQL") describes the same rules for
humans; keep them in step. The Spark rules are at the end of this file (`adapt_spark` and friends).

Tables are not rewritten in the query text at all: DuckDB views named like the Glue tables stand in for
them (see `create_views`), reading the lake's files with Hive partitioning, so the queries keep their
`FROM metrics_1m` exactly as an analyst runs them in Athena.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

# ---------------------------------------------------------------------------------------------------
# Tables: DuckDB views that present the lake as the Glue tables do.
# ---------------------------------------------------------------------------------------------------

# The raw table's columns as in infra/sql/athena/ddl/raw.sql, in DuckDB types.
RAW_COLUMNS = {
    "metric_stream_name": "VARCHAR",
    "account_id": "VARCHAR",
    "region": "VARCHAR",
    "namespace": "VARCHAR",
    "metric_name": "VARCHAR",
    "dimensions": "MAP(VARCHAR, VARCHAR)",
    "timestamp": "BIGINT",
    "value": "MAP(VARCHAR, DOUBLE)",
    "unit": "VARCHAR",
}


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def create_views(con, lake_tables_dir: Path, raw_dir: Path | None) -> list[str]:
    """Creates views metrics_1m, metrics_1h (and raw when raw_dir exists) on a DuckDB connection.

    - Partition columns come from the path (hive_partitioning), typed VARCHAR as in Glue (`dt string`,
      `namespace string`); DuckDB would otherwise infer dt as DATE. DuckDB unescapes `AWS%2FEC2`.
    - `timestamp` is presented as a plain TIMESTAMP holding UTC wall time, which is what Athena's Glue
      type `timestamp` is: the Parquet column is timestamp(us, isAdjustedToUTC), which DuckDB alone
      would expose as TIMESTAMP WITH TIME ZONE.
    Returns the names of the views created.
    """
    con.execute("SET TimeZone = 'UTC'")
    created = []
    for table in ("metrics_1m", "metrics_1h"):
        glob = (lake_tables_dir / table).as_posix() + "/**/*.parquet"
        con.execute(
            f"""CREATE OR REPLACE VIEW {table} AS
                SELECT * REPLACE (CAST("timestamp" AS TIMESTAMP) AS "timestamp")
                FROM read_parquet({_sql_str(glob)}, hive_partitioning = true,
                                  hive_types = {{'dt': 'VARCHAR', 'namespace': 'VARCHAR'}})"""
        )
        created.append(table)
    if raw_dir is not None and raw_dir.is_dir():
        glob = raw_dir.as_posix() + "/**/*.gz"
        columns = ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in RAW_COLUMNS.items())
        con.execute(
            f"""CREATE OR REPLACE VIEW raw AS
                SELECT * FROM read_json({_sql_str(glob)}, format = 'newline_delimited',
                                        compression = 'gzip', hive_partitioning = true,
                                        hive_types = {{'dt': 'VARCHAR', 'hour': 'VARCHAR'}},
                                        columns = {{{columns}}})"""
        )
        created.append("raw")
    return created


# ---------------------------------------------------------------------------------------------------
# Query text: the rewrite rules.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    athena: str
    target: str  # the same construct in the other engine (DuckDB in RULES, Spark SQL in SPARK_RULES)
    why: str
    apply: Callable[[str, "Context"], str]


@dataclass(frozen=True)
class Context:
    now: datetime  # naive, UTC: what current_timestamp means for this run


_JODA_TO_STRFTIME = [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")]


def _joda_to_strftime(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        for joda, strf in _JODA_TO_STRFTIME:
            if pattern.startswith(joda, i):
                out.append(strf)
                i += len(joda)
                break
        else:
            if pattern[i].isalpha():
                raise ValueError(f"format_datetime pattern {pattern!r}: letter {pattern[i]!r} has no rule here")
            out.append(pattern[i])
            i += 1
    return "".join(out)


def _scan(sql: str):
    """Yields (index, char, in_code) over sql, where in_code is False inside strings, quoted identifiers
    and comments."""
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                yield k, sql[k], False
            i = j
            continue
        if c in ("'", '"'):
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            for k in range(i, min(j + 1, n)):
                yield k, sql[k], False
            i = j + 1
            continue
        yield i, c, True
        i += 1


def _code_mask(sql: str) -> list[bool]:
    mask = [False] * len(sql)
    for i, _, in_code in _scan(sql):
        mask[i] = in_code
    return mask


def _rewrite_calls(sql: str, name: str, build: Callable[[list[str]], str]) -> str:
    """Replaces every call name(arg, ...) in code (not in strings or comments) by build(args)."""
    pattern = re.compile(r"\b" + re.escape(name) + r"\s*\(", re.IGNORECASE)
    while True:
        mask = _code_mask(sql)
        match = next((m for m in pattern.finditer(sql) if mask[m.start()]), None)
        if match is None:
            return sql
        depth, args, start = 1, [], match.end()
        i = start
        while depth:
            if i >= len(sql):
                raise ValueError(f"unbalanced parentheses after {name}(")
            c = sql[i]
            if mask[i]:
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                elif c == "," and depth == 1:
                    args.append(sql[start:i].strip())
                    start = i + 1
            i += 1
        args.append(sql[start : i - 1].strip())
        sql = sql[: match.start()] + build(args) + sql[i:]


def _element_at(sql: str, ctx: Context) -> str:
    def build(args):
        if len(args) != 2:
            raise ValueError(f"element_at takes 2 arguments, got {args}")
        return f"map_extract_value({args[0]}, {args[1]})"

    return _rewrite_calls(sql, "element_at", build)


def _from_unixtime(sql: str, ctx: Context) -> str:
    return _rewrite_calls(sql, "from_unixtime", lambda a: f"CAST(to_timestamp({a[0]}) AS TIMESTAMP)")


def _to_unixtime(sql: str, ctx: Context) -> str:
    return _rewrite_calls(sql, "to_unixtime", lambda a: f"epoch({a[0]})")


def _format_datetime(sql: str, ctx: Context) -> str:
    def build(args):
        fmt = args[1]
        if not (fmt.startswith("'") and fmt.endswith("'")):
            raise ValueError(f"format_datetime needs a literal pattern here, got {fmt}")
        return f"strftime({args[0]}, '{_joda_to_strftime(fmt[1:-1])}')"

    return _rewrite_calls(sql, "format_datetime", build)


def _current_timestamp(sql: str, ctx: Context) -> str:
    mask = _code_mask(sql)
    literal = f"TIMESTAMP '{ctx.now.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    out, last = [], 0
    for m in re.finditer(r"\bcurrent_timestamp\b", sql, re.IGNORECASE):
        if mask[m.start()]:
            out.append(sql[last : m.start()])
            out.append(literal)
            last = m.end()
    out.append(sql[last:])
    return "".join(out)


RULES: list[Rule] = [
    Rule(
        "element_at(map, key)",
        "map_extract_value(map, key)",
        "both give the value or NULL for a missing key; DuckDB's own element_at returns a list",
        _element_at,
    ),
    Rule(
        "from_unixtime(seconds)",
        "CAST(to_timestamp(seconds) AS TIMESTAMP)",
        "epoch seconds to a timestamp; DuckDB's to_timestamp gives TIMESTAMP WITH TIME ZONE, cast to UTC wall time",
        _from_unixtime,
    ),
    Rule("to_unixtime(ts)", "epoch(ts)", "timestamp to epoch seconds (double)", _to_unixtime),
    Rule(
        "format_datetime(ts, 'yyyy-MM-dd-HH')",
        "strftime(ts, '%Y-%m-%d-%H')",
        "Joda pattern letters (yyyy MM dd HH mm ss) to strftime; any other letter is refused",
        _format_datetime,
    ),
    Rule(
        "current_timestamp",
        "TIMESTAMP '<pinned now>'",
        "the check pins 'now' to the data's own clock, so the answer is reproducible",
        _current_timestamp,
    ),
]


def adapt(sql: str, now: datetime) -> str:
    """Applies every rule in order and returns DuckDB SQL. Parameters (`?`) are left as they are:
    DuckDB binds positional `?` like Athena's execution parameters."""
    ctx = Context(now=now)
    for rule in RULES:
        sql = rule.apply(sql, ctx)
    return sql


# ---------------------------------------------------------------------------------------------------
# Cookbook file headers.
# ---------------------------------------------------------------------------------------------------

_PARAM = re.compile(r"^--\s*@param\s+(\w+)\s+(\w+)\s+(.*?)\s*$")


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    example: str


def header_params(sql: str) -> list[Param]:
    """The `-- @param name type example [description]` lines, in order (one per `?`)."""
    params = []
    for line in sql.splitlines():
        m = _PARAM.match(line.strip())
        if m:
            params.append(Param(m.group(1), m.group(2).lower(), m.group(3)))
    return params


def header_answers(sql: str) -> str:
    """The text of the `-- Answers:` line (empty when missing)."""
    for line in sql.splitlines():
        m = re.match(r"^--\s*Answers:\s*(.+)$", line.strip())
        if m:
            return m.group(1)
    return ""


def placeholder_count(sql: str) -> int:
    mask = _code_mask(sql)
    return sum(1 for i, c in enumerate(sql) if c == "?" and mask[i])


# ---------------------------------------------------------------------------------------------------
# Spark SQL (pyspark 4.x, local mode, Hive catalog): the tables come from the Athena DDL itself.
# ---------------------------------------------------------------------------------------------------

# Session settings the Spark run needs, with the reason for each. Spark 4's ANSI mode (on by default)
# is kept: like Trino it fails on overflow and invalid casts instead of returning NULL.
SPARK_SESSION: dict[str, tuple[str, str]] = {
    "spark.sql.session.timeZone": ("UTC", "Athena's `timestamp` is UTC wall time; Spark shows timestamps in the session zone"),
    "spark.sql.ansi.doubleQuotedIdentifiers": (
        "true",
        'Athena quotes identifiers with double quotes ("timestamp"); Spark reads "..." as a string literal otherwise',
    ),
}


def _spark_from_unixtime(sql: str, ctx: Context) -> str:
    return _rewrite_calls(sql, "from_unixtime", lambda a: f"timestamp_seconds({a[0]})")


def _spark_to_unixtime(sql: str, ctx: Context) -> str:
    return _rewrite_calls(sql, "to_unixtime", lambda a: f"(unix_micros({a[0]}) / 1e6)")


def _spark_format_datetime(sql: str, ctx: Context) -> str:
    def build(args):
        fmt = args[1]
        if not (fmt.startswith("'") and fmt.endswith("'")):
            raise ValueError(f"format_datetime needs a literal pattern here, got {fmt}")
        _joda_to_strftime(fmt[1:-1])  # refuses any letter without a rule; these few mean the same in Spark
        return f"date_format({args[0]}, {fmt})"

    return _rewrite_calls(sql, "format_datetime", build)


SPARK_RULES: list[Rule] = [
    Rule(
        "from_unixtime(seconds)",
        "timestamp_seconds(seconds)",
        "Spark's from_unixtime returns a formatted STRING; timestamp_seconds returns the TIMESTAMP Athena's does",
        _spark_from_unixtime,
    ),
    Rule(
        "to_unixtime(ts)",
        "(unix_micros(ts) / 1e6)",
        "epoch seconds as a double, fraction kept; Spark's unix_timestamp truncates to whole seconds",
        _spark_to_unixtime,
    ),
    Rule(
        "format_datetime(ts, 'yyyy-MM-dd-HH')",
        "date_format(ts, 'yyyy-MM-dd-HH')",
        "the pattern letters yyyy MM dd HH mm ss mean the same in Joda and Spark; any other letter is refused",
        _spark_format_datetime,
    ),
    Rule(
        "current_timestamp",
        "TIMESTAMP '<pinned now>'",
        "the check pins 'now' to the data's own clock, so the answer is reproducible",
        _current_timestamp,
    ),
]


def adapt_spark(sql: str, now: datetime) -> str:
    """Applies every Spark rule in order. Positional `?` parameters stay: pyspark binds them
    (`spark.sql(text, args=[...])`) like Athena's execution parameters. element_at(map, key) stays too:
    Spark's returns NULL for a missing key, as Athena's does (also under ANSI mode)."""
    ctx = Context(now=now)
    for rule in SPARK_RULES:
        sql = rule.apply(sql, ctx)
    return sql


def spark_string(s: str) -> str:
    """A Spark SQL (and Hive DDL) string literal: there a backslash is an escape character, unlike in
    Athena's Trino queries, so `\\` and `'` are escaped with one."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def spark_ddl(sql: str, bucket_uri: str) -> str:
    """The shipped Athena DDL for Spark: only the bucket moves (`s3://CWMS_BUCKET/` -> bucket_uri)."""
    if "s3://CWMS_BUCKET/" not in sql:
        raise ValueError("the DDL has no s3://CWMS_BUCKET/ location to point elsewhere")
    return sql.replace("s3://CWMS_BUCKET/", bucket_uri.rstrip("/") + "/")


_ADD_PARTITION = re.compile(
    r"ALTER\s+TABLE\s+(?P<table>\w+)\s+ADD\s+IF\s+NOT\s+EXISTS\s+PARTITION\s*\(\s*dt\s*=\s*(?P<dt>'[^']*')\s*,"
    r"\s*namespace\s*=\s*(?P<namespace>'[^']*')\s*\)\s*LOCATION\s+(?P<location>'[^']*')",
    re.IGNORECASE,
)


def spark_add_partition(template: str, table: str, dt: str, namespace: str, location: str) -> str:
    """The project's ADD PARTITION statement (ddl/metrics_add_partition.sql) for one partition: its table,
    dt and namespace values and LOCATION replaced, everything else as written."""
    m = _ADD_PARTITION.search(template)
    if not m:
        raise ValueError("metrics_add_partition.sql no longer has the ALTER TABLE ... ADD IF NOT EXISTS PARTITION "
                         "(dt = '...', namespace = '...') LOCATION '...' shape this rule rewrites")
    out = template
    for group, value in sorted(
        [("location", spark_string(location)), ("namespace", spark_string(namespace)), ("dt", spark_string(dt)), ("table", table)],
        key=lambda gv: -m.start(gv[0]),
    ):
        out = out[: m.start(group)] + value + out[m.end(group) :]
    return out


# The raw table's DDL uses the OpenX JSON SerDe, which Spark does not ship: Spark's own JSON source with
# the same columns stands in for it (gzip is told by the .gz extension, partitions found by MSCK).
def spark_raw_table(columns: list[tuple[str, str]], partitions: list[tuple[str, str]], location_uri: str) -> str:
    cols = ", ".join(f"`{name}` {hive_type}" for name, hive_type in columns + partitions)
    keys = ", ".join(f"`{name}`" for name, _ in partitions)
    return f"CREATE TABLE raw ({cols}) USING json PARTITIONED BY ({keys}) LOCATION {spark_string(location_uri)}"
