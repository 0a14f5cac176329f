#!/usr/bin/env bash
# Compactor benchmarks (DESIGN 8), one command: cwms compact against DuckDB doing the same work
# (duckdb_compact.sql) on the same raw gzip NDJSON, in the same run on the same machine.
#
#   1. speed, 2 cores: cwms vs DuckDB, whole process (hyperfine, lake removed before each run)
#   2. peak RSS of both (/usr/bin/time -v)
#   3. memory growth: cwms peak RSS on 1x vs 4x the input (4x = 4 hours instead of 1, same
#      series), with the default --batch-mb 256 and with --batch-mb 32 (and, not the default,
#      --concurrency 2: one lake object encoded per core instead of two)
#   4. parallel speedup: cwms on 1 core (taskset -c 0) vs 2 cores (taskset -c 0,1)
#   5. lake size: bytes per datum of metrics_1m, cwms (zstd, its default) vs DuckDB with its
#      default codec (snappy) and with zstd
#
# Before timing anything it checks that both lakes hold the same rows (compare_lakes.py).
#
# Needs: cargo, hyperfine (apt-get install -y hyperfine), /usr/bin/time (apt-get install -y
# time), taskset (util-linux), and a Python with duckdb (default target/tools/venv/bin/python,
# which ./scripts/install-tools sets up; or CWMS_BENCH_PYTHON). Idempotent: inputs are generated
# once (deterministic: fixed seed and start) and reused while the generator's flags are the same.
#
# Knobs (environment): RUNS (hyperfine runs, default 5), SERIES (20000), MINUTES (60: the 1x
# input; 4x is 4 * MINUTES), BATCH_MB_SMALL (32), CWMS_BENCH_OUT (target/bench/compactor),
# SKIP_4X=1 (skip item 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${CWMS_BENCH_OUT:-target/bench/compactor}
runs=${RUNS:-5}
series=${SERIES:-20000}
minutes=${MINUTES:-60}
batch_small=${BATCH_MB_SMALL:-32}
python=${CWMS_BENCH_PYTHON:-target/tools/venv/bin/python}
here=benches/compactor
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in cargo hyperfine taskset /usr/bin/time "$python"; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install -y hyperfine time util-linux; ./scripts/install-tools for the venv)" >&2; exit 1; }
done
"$python" -c 'import duckdb' 2>/dev/null || { echo "run.sh: $python has no duckdb module (pip install duckdb)" >&2; exit 1; }
[[ $(nproc --all) -ge 2 ]] || { echo "run.sh: needs 2 cores (taskset -c 0,1)" >&2; exit 1; }

# Compaction between folders needs no AWS SDK: the build without it is half the crates.
cargo build --profile dist --quiet -p cwms-cli --no-default-features
# A copy, so that a rebuild in the shared target folder cannot swap the binary mid-run.
cp target/dist/cwms "$out/cwms"
cwms=$out/cwms
duck=("$python" "$PWD/$here/duckdb_compact.py")

# Inputs: raw folders as Firehose writes them, made once per set of flags.
generate() { # generate NAME MINUTES
    local dir=$out/$1 flags
    flags="--format raw-folder --series $series --minutes $2 --start 2026-01-15T10:00:00Z --seed 1 --duplicates 0.02 --late 0.02"
    if [[ ! -f $dir.flags || $(cat "$dir.flags") != "$flags" ]]; then
        rm -rf "$dir"
        # shellcheck disable=SC2086
        "$cwms" generate $flags --out "$dir" >&2
        echo "$flags" > "$dir.flags"
    fi
    echo "$flags"
}
flags_1x=$(generate input-1x "$minutes")
[[ ${SKIP_4X:-0} == 1 ]] || flags_4x=$(generate input-4x $((4 * minutes)))
raw_bytes() { find "$1" -name '*.gz' -printf '%s\n' | awk '{s += $1} END {print s}'; }
raw_lines() { find "$1" -name '*.gz' -print0 | xargs -0 zcat | wc -l; }

# 0. Same work: one run of each, then compare the lakes row by row.
rm -rf "$out/lake-cwms" "$out/lake-duckdb" "$out/lake-duckdb-snappy"
"$cwms" compact --raw "$out/input-1x" --lake "$out/lake-cwms" --json > "$out/cwms-summary.json"
"${duck[@]}" --raw "$out/input-1x" --lake "$out/lake-duckdb" --codec zstd > "$out/duckdb-summary.json"
"${duck[@]}" --raw "$out/input-1x" --lake "$out/lake-duckdb-snappy" --codec snappy > "$out/duckdb-snappy-summary.json"
"$python" "$here/compare_lakes.py" "$out/lake-cwms" "$out/lake-duckdb" 2> "$out/compare.txt" || { cat "$out/compare.txt" >&2; exit 1; }
cat "$out/compare.txt" >&2

# Other work on the machine distorts wall-clock times (2 cores give no speedup when another
# process keeps one busy): the report shows the load average before and after.
load_start=$(cut -d' ' -f1 /proc/loadavg)

# 1 and 4. Speed: cwms and DuckDB on 2 cores, cwms and DuckDB on 1 core, whole process.
hyperfine --warmup 1 --runs "$runs" -N --export-json "$out/hyperfine.json" --export-markdown "$out/hyperfine.md" \
    --prepare "rm -rf $out/lake-bench" \
    -n cwms-2cores "taskset -c 0,1 $cwms compact --raw $out/input-1x --lake $out/lake-bench" \
    -n duckdb-2cores "taskset -c 0,1 ${duck[*]} --raw $out/input-1x --lake $out/lake-bench --codec zstd" \
    -n cwms-1core "taskset -c 0 $cwms compact --raw $out/input-1x --lake $out/lake-bench" \
    -n duckdb-1core "taskset -c 0 ${duck[*]} --raw $out/input-1x --lake $out/lake-bench --codec zstd" >&2

load_after_timing=$(cut -d' ' -f1 /proc/loadavg)

# 2 and 3. Peak RSS (KB): the median of 3 runs each, on 2 cores.
peak_kb() {
    local runs_kb=()
    for _ in 1 2 3; do
        rm -rf "$out/lake-rss"
        runs_kb+=("$( { /usr/bin/time -v taskset -c 0,1 "$@" > /dev/null; } 2>&1 | awk -F': ' '/Maximum resident set size/ {print $2}')")
    done
    printf '%s\n' "${runs_kb[@]}" | sort -n | sed -n 2p
}
rss_cwms_1x=$(peak_kb "$cwms" compact --raw "$out/input-1x" --lake "$out/lake-rss")
rss_duckdb_1x=$(peak_kb "${duck[@]}" --raw "$out/input-1x" --lake "$out/lake-rss" --codec zstd)
rss_cwms_1x_small=$(peak_kb "$cwms" compact --raw "$out/input-1x" --lake "$out/lake-rss" --batch-mb "$batch_small")
# --concurrency bounds both the raw objects read at once and the lake objects encoded at once
# (default: 2 per core); one per core shows how much of the peak is concurrent publishing.
rss_cwms_1x_conc=$(peak_kb "$cwms" compact --raw "$out/input-1x" --lake "$out/lake-rss" --concurrency 2)
if [[ ${SKIP_4X:-0} != 1 ]]; then
    rss_cwms_4x=$(peak_kb "$cwms" compact --raw "$out/input-4x" --lake "$out/lake-rss")
    rss_cwms_4x_small=$(peak_kb "$cwms" compact --raw "$out/input-4x" --lake "$out/lake-rss" --batch-mb "$batch_small")
    rss_cwms_4x_small_conc=$(peak_kb "$cwms" compact --raw "$out/input-4x" --lake "$out/lake-rss" --batch-mb "$batch_small" --concurrency 2)
    rss_duckdb_4x=$(peak_kb "${duck[@]}" --raw "$out/input-4x" --lake "$out/lake-rss" --codec zstd)
    raw_4x=$(raw_bytes "$out/input-4x"); lines_4x=$(raw_lines "$out/input-4x")
else
    rss_cwms_4x=0; rss_cwms_4x_small=0; rss_cwms_4x_small_conc=0; rss_duckdb_4x=0; raw_4x=0; lines_4x=0; flags_4x=skipped
fi
rm -rf "$out/lake-rss" "$out/lake-bench"

# 5. Lake size: metrics_1m Parquet bytes.
parquet_bytes() { find "$1/metrics_1m" -name '*.parquet' -printf '%s\n' | awk '{s += $1} END {print s}'; }

export out runs flags_1x flags_4x batch_small load_start load_after_timing
export raw_1x=$(raw_bytes "$out/input-1x") lines_1x=$(raw_lines "$out/input-1x") raw_4x lines_4x
export rss_cwms_1x rss_duckdb_1x rss_cwms_1x_small rss_cwms_1x_conc rss_cwms_4x rss_cwms_4x_small rss_cwms_4x_small_conc rss_duckdb_4x
export size_cwms=$(parquet_bytes "$out/lake-cwms") size_duckdb_zstd=$(parquet_bytes "$out/lake-duckdb") size_duckdb_snappy=$(parquet_bytes "$out/lake-duckdb-snappy")
"$python" "$here/report.py" | tee "$out/results.md"
