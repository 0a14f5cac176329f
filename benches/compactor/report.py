#!/usr/bin/env python3
"""Prints run.sh's results as a Markdown table: ratios against the DESIGN 8 targets, then the
absolute figures. Reads $out/hyperfine.json, the summaries and the environment run.sh exports."""

import datetime
import json
import os
import platform
import statistics
import subprocess

env = os.environ
out = env["out"]


def number(name: str) -> float:
    return float(env.get(name) or 0)


def median_seconds(results: dict, name: str) -> float:
    return statistics.median(results[name]["times"])


with open(os.path.join(out, "hyperfine.json"), encoding="utf-8") as f:
    results = {r["command"]: r for r in json.load(f)["results"]}
with open(os.path.join(out, "cwms-summary.json"), encoding="utf-8") as f:
    cwms_summary = json.load(f)
with open(os.path.join(out, "duckdb-summary.json"), encoding="utf-8") as f:
    duckdb_summary = json.load(f)

t = {name: median_seconds(results, name) for name in results}
datums = duckdb_summary["rows_1m"]  # rows of metrics_1m: datums after the merge
lines = int(number("lines_1x"))
rss = {k: number(k) * 1024 / 1e6 for k in
       ("rss_cwms_1x", "rss_duckdb_1x", "rss_cwms_1x_small", "rss_cwms_1x_conc", "rss_cwms_4x", "rss_cwms_4x_small",
        "rss_cwms_4x_small_conc", "rss_duckdb_4x")}
size = {k: number(k) for k in ("size_cwms", "size_duckdb_zstd", "size_duckdb_snappy")}
has_4x = rss["rss_cwms_4x"] > 0


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


speed = t["duckdb-2cores"] / t["cwms-2cores"]
cpu_ratio = (results["duckdb-2cores"]["user"] + results["duckdb-2cores"]["system"]) / (results["cwms-2cores"]["user"] + results["cwms-2cores"]["system"])
memory = rss["rss_cwms_1x"] / rss["rss_duckdb_1x"]
speedup = t["cwms-1core"] / t["cwms-2cores"]
duck_speedup = t["duckdb-1core"] / t["duckdb-2cores"]
growth = rss["rss_cwms_4x"] / rss["rss_cwms_1x"] - 1 if has_4x else float("nan")
growth_small = rss["rss_cwms_4x_small"] / rss["rss_cwms_1x_small"] - 1 if has_4x else float("nan")
growth_small_conc = rss["rss_cwms_4x_small_conc"] / rss["rss_cwms_1x_conc"] - 1 if has_4x else float("nan")
memory_conc = rss["rss_cwms_1x_conc"] / rss["rss_duckdb_1x"]
per_datum = {k: v / datums for k, v in size.items()}
batch_small = env["batch_small"]

rows = [
    ("speed, 2 cores: DuckDB time / cwms time", f"{speed:.2f}", ">= 2", verdict(speed >= 2)),
    ("(for reference) CPU time, 2 cores: DuckDB / cwms", f"{cpu_ratio:.2f}", "", ""),
    ("peak RSS, 2 cores: cwms / DuckDB", f"{memory:.2f}", "<= 0.5", verdict(memory <= 0.5)),
    ("memory growth 1x -> 4x, cwms, --batch-mb 256 (default)", f"{growth:+.0%}", "< +30%", verdict(growth < 0.3)),
    (f"memory growth 1x -> 4x, cwms, --batch-mb {batch_small}", f"{growth_small:+.0%}", "< +30%", verdict(growth_small < 0.3)),
    (f"(not the default) memory growth 1x -> 4x, cwms, --batch-mb {batch_small} --concurrency 2", f"{growth_small_conc:+.0%}", "< +30%",
     verdict(growth_small_conc < 0.3)),
    ("(not the default) peak RSS, 2 cores: cwms --concurrency 2 / DuckDB", f"{memory_conc:.2f}", "<= 0.5", verdict(memory_conc <= 0.5)),
    ("parallel speedup, cwms: 1-core time / 2-core time", f"{speedup:.2f}", ">= 1.8", verdict(speedup >= 1.8)),
    ("lake size, metrics_1m: cwms (zstd) / DuckDB (snappy, its default)", f"{size['size_cwms'] / size['size_duckdb_snappy']:.2f}", "<= 1",
     verdict(size["size_cwms"] <= size["size_duckdb_snappy"])),
    ("lake size, metrics_1m: cwms (zstd) / DuckDB (zstd)", f"{size['size_cwms'] / size['size_duckdb_zstd']:.2f}", "<= 1",
     verdict(size["size_cwms"] <= size["size_duckdb_zstd"])),
]


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0) / 1024 / 1024
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    import duckdb
    return f"{os.cpu_count()} x {model}, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}; {rustc}; duckdb {duckdb.__version__} (Python)"


print(f"## Compactor results, {datetime.date.today().isoformat()}\n")
print(f"Machine: {machine()}\n")
print(f"Input 1x: `cwms generate {env['flags_1x']}`: {lines:,} lines, {int(number('raw_1x')):,} bytes of gzip "
      f"({number('raw_1x') / lines:.1f} bytes a line), {datums:,} datums after the merge.")
if has_4x:
    print(f"Input 4x: `cwms generate {env['flags_4x']}`: {int(number('lines_4x')):,} lines, {int(number('raw_4x')):,} bytes of gzip.")
print(f"Load average (1 min) before the timed runs: {env['load_start']}, after them: {env['load_after_timing']} "
      "(the benchmark itself adds up to 2; other work on the machine shares the 2 cores: compare ratios within one run).")
print(f"Runs: {env['runs']} timed (hyperfine, 1 warm-up, lake removed before each), RSS the median of 3.\n")

with open(os.path.join(out, "compare.txt"), encoding="utf-8") as f:
    print("Same work (compare_lakes.py, on the 1x lakes):\n")
    for line in f:
        print(f"- {line.strip()}")
    print()

print("| figure | value | target | |")
print("|---|---|---|---|")
for row in rows:
    print("| " + " | ".join(row) + " |")

print("\n| absolute | cwms | DuckDB |")
print("|---|---|---|")


def timing(name: str) -> str:
    r = results[name]
    return f"{t[name]:.2f} s (min {r['min']:.2f}, max {r['max']:.2f})"


print(f"| time, 2 cores (median) | {timing('cwms-2cores')} | {timing('duckdb-2cores')} |")
print(f"| time, 1 core (median) | {timing('cwms-1core')} | {timing('duckdb-1core')} |")
def cpu(name: str) -> str:
    r = results[name]
    return f"{r['user'] + r['system']:.2f} s"


print(f"| CPU time (user + system, mean), 2 cores | {cpu('cwms-2cores')} | {cpu('duckdb-2cores')} |")
print(f"| speedup 1 -> 2 cores | {speedup:.2f} | {duck_speedup:.2f} |")
print(f"| throughput, 2 cores | {lines / t['cwms-2cores'] / 1e3:.0f} k lines/s, {number('raw_1x') / t['cwms-2cores'] / 1e6:.1f} MB/s gzip | "
      f"{lines / t['duckdb-2cores'] / 1e3:.0f} k lines/s, {number('raw_1x') / t['duckdb-2cores'] / 1e6:.1f} MB/s gzip |")
print(f"| peak RSS, 1x | {rss['rss_cwms_1x']:.0f} MB | {rss['rss_duckdb_1x']:.0f} MB |")
print(f"| peak RSS, 1x, --batch-mb {batch_small} | {rss['rss_cwms_1x_small']:.0f} MB | |")
print(f"| peak RSS, 1x, --concurrency 2 | {rss['rss_cwms_1x_conc']:.0f} MB | |")
if has_4x:
    print(f"| peak RSS, 4x | {rss['rss_cwms_4x']:.0f} MB | {rss['rss_duckdb_4x']:.0f} MB |")
    print(f"| peak RSS, 4x, --batch-mb {batch_small} | {rss['rss_cwms_4x_small']:.0f} MB | |")
    print(f"| peak RSS, 4x, --batch-mb {batch_small} --concurrency 2 | {rss['rss_cwms_4x_small_conc']:.0f} MB | |")
print(f"| metrics_1m bytes (bytes per datum) | {size['size_cwms']:,.0f} ({per_datum['size_cwms']:.1f}), zstd(3) | "
      f"{size['size_duckdb_snappy']:,.0f} ({per_datum['size_duckdb_snappy']:.1f}) snappy; "
      f"{size['size_duckdb_zstd']:,.0f} ({per_datum['size_duckdb_zstd']:.1f}) zstd |")
steps = ", ".join(f"{k} {v:.2f} s" for k, v in duckdb_summary["seconds"].items())
print(f"| own timing of one run | {cwms_summary['elapsed_seconds']:.2f} s (elapsed_seconds) | {steps} |")
