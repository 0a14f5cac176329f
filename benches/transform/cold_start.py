#!/usr/bin/env python3
"""Measures the transform Lambda's cold start under the real Lambda Runtime API emulator.

What "ready to serve" means here: the bootstrap has read its settings, set up logging, and taken
its first invocation from the Runtime API. The emulator (cargo-lambda) does not timestamp the
bootstrap's first `GET /runtime/invocation/next`, so the time is measured from outside:

1. start the emulator once (`cargo lambda watch --only-lambda-apis`) and queue an invocation of
   a one-datum event (the emulator holds it until a runtime asks);
2. note the time, spawn the bootstrap, and note the time the invocation's response arrives;
3. cold = arrival - spawn. This includes, besides the cold start proper, the handler (reported
   by the bootstrap itself as DurationMs in its EMF line; it is subtracted), the response's trip
   runtime -> emulator -> client, and Python's own fork+exec;
4. for scale, the same one-datum invocation is then timed against the running (warm) bootstrap:
   a full round trip client -> emulator -> runtime -> emulator -> client. A fair estimate of the
   cold start proper is therefore between `cold - warm` (low) and `cold - handler` (high); the
   high figure is the one to compare with the target.

Each run uses a fresh emulator, so no state (such as a dead runtime's pending poll) carries over.

Usage: cold_start.py --bootstrap target/release/cwms-transform [--runs 20] [--cargo-lambda PATH]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time

DATUM = ('{"metric_stream_name":"s","account_id":"1","region":"us-east-1","namespace":"AWS/EC2",'
         '"metric_name":"CPUUtilization","dimensions":{"InstanceId":"i-1"},"timestamp":1710068280000,'
         '"value":{"count":1.0,"sum":1.0,"max":1.0,"min":1.0},"unit":"Percent"}\n')


def tiny_event():
    import base64
    return json.dumps({"invocationId": "i", "deliveryStreamArn": "arn:aws:firehose:us-east-1:1:deliverystream/x",
                       "region": "us-east-1",
                       "records": [{"recordId": "r1", "approximateArrivalTimestamp": 1710068280000,
                                    "data": base64.b64encode(DATUM.encode()).decode()}]}).encode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator(cargo_lambda, workdir):
    package = os.path.join(workdir, "package")
    os.makedirs(os.path.join(package, "src"), exist_ok=True)
    with open(os.path.join(package, "Cargo.toml"), "w") as f:
        f.write('[package]\nname = "cwms-lambda-emulator"\nversion = "0.0.0"\nedition = "2021"\n\n[workspace]\n')
    with open(os.path.join(package, "src", "main.rs"), "w") as f:
        f.write("fn main() {}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
    proc = subprocess.Popen([cargo_lambda, "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", str(port)],
                            cwd=package, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit("the emulator did not start")


def invoke_async(port, payload):
    """POSTs an invocation on a thread; returns (thread, box) where box gets the arrival time.

    The request goes out in one write on a TCP_NODELAY socket: urllib writes headers and body
    separately, and Nagle's algorithm plus the peer's delayed ACK then adds about 40 ms to a
    round trip, which would swamp what is measured here.
    """
    box = {}
    request = (f"POST /2015-03-31/functions/_/invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode() + payload

    def run():
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += s.recv(65536)
            head, _, body = answer.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
            while len(body) < length:
                body += s.recv(65536)
            box["at"] = time.perf_counter()
            box["status"] = head.split(b" ")[1]
            box["body"] = body

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def check(box):
    if box.get("status") != b"200" or b'"result":"Ok"' not in box.get("body", b""):
        raise SystemExit(f"the invocation did not succeed: {box}")


def handler_ms(stdout_path):
    durations = []
    with open(stdout_path) as f:
        for line in f:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if "_aws" in doc:
                durations.append(doc["DurationMs"])
    return durations


def one_run(bootstrap, cargo_lambda, payload):
    with tempfile.TemporaryDirectory(prefix="cwms-cold-start-") as workdir:
        emulator, port = start_emulator(cargo_lambda, workdir)
        try:
            thread, box = invoke_async(port, payload)
            time.sleep(0.2)  # let the emulator queue the invocation before the bootstrap exists
            env = {"AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{port}/.rt", "AWS_LAMBDA_FUNCTION_NAME": "_",
                   "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                   "AWS_LAMBDA_LOG_FORMAT": "JSON"}
            stdout_path = os.path.join(workdir, "stdout")
            with open(stdout_path, "w") as out:
                spawned = time.perf_counter()
                proc = subprocess.Popen([bootstrap], env=env, stdout=out, stderr=subprocess.STDOUT)
                thread.join()
                check(box)
                cold = (box["at"] - spawned) * 1000
                # A warm invocation of the same event against the same bootstrap, for scale.
                started = time.perf_counter()
                thread, box = invoke_async(port, payload)
                thread.join()
                check(box)
                warm = (box["at"] - started) * 1000
                proc.kill()
                proc.wait()
            durations = handler_ms(stdout_path)
            return cold, warm, durations[0]
        finally:
            emulator.kill()
            emulator.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cargo-lambda", default=os.path.join(os.environ.get("TEST_TOOLS_DIR", "target/tools"), "venv/bin/cargo-lambda"))
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    args.cargo_lambda = os.path.abspath(args.cargo_lambda)
    args.bootstrap = os.path.abspath(args.bootstrap)
    payload = tiny_event()
    one_run(args.bootstrap, args.cargo_lambda, payload)  # warm the page cache; not counted
    runs = [one_run(args.bootstrap, args.cargo_lambda, payload) for _ in range(args.runs)]
    cold = [c for c, _, _ in runs]
    warm = [w for _, w, _ in runs]
    handler = [h for _, _, h in runs]
    high = [c - h for c, _, h in runs]
    low = [c - w for c, w, _ in runs]
    fmt = lambda xs: f"median {statistics.median(xs):.2f} ms (min {min(xs):.2f}, max {max(xs):.2f})"
    print(f"runs: {args.runs}")
    print(f"spawn -> first response (cold):       {fmt(cold)}")
    print(f"handler time (EMF DurationMs):        {fmt(handler)}")
    print(f"warm invoke round trip:               {fmt(warm)}")
    print(f"cold start, upper bound (cold-handler): {fmt(high)}")
    print(f"cold start, lower bound (cold-warm):    {fmt(low)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cold_ms": cold, "warm_ms": warm, "handler_ms": handler}, f)


if __name__ == "__main__":
    main()
