#!/usr/bin/env bash
# Where `cwms transform` spends its time on the benchmark event (made by run.sh): perf samples of
# a release build with symbols (a `profiling` profile defined on the command line, so the
# workspace's release artifacts are untouched), summed by stage.
#
# Needs perf (linux-perf) and target/bench/transform/event.json from run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${BENCH_OUT:-target/bench/transform}
unset $(compgen -e | grep '^CWMS_' || true)  # `cwms transform` refuses unknown CWMS_ variables
event=$out/event.json
[[ -f "$event" ]] || { echo "profile.sh: run benches/transform/run.sh first (it writes $event)" >&2; exit 1; }
cargo build --quiet --profile profiling -p cwms-cli \
    --config 'profile.profiling.inherits="dist"' --config 'profile.profiling.strip="none"' \
    --config 'profile.profiling.debug="line-tables-only"'
perf record --quiet -F 4000 -o "$out/perf.data" -- \
    sh -c "for i in 1 2 3 4 5 6 7 8 9 10; do taskset -c 0 target/profiling/cwms transform --event $event > /dev/null; done"
perf report -i "$out/perf.data" --comm cwms --no-children --sort symbol --stdio 2>/dev/null > "$out/perf-flat.txt"
python3 - "$out/perf-flat.txt" <<'PY'
import re, sys
stages = [  # first match wins
    ("kernel: page faults on fresh memory, file read, exit", lambda s, k: k),
    ("base64 decode (base64-simd)", lambda s, k: "base64_simd" in s and "decode" in s or "internal_decode" in s or "decode::inner" in s),
    ("base64 encode (base64-simd)", lambda s, k: "base64_simd" in s and "encode" in s or "internal_encode" in s or "encode_with_padding" in s),
    ("datum lines in: the fast path (cwms_decode::fast) and float parsing", lambda s, k: "cwms_decode::fast" in s or "dec2flt" in s or "f64 as core::str" in s),
    ("JSON in: serde_json (the event; lines off the fast path), UTF-8 checks", lambda s, k: any(x in s for x in (
        "serde_json::de", "serde_json::read", "from_utf8", "simdutf8", "lexical", "Seed as serde_core", "line::Number", "serde_core::de"))),
    ("normalized lines out (Datum::write_json_line, string escapes, float formatting)", lambda s, k: "write_json_line" in s or "zmij" in s or "format_escaped_str" in s),
    ("JSON out: the response (serde_json serializer)", lambda s, k: "ser::Serializer" in s),
    ("allocation and copies (malloc, free, memmove, memset)", lambda s, k: any(x in s for x in (
        "malloc", "_int_free", "memmove", "memset", "unlink_chunk", "realloc", "cfree", "finish_grow", "grow_one", "drop_in_place"))),
    ("line splitting (decode_lines itself, memchr)", lambda s, k: "decode_lines" in s or "memchr" in s or "memrchr" in s),
    ("dedup (xxh3, hash map, line compare)", lambda s, k: "xxh" in s or "hash" in s.lower() or "memcmp" in s),
]
totals = {name: 0.0 for name, _ in stages}
other = []
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d.]+)%\s+\S+\s+\[(.)\]\s+(.*?)\s*$", line) or re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.*?)\s*$", line)
    if not m:
        continue
    share, kind, symbol = float(m[1]), m[2], re.sub(r"\s+-\s+-$", "", m[3])
    for name, match in stages:
        if match(symbol, kind == "k"):
            totals[name] += share
            break
    else:
        other.append((share, symbol))
for name, _ in stages:
    print(f"{totals[name]:5.1f}%  {name}")
print(f"{sum(s for s, _ in other):5.1f}%  other (largest: {', '.join(f'{n} {s:.1f}%' for s, n in sorted(other, reverse=True)[:3])})")
PY
