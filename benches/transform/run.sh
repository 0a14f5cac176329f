#!/usr/bin/env bash
# Transform benchmarks (DESIGN 8), one command:
#   - speed: `cwms transform` vs the usual Python transform on the same ~6 MB event, one core
#   - peak RSS of both on that event (target for cwms: <= 4 x event size + 16 MB)
#   - cold start of the dist-profile bootstrap under the real Lambda Runtime API emulator
#   - stripped size of the dist-profile bootstrap (target < 8 MB)
#   - optionally (BENCH_ARM64=1) `cargo lambda build --profile dist --arm64`
#   - optionally (BEFORE=path/to/an/older/cwms) that build too, in the same hyperfine run, so a
#     change is measured as a ratio between builds under the same load
#
# Needs: hyperfine (apt-get install hyperfine), /usr/bin/time, taskset, python3, and
# target/tools/venv/bin/cargo-lambda (./scripts/install-tools). Results go to stdout and to
# target/bench/transform/ (override with BENCH_OUT); copy them into benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${BENCH_OUT:-target/bench/transform}
runs=${RUNS:-15}
max_event_bytes=${MAX_EVENT_BYTES:-5900000}
tools=${TEST_TOOLS_DIR:-target/tools}
# `cwms transform`, like the Lambda, refuses any CWMS_ variable it does not know, and applies the
# ones it knows (filters): measure the default configuration whatever the caller's shell holds.
unset $(compgen -e | grep '^CWMS_' || true)
mkdir -p "$out"

for tool in hyperfine taskset python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install -y hyperfine time util-linux)" >&2; exit 1; }
done

cargo build --profile dist --quiet -p cwms-cli -p cwms-transform
cwms=target/dist/cwms
bootstrap=target/dist/cwms-transform
# The interpreter itself, not a wrapper such as a pyenv shim (a shell script that would add
# tens of milliseconds to every Python run).
python=$(python3 -c 'import sys; print(sys.executable)')

# The event: one full-size Firehose event from cwms's own generator (deterministic: fixed start
# and seed), about what Lambda accepts at most (6 MB).
event=$out/event.json
generate=(generate --format firehose-event --one-event --max-event-bytes "$max_event_bytes"
          --start 2026-01-15T10:00:00Z --series 1000 --minutes 30 --seed 1)
rm -f "$event"
"$cwms" "${generate[@]}" --out "$event"
event_source="cwms ${generate[*]}"
# A one-record event, to show each process's fixed cost (start-up, imports, exit).
tiny=$out/tiny-event.json
rm -f "$tiny"
"$cwms" generate --format firehose-event --one-event --start 2026-01-15T10:00:00Z --series 1 --minutes 1 \
    --seed 1 --out "$tiny" 2>/dev/null

# Both must actually transform the event: same record count, and cwms fails nothing.
"$cwms" transform --event "$event" --stats > "$out/cwms-response.json" 2> "$out/cwms-stats.txt"
"$python" benches/transform/peer_transform.py "$event" > "$out/python-response.json"
python3 - "$out/cwms-response.json" "$out/python-response.json" "$out/differ.txt" <<'PY'
import json, sys
cwms, python = (json.load(open(p))["records"] for p in sys.argv[1:3])
results = lambda records: {r: sum(1 for x in records if x["result"] == r) for r in ("Ok", "Dropped", "ProcessingFailed")}
assert len(cwms) == len(python), (len(cwms), len(python))
assert results(cwms)["Ok"] == len(cwms) and results(python)["Ok"] == len(python), (results(cwms), results(python))
print(f"both transformed all {len(cwms)} records Ok", file=sys.stderr)
# Same datums? cwms removes exact duplicates inside a record and normalizes field order; compare
# parsed lines, with Python's duplicates removed the same way.
import base64
def datums(record):
    return [json.loads(line) for line in base64.b64decode(record["data"]).decode().splitlines() if line]
differ = 0
for c, p in zip(cwms, python):
    seen, unique = set(), []
    for d in datums(p):
        key = json.dumps(d, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(d)
    differ += datums(c) != unique
print(f"records whose datums differ between cwms and Python: {differ}", file=sys.stderr)
open(sys.argv[3], "w").write(f"{differ}\n")
PY

# Speed, one core each.
before=()
if [[ -n "${BEFORE:-}" ]]; then
    before=(-n cwms-before "taskset -c 0 $BEFORE transform --event $event")
fi
hyperfine --warmup 3 --runs "$runs" -N \
    --export-json "$out/hyperfine.json" --export-markdown "$out/hyperfine.md" \
    -n cwms "taskset -c 0 $cwms transform --event $event" \
    "${before[@]}" \
    -n python "taskset -c 0 $python benches/transform/peer_transform.py $event" \
    -n cwms-tiny "taskset -c 0 $cwms transform --event $tiny" \
    -n python-tiny "taskset -c 0 $python benches/transform/peer_transform.py $tiny" >&2

# Peak RSS, one run each.
peak_kb() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {print $2}'; }
cwms_kb=$(peak_kb taskset -c 0 "$cwms" transform --event "$event")
python_kb=$(peak_kb taskset -c 0 "$python" benches/transform/peer_transform.py "$event")

# Cold start under the emulator (see cold_start.py for the method).
python3 benches/transform/cold_start.py --bootstrap "$bootstrap" --runs 20 \
    --cargo-lambda "$tools/venv/bin/cargo-lambda" --json "$out/cold-start.json" > "$out/cold-start.txt"

bootstrap_bytes=$(stat -c %s "$bootstrap")

arm64="not tried (set BENCH_ARM64=1)"
if [[ "${BENCH_ARM64:-0}" == 1 ]]; then
    # cargo-lambda cross-compiles with zig (from the ziglang wheel in the venv); it runs
    # `rustup target add aarch64-unknown-linux-gnu` itself when the target is missing.
    if PATH="$tools/venv/bin:$PATH" cargo-lambda lambda build --profile dist -p cwms-transform --arm64 \
        > "$out/arm64-build.log" 2>&1; then
        arm64="built: target/lambda/cwms-transform/bootstrap, $(stat -c %s target/lambda/cwms-transform/bootstrap) bytes"
    else
        arm64="failed: $(grep -m1 -iE 'error' "$out/arm64-build.log" || tail -1 "$out/arm64-build.log")"
    fi
fi

export event_source arm64 runs out
python3 - "$out/hyperfine.json" "$event" "$cwms_kb" "$python_kb" "$bootstrap_bytes" <<'PY' | tee "$out/results.md"
import json, os, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
event = sys.argv[2]
event_bytes = os.path.getsize(event)
records = len(json.load(open(event))["records"])
cwms_kb, python_kb, bootstrap_bytes = map(int, sys.argv[3:6])
out, runs, event_source, arm64 = (os.environ[k] for k in ("out", "runs", "event_source", "arm64"))
stats = open(f"{out}/cwms-stats.txt").readline().strip()
c, p = results["cwms"], results["python"]
ratio = p["mean"] / c["mean"]
budget = 4 * event_bytes + 16 * 2**20
differ = open(f"{out}/differ.txt").read().strip()
print(f"- event: {event_source}: {event_bytes:,} bytes, {records} records; cwms --stats: {stats}")
print(f"- same datums out as Python (after removing the duplicates cwms removes): {'yes' if differ == '0' else 'NO, ' + differ + ' records differ'}")
print(f"- speed, one core (hyperfine, {runs} runs): cwms {c['mean']*1000:.1f} ms ± {c['stddev']*1000:.1f}, "
      f"Python {p['mean']*1000:.1f} ms ± {p['stddev']*1000:.1f}: cwms is {ratio:.1f}x faster (target >= 20x: {'met' if ratio >= 20 else 'MISSED'})")
# CPU time (user + system) is less disturbed by other processes on the same core than wall time.
cpu = lambda r: r["user"] + r["system"]
print(f"- CPU time (user + system, mean): cwms {cpu(c)*1000:.1f} ms, Python {cpu(p)*1000:.1f} ms: ratio {cpu(p)/cpu(c):.1f}")
if "cwms-before" in results:
    b = results["cwms-before"]
    print(f"- BEFORE build, same run: {b['mean']*1000:.1f} ms ± {b['stddev']*1000:.1f} wall, {cpu(b)*1000:.1f} ms CPU: "
          f"Python faster than it {p['mean']/b['mean']:.1f}x wall, {cpu(p)/cpu(b):.1f}x CPU; this build is {cpu(b)/cpu(c):.2f}x faster by CPU")
print(f"- load average at the end: {open('/proc/loadavg').read().split()[0:3]}")
ct, pt = results["cwms-tiny"], results["python-tiny"]
print(f"- fixed cost (one-record event): cwms {ct['mean']*1000:.1f} ms wall / {cpu(ct)*1000:.1f} ms CPU, "
      f"Python {pt['mean']*1000:.1f} ms wall / {cpu(pt)*1000:.1f} ms CPU")
print(f"- peak RSS: cwms {cwms_kb/1024:.1f} MiB, Python {python_kb/1024:.1f} MiB; budget 4 x event + 16 MiB = {budget/2**20:.1f} MiB "
      f"({'met' if cwms_kb*1024 <= budget else 'MISSED'})")
print(f"- bootstrap size (stripped, release): {bootstrap_bytes:,} bytes = {bootstrap_bytes/2**20:.2f} MiB (target < 8 MB: {'met' if bootstrap_bytes < 8_000_000 else 'MISSED'})")
print(f"- arm64 (cargo lambda build --profile dist --arm64): {arm64}")
print("- cold start (benches/transform/cold_start.py, 20 runs):")
for line in open(f"{out}/cold-start.txt"):
    print("    " + line.rstrip())
PY
