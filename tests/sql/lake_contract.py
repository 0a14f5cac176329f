"""The lake contract as the Athena DDL states it, and how to hold a real file up against it.

Shared by check_infra.py (DDL vs the template's Glue tables) and check_cookbook.py (DDL vs lake files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ATHENA_DDL_DIR = REPO / "infra" / "sql" / "athena" / "ddl"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Hive type text, normalized: lowercase, no spaces


@dataclass(frozen=True)
class TableDdl:
    name: str
    columns: list[Column]
    partition_keys: list[Column]
    location: str
    source: Path


def _strip_comments(sql: str) -> str:
    out = []
    for line in sql.splitlines():
        # The DDL has no `--` inside string literals, so a plain cut is enough here.
        cut = line.find("--")
        out.append(line if cut < 0 else line[:cut])
    return "\n".join(out)


def _balanced(text: str, open_at: int) -> tuple[str, int]:
    """The text inside the parenthesis opened at open_at, and the index after its close."""
    assert text[open_at] == "("
    depth, i, quote = 0, open_at, None
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"`":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i], i + 1
        i += 1
    raise ValueError("unbalanced parentheses")


def _split_top_level(text: str) -> list[str]:
    parts, depth, start, quote = [], 0, 0, None
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"`":
            quote = c
        elif c in "(<":
            depth += 1
        elif c in ")>":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


_COLUMN = re.compile(r"^`?(\w+)`?\s+(.+?)(?:\s+COMMENT\s+'(?:[^']|'')*')?$", re.IGNORECASE | re.DOTALL)


def _columns(body: str) -> list[Column]:
    cols = []
    for part in _split_top_level(body):
        m = _COLUMN.match(part)
        if not m:
            raise ValueError(f"cannot parse column definition {part!r}")
        cols.append(Column(m.group(1).lower(), re.sub(r"\s+", "", m.group(2)).lower()))
    return cols


def parse_create_table(path: Path) -> TableDdl:
    sql = _strip_comments(path.read_text())
    m = re.search(r"CREATE\s+EXTERNAL\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`?(\w+)`?\s*\(", sql, re.IGNORECASE)
    if not m:
        raise ValueError(f"{path}: no CREATE EXTERNAL TABLE")
    body, after = _balanced(sql, m.end() - 1)
    p = re.compile(r"PARTITIONED\s+BY\s*\(", re.IGNORECASE).search(sql, after)
    partitions = _columns(_balanced(sql, p.end() - 1)[0]) if p else []
    loc = re.search(r"LOCATION\s+'([^']+)'", sql, re.IGNORECASE)
    return TableDdl(m.group(1).lower(), _columns(body), partitions, loc.group(1) if loc else "", path)


def athena_tables() -> dict[str, TableDdl]:
    """Every CREATE EXTERNAL TABLE under infra/sql/athena/ddl, by table name."""
    tables = {}
    for path in sorted(ATHENA_DDL_DIR.glob("*.sql")):
        if re.search(r"CREATE\s+EXTERNAL\s+TABLE", path.read_text(), re.IGNORECASE):
            t = parse_create_table(path)
            tables[t.name] = t
    return tables


# ---------------------------------------------------------------------------------------------------
# Hive type text against an Arrow type read from a Parquet file.
# ---------------------------------------------------------------------------------------------------


def arrow_matches_hive(arrow_type, hive: str) -> str | None:
    """None when the Arrow type is what the Hive type promises for the lake, else why not."""
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_dictionary(t):  # a dictionary-encoded string column is still a string
        t = t.value_type
    if hive == "string":
        return None if (pa.types.is_string(t) or pa.types.is_large_string(t)) else f"{t} is not a string"
    if hive == "bigint":
        return None if pa.types.is_int64(t) else f"{t} is not int64 (bigint; signed, DESIGN 4.1)"
    if hive == "double":
        return None if pa.types.is_float64(t) else f"{t} is not float64"
    if hive == "timestamp":
        if not pa.types.is_timestamp(t):
            return f"{t} is not a timestamp"
        if t.unit != "us":
            return f"{t} has unit {t.unit}; the lake uses microseconds (Athena and Redshift misread ns)"
        if t.tz not in ("UTC", "+00:00", "Etc/UTC"):
            return f"{t} is not adjusted to UTC"
        return None
    m = re.fullmatch(r"map<(.+)>", hive)
    if m:
        if not pa.types.is_map(t):
            return f"{t} is not a map"
        key, value = _split_top_level(m.group(1))
        why = arrow_matches_hive(t.key_type, key)
        if why:
            return f"map key: {why}"
        why = arrow_matches_hive(t.item_type, value)
        return f"map value: {why}" if why else None
    return f"no rule for Hive type {hive}"


def parquet_map_groups(parquet_schema, column: str) -> str | None:
    """None when the map column uses the Parquet spec's names (key_value / key / value, DESIGN 4.2)."""
    paths = {parquet_schema.column(i).path for i in range(len(parquet_schema))}
    wanted = {f"{column}.key_value.key", f"{column}.key_value.value"}
    if wanted <= paths:
        return None
    found = sorted(p for p in paths if p.startswith(column + "."))
    return f"map {column} is stored as {found}, not {sorted(wanted)}"
