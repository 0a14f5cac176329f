#!/usr/bin/env bash
# The compactor's memory bound (issue: "a documented bound in MB that holds on any input"),
# measured: peak RSS of `cwms compact` (/usr/bin/time -v) against the point budget
# (--max-points) and against the input's size, 1x, 4x and 16x, for four shapes of input:
#
#   hours     many small objects: Firehose-sized raw objects (about 5 MB of NDJSON each) of
#             SERIES series over 1, 4 and 16 hours
#   huge      one huge object: the same datums concatenated into ONE gzip object per size
#   series    many series: one hour of SERIES, 4 x SERIES and 16 x SERIES series (one large lake
#             object per namespace and hour, merged a row group at a time)
#   again     the hours input compacted in two halves, so the second half merges into the
#             lake objects the first half wrote
#
# Every run starts from an empty lake (`again`: from the first half's lake). Inputs are made
# once (deterministic) and kept in CWMS_BENCH_OUT (default target/bench/memory).
#
# Knobs: SERIES (default 2500: 1x of `hours` is 150,000 datums), POINTS (the --max-points
# values, default "250000 1000000 4000000"), SHAPES (default "hours huge series again").
# Needs /usr/bin/time (apt-get install -y time). Builds `cwms` with the `dist` profile (the
# benchmarks' profile, see the workspace Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${CWMS_BENCH_OUT:-target/bench/memory}
series=${SERIES:-2500}
points=${POINTS:-"250000 1000000 4000000"}
shapes=${SHAPES:-"hours huge series again"}
mkdir -p "$out"
out=$(cd "$out" && pwd)
command -v /usr/bin/time >/dev/null || { echo "memory.sh: /usr/bin/time is missing (apt-get install -y time)" >&2; exit 1; }

# Compaction between folders needs no AWS SDK: the build without it is half the crates.
cargo build --profile dist --quiet -p cwms-cli --no-default-features
cp target/dist/cwms "$out/cwms"
cwms=$out/cwms
start=2026-01-15T00:00:00Z

# raw NAME SERIES MINUTES: a raw folder as Firehose writes it (made once).
raw() {
    local dir=$out/$1 flags="--format raw-folder --series $2 --minutes $3 --start $start --seed 1 --duplicates 0.02 --late 0.02"
    if [[ ! -f $dir.flags || $(cat "$dir.flags") != "$flags" ]]; then
        rm -rf "$dir"
        # shellcheck disable=SC2086
        "$cwms" generate $flags --out "$dir" >/dev/null 2>&1
        echo "$flags" > "$dir.flags"
    fi
    echo "$dir/raw"
}

# huge NAME FROM: every object of FROM concatenated into one gzip object (gzip members in a row
# are one valid gzip stream).
huge() {
    local dir=$out/$1
    if [[ ! -f $dir/raw/one.gz || $dir/raw/one.gz -ot $2 ]]; then
        rm -rf "$dir"
        mkdir -p "$dir/raw"
        find "$2" -type f -name '*.gz' | sort | xargs cat > "$dir/raw/one.gz"
    fi
    echo "$dir/raw"
}

# measure LABEL RAW POINTS [LAKE]: one compaction from an empty lake (or LAKE, copied), printing
# a table row: label, raw bytes, datums, max-points, peak RSS MiB, seconds.
measure() {
    local label=$1 rawdir=$2 budget=$3 base=${4:-}
    local lake=$out/lake-run
    rm -rf "$lake"
    if [[ -n $base ]]; then cp -r "$base" "$lake"; fi
    local stats=$out/time.txt
    /usr/bin/time -v "$cwms" compact --raw "$rawdir" --lake "$lake" --max-points "$budget" --json > "$out/report.json" 2> "$stats"
    local rss_kb seconds bytes datums peak
    rss_kb=$(grep 'Maximum resident set size' "$stats" | awk '{print $NF}')
    seconds=$(grep 'Elapsed (wall clock)' "$stats" | awk '{print $NF}')
    bytes=$(du -sb "$rawdir" | cut -f1)
    datums=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["datums"], r["peak_points"])' "$out/report.json")
    read -r datums peak <<< "$datums"
    printf '| %s | %s | %s | %s | %s | %d | %s |\n' "$label" "$((bytes / 1048576)) MiB" "$datums" "$budget" "$peak" "$((rss_kb / 1024))" "$seconds"
}

echo "| input | raw (stored) | datums | --max-points | points held at most | peak RSS (MiB) | wall (m:ss) |"
echo "|---|---|---|---|---|---|---|"
for shape in $shapes; do
    for scale in 1 4 16; do
        case $shape in
            hours) dir=$(raw "hours-$scale" "$series" $((60 * scale))) ;;
            huge) dir=$(huge "huge-$scale" "$(raw "hours-$scale" "$series" $((60 * scale)))") ;;
            series) dir=$(raw "series-$scale" $((series * scale)) 60) ;;
            again) dir=$(raw "hours-$scale" "$series" $((60 * scale))) ;;
        esac
        for budget in $points; do
            if [[ $shape == again ]]; then
                # The first half (by key) into a lake, then everything: the second half merges
                # into the objects the first wrote.
                half=$out/half-$scale
                if [[ ! -d $half ]]; then
                    mkdir -p "$half"
                    mapfile -t files < <(cd "$dir" && find . -type f | sort)
                    for f in "${files[@]:0:$((${#files[@]} / 2))}"; do mkdir -p "$half/$(dirname "$f")"; cp -p "$dir/$f" "$half/$f"; done
                fi
                rm -rf "$out/lake-half"
                "$cwms" compact --raw "$half" --lake "$out/lake-half" --max-points "$budget" >/dev/null
                # The checkpoint names the half's folder: the full run reads everything again
                # (idempotent) and merges into the half's objects.
                rm -f "$out/lake-half/_cwms/checkpoint.json"
                measure "again ${scale}x" "$dir" "$budget" "$out/lake-half"
            else
                measure "$shape ${scale}x" "$dir" "$budget"
            fi
        done
    done
done
