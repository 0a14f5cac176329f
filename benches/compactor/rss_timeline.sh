#!/usr/bin/env bash
# Samples a command's resident memory and CPU time every 100 ms, to see which phase of a run
# holds the peak (the compactor's decode, publish and rollup phases follow each other per batch,
# and the lake's files appear as each publish ends).
#
#   rss_timeline.sh OUT.tsv COMMAND [ARGS...]
#
# Writes "seconds  rss_mb  cpu_seconds  threads  lake_files" lines to OUT.tsv (lake_files: the
# .parquet files below $LAKE when set), prints the peak and when it happened.
set -euo pipefail
out=$1
shift
: > "$out"
"$@" > /dev/null &
pid=$!
start=$(date +%s%N)
tick=$(getconf CLK_TCK)
while kill -0 "$pid" 2>/dev/null; do
    if [[ -r /proc/$pid/status ]]; then
        rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        cpu=$(awk -v t="$tick" '{print ($14 + $15) / t}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        threads=$(ls "/proc/$pid/task" 2>/dev/null | wc -l)
        files=0
        [[ -n ${LAKE:-} && -d ${LAKE:-} ]] && files=$(find "$LAKE" -name '*.parquet' | wc -l)
        now=$(date +%s%N)
        printf '%.2f\t%d\t%s\t%d\t%d\n' "$(( (now - start) / 1000000 ))e-3" "$(( ${rss_kb:-0} / 1024 ))" "$cpu" "$threads" "$files" >> "$out"
    fi
    sleep 0.1
done
wait "$pid"
sort -t$'\t' -k2,2n "$out" | tail -1 | awk -F'\t' '{printf "peak %d MB at %.1f s (cpu %.1f s, %d lake files by then)\n", $2, $1, $3, $5}'
