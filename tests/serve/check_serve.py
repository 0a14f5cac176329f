#!/usr/bin/env python3
"""Drives `cwms serve` with boto3 and checks every number against DuckDB over the same lake.

    python tests/serve/check_serve.py ENDPOINT LAKE_DIR

ENDPOINT is the server's http://127.0.0.1:PORT; LAKE_DIR the folder it serves (holding
metrics_1m/ and metrics_1h/). boto3 speaks AWS JSON 1.0 to CloudWatch, the protocol under test.

The reference answers never use the server's code: DuckDB reads the lake's Parquet files
(hive_partitioning unescapes the namespace folders) and computes each period's statistics in SQL
over the minutes (metrics_1m), including for the periods the server answers from metrics_1h.
Floating sums are compared with a relative tolerance of 1e-12 (the engines may add in different
orders); counts, minimums, maximums, timestamps and the sets of metrics exactly.

Checks: ListMetrics (every metric, with filters, paged), GetMetricStatistics (the seed course's
own call, every standard statistic at several periods, p99 at 60 s, a day boundary), GetMetricData
(many queries, paged with MaxDatapoints and NextToken, both ScanBy orders, Label, ReturnData, the
course's Period 1 Average), and bad requests of every kind (the error code, HTTP status and message).
Ends with the line "N passed, N failed"; exit status 1 on any failure.
"""

from __future__ import annotations

import http.client
import json
import math
import sys
import traceback
import urllib.error
import urllib.request
from datetime import datetime, timezone

import boto3
import botocore.config
import duckdb
from botocore.exceptions import ClientError

ENDPOINT, LAKE = sys.argv[1], sys.argv[2]

results = {"passed": 0, "failed": 0}


def check(name, fn):
    try:
        fn()
        results["passed"] += 1
        print(f"PASS {name}")
    except Exception:  # noqa: BLE001 - every failure is reported and counted
        results["failed"] += 1
        print(f"FAIL {name}\n{traceback.format_exc()}")


cw = boto3.client(
    "cloudwatch",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="cwms-test",
    aws_secret_access_key="cwms-test",
    config=botocore.config.Config(retries={"max_attempts": 1}),
)

db = duckdb.connect()
db.execute(
    f"CREATE VIEW m AS SELECT namespace, metric_name, dimension_key, epoch_ms(timestamp) AS ts, unit, "
    f"\"count\", \"sum\", \"min\", \"max\", stats FROM read_parquet('{LAKE}/metrics_1m/**/*.parquet', hive_partitioning = true)"
)
db.execute(
    f"CREATE VIEW h AS SELECT namespace, metric_name, dimension_key FROM read_parquet('{LAKE}/metrics_1h/**/*.parquet', hive_partitioning = true)"
)


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def utc(ms_value: int) -> datetime:
    return datetime.fromtimestamp(ms_value / 1000, tz=timezone.utc)


def dimension_key(dimensions) -> str:
    """cwms's canonical key (README: pairs sorted by name, `\\`, `,` and `=` escaped), written here anew."""
    esc = lambda s: s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")  # noqa: E731
    return ",".join(f"{esc(d['Name'])}={esc(d['Value'])}" for d in sorted(dimensions, key=lambda d: d["Name"]))


def dimensions_of(key: str):
    """The Dimensions parameter of a canonical key (the inverse of dimension_key)."""
    pairs, name, value, in_value, escaped = [], "", "", False, False
    for c in key:
        if escaped:
            (value := value + c) if in_value else (name := name + c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == "=" and not in_value:
            in_value = True
        elif c == ",":
            pairs.append({"Name": name, "Value": value})
            name, value, in_value = "", "", False
        elif in_value:
            value += c
        else:
            name += c
    if key:
        pairs.append({"Name": name, "Value": value})
    return pairs


FIRST, LAST = db.execute("SELECT min(ts), max(ts) FROM m").fetchone()
HOUR = 3_600_000
START = FIRST // HOUR * HOUR  # the first hour of data
END = (LAST // HOUR + 1) * HOUR  # the end of the last hour

SERIES = db.execute(
    "SELECT namespace, metric_name, dimension_key, count(*) AS n FROM m GROUP BY ALL ORDER BY namespace, metric_name, dimension_key"
).fetchall()


def reference(namespace, metric, key, origin, end, period_s, unit=None):
    """Per bucket start (ms): (SampleCount, Sum, Average, Minimum, Maximum), by DuckDB over metrics_1m."""
    pms = period_s * 1000
    rows = db.execute(
        """SELECT ? + (ts - ?) // ? * ? AS bucket, sum("count"), sum("sum"), sum("sum") / sum("count"), min("min"), max("max")
           FROM m WHERE namespace = ? AND metric_name = ? AND dimension_key = ? AND ts >= ? AND ts < ?
             AND (? IS NULL OR unit = ?)
           GROUP BY bucket ORDER BY bucket""",
        [origin, origin, pms, pms, namespace, metric, key, origin, end, unit, unit],
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def close(a, b):
    assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12), f"{a} != {b}"


# --- ListMetrics ----------------------------------------------------------------------------


def listed(**kwargs):
    metrics = []
    for page in cw.get_paginator("list_metrics").paginate(**kwargs):
        metrics.extend(page["Metrics"])
    return metrics


def list_everything():
    got = sorted((m["Namespace"], m["MetricName"], dimension_key(m["Dimensions"])) for m in listed())
    want = sorted(db.execute("SELECT DISTINCT namespace, metric_name, dimension_key FROM h").fetchall())
    assert got == [tuple(w) for w in want], f"{len(got)} listed, {len(want)} in the lake"
    assert len(got) == len(SERIES) and len(got) > 10, len(got)


def list_filtered():
    got = listed(Namespace="AWS/Lambda", MetricName="Errors")
    want = [r for r in SERIES if r[0] == "AWS/Lambda" and r[1] == "Errors"]
    assert sorted(dimension_key(m["Dimensions"]) for m in got) == sorted(r[2] for r in want), got
    # A dimension filter by name only, and by name and value.
    some = next(r for r in SERIES if r[2])
    name = dimensions_of(some[2])[0]["Name"]
    by_name = listed(Dimensions=[{"Name": name}])
    assert by_name and all(any(d["Name"] == name for d in m["Dimensions"]) for m in by_name)
    value = dimensions_of(some[2])[0]["Value"]
    exact = listed(Dimensions=[{"Name": name, "Value": value}])
    assert exact and all({"Name": name, "Value": value} in m["Dimensions"] for m in exact)
    assert listed(Namespace="No/Such") == []
    assert listed(RecentlyActive="PT3H"), "the lake's last three hours hold metrics"


def list_pages():
    first = cw.list_metrics()
    assert len(first["Metrics"]) == min(500, len(SERIES))
    if len(SERIES) > 500:
        assert "NextToken" in first


# --- GetMetricStatistics ----------------------------------------------------------------------

ALL_STATS = ["SampleCount", "Sum", "Average", "Minimum", "Maximum"]


def statistics_match(series, period, start, end):
    namespace, metric, key, _ = series
    answer = cw.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=dimensions_of(key),
        StartTime=utc(start),
        EndTime=utc(end),
        Period=period,
        Statistics=ALL_STATS,
    )
    assert answer["Label"] == metric
    origin = start // 60_000 * 60_000
    want = reference(namespace, metric, key, origin, end, period)
    got = {ms(p["Timestamp"]): p for p in answer["Datapoints"]}
    assert sorted(got) == sorted(want), f"{namespace} {metric} {key} at {period}: {sorted(got)[:3]} vs {sorted(want)[:3]}"
    for bucket, (count, total, average, low, high) in want.items():
        p = got[bucket]
        assert p["SampleCount"] == count and p["Minimum"] == low and p["Maximum"] == high, (p, count, low, high)
        close(p["Sum"], total)
        close(p["Average"], average)
    return len(got)


def statistics_every_series():
    points = 0
    for series in SERIES:
        for period in (60, 300, 3600):
            points += statistics_match(series, period, START, min(END, START + 1440 * 60_000))
    assert points > len(SERIES) * 3, points


def statistics_off_the_hour():
    # An hour period not on the hour (the server reads minutes) and an odd start inside a minute.
    for series in SERIES[:5]:
        assert statistics_match(series, 3600, START + 17 * 60_000 + 2_500, END) > 0
        assert statistics_match(series, 120, FIRST + 30_000, LAST) > 0


def statistics_seed_course_call():
    # The course's call as written, with only the endpoint added.
    key = next(r[2] for r in SERIES if r[0] == "AWS/Lambda" and r[1] == "Errors" and r[2].startswith("FunctionName="))
    function = dimensions_of(key)[0]["Value"]
    answer = cw.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        StartTime=utc(START),
        EndTime=utc(END),
        Period=300,
        Statistics=["Sum"],
    )
    want = reference("AWS/Lambda", "Errors", key, START, END, 300)
    assert len(answer["Datapoints"]) == len(want) > 0
    for p in answer["Datapoints"]:
        close(p["Sum"], want[ms(p["Timestamp"])][1])
        assert set(p) == {"Timestamp", "Sum", "Unit"}, p


def statistics_p99_at_a_minute():
    namespace, metric, key = db.execute(
        "SELECT namespace, metric_name, dimension_key FROM m WHERE stats['p99'] IS NOT NULL ORDER BY ALL LIMIT 1"
    ).fetchone()
    want = dict(
        db.execute(
            "SELECT ts, stats['p99'] FROM m WHERE namespace = ? AND metric_name = ? AND dimension_key = ? AND stats['p99'] IS NOT NULL",
            [namespace, metric, key],
        ).fetchall()
    )
    answer = cw.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=dimensions_of(key),
        StartTime=utc(START),
        EndTime=utc(START + 1440 * 60_000),
        Period=60,
        ExtendedStatistics=["p99"],
    )
    got = {ms(p["Timestamp"]): p["ExtendedStatistics"]["p99"] for p in answer["Datapoints"] if "p99" in p["ExtendedStatistics"]}
    assert got == want and len(got) > 10, (len(got), len(want))


# --- GetMetricData ----------------------------------------------------------------------------


def data_queries(period, stat):
    queries = []
    for i, (namespace, metric, key, _) in enumerate(SERIES[:40]):
        queries.append(
            {
                "Id": f"q{i}",
                "MetricStat": {
                    "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dimensions_of(key)},
                    "Period": period,
                    "Stat": stat,
                },
                "Label": f"label {i}",
            }
        )
    return queries


def merged_pages(**kwargs):
    """Every page of a GetMetricData call, by NextToken: per Id, the (timestamp ms, value) pairs in page order."""
    by_id, pages, token = {}, 0, None
    while True:
        page = cw.get_metric_data(**kwargs, **({"NextToken": token} if token else {}))
        pages += 1
        for r in page["MetricDataResults"]:
            entry = by_id.setdefault(r["Id"], {"label": r["Label"], "points": []})
            entry["points"].extend(zip((ms(t) for t in r["Timestamps"]), r["Values"]))
        token = page.get("NextToken")
        if not token:
            return by_id, pages


def data_paged(stat, column, period, max_datapoints):
    queries = data_queries(period, stat)
    queries[1]["ReturnData"] = False
    by_id, pages = merged_pages(
        MetricDataQueries=queries, StartTime=utc(START), EndTime=utc(END), ScanBy="TimestampAscending", MaxDatapoints=max_datapoints
    )
    assert "q1" not in by_id, "a query with ReturnData false is not returned"
    total = 0
    for i, (namespace, metric, key, _) in enumerate(SERIES[:40]):
        if i == 1:
            continue
        want = reference(namespace, metric, key, START, END, period)
        got = by_id[f"q{i}"]
        assert got["label"] == f"label {i}"
        assert [t for t, _ in got["points"]] == sorted(want), f"q{i}"
        for t, v in got["points"]:
            close(v, want[t][column])
        total += len(got["points"])
    assert pages == -(-total // max_datapoints) or pages == -(-total // max_datapoints) + 1, (pages, total)
    assert pages > 1, "the answer took several pages"


def data_descending_by_default():
    queries = data_queries(300, "Maximum")[:3]
    ascending, _ = merged_pages(MetricDataQueries=queries, StartTime=utc(START), EndTime=utc(END), ScanBy="TimestampAscending")
    descending, _ = merged_pages(MetricDataQueries=queries, StartTime=utc(START), EndTime=utc(END))
    for q in ascending:
        assert descending[q]["points"] == list(reversed(ascending[q]["points"])), q


def data_seed_course_call():
    # The course's get_metric_data with Period 1 and Stat Average: one bucket per datum.
    namespace, metric, key, n = next(r for r in SERIES if r[0] == "AWS/Lambda" and r[1] == "Duration")
    answer = cw.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m1",
                "MetricStat": {
                    "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dimensions_of(key)},
                    "Period": 1,
                    "Stat": "Average",
                },
            }
        ],
        StartTime=utc(START),
        EndTime=utc(END),
    )
    result = answer["MetricDataResults"][0]
    want = reference(namespace, metric, key, START, END, 1)
    assert len(result["Values"]) == len(want) == n and result["StatusCode"] == "Complete"
    for t, v in zip(result["Timestamps"], result["Values"]):
        close(v, want[ms(t)][2])


# --- Bad requests -----------------------------------------------------------------------------


def refused(call, code, status, needle):
    try:
        call()
    except ClientError as e:
        error, meta = e.response["Error"], e.response["ResponseMetadata"]
        assert (error["Code"], meta["HTTPStatusCode"]) == (code, status), (error, meta["HTTPStatusCode"])
        assert needle in error["Message"], f"{needle!r} not in {error['Message']!r}"
        return
    raise AssertionError(f"expected {code}")


def raw(body: bytes, target="GraniteServiceVersion20100801.ListMetrics"):
    request = urllib.request.Request(
        ENDPOINT + "/", data=body, method="POST", headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def stats_call(**overrides):
    namespace, metric, key, _ = SERIES[0]
    kwargs = dict(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=dimensions_of(key),
        StartTime=utc(START),
        EndTime=utc(START + HOUR),
        Period=60,
        Statistics=["Sum"],
    )
    kwargs.update(overrides)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return lambda: cw.get_metric_statistics(**kwargs)


def data_call(queries=None, **overrides):
    kwargs = dict(MetricDataQueries=queries or data_queries(60, "Sum")[:1], StartTime=utc(START), EndTime=utc(END))
    kwargs.update(overrides)
    return lambda: cw.get_metric_data(**kwargs)


def bad_requests():
    refused(lambda: cw.put_metric_data(Namespace="X", MetricData=[{"MetricName": "m", "Value": 1}]), "UnknownOperationException", 400, "read-only")
    refused(stats_call(Period=90), "InvalidParameterValue", 400, "Period 90 is not a valid period")
    refused(stats_call(EndTime=utc(START - 60_000)), "InvalidParameterValue", 400, "must be after StartTime")
    refused(stats_call(EndTime=utc(START + 1441 * 60_000)), "InvalidParameterCombination", 400, "exceeds the limit of 1440")
    refused(stats_call(Statistics=None, ExtendedStatistics=["p99"], Period=300), "InvalidParameterCombination", 400, "cannot be answered exactly")
    refused(stats_call(Statistics=["Median"]), "InvalidParameterValue", 400, "Median")
    refused(data_call(data_queries(60, "Sum")[:1] * 2), "InvalidParameterValue", 400, "Ids must be unique")
    many = [dict(q, Id=f"q{i}") for i, q in enumerate(data_queries(60, "Sum")[:1] * 501)]
    refused(data_call(many), "InvalidParameterValue", 400, "has 501 queries; give 1 to 500")
    refused(data_call(MaxDatapoints=100_801), "InvalidParameterValue", 400, "MaxDatapoints 100801")
    refused(data_call(data_queries(300, "p99")[:1]), "InvalidParameterCombination", 400, "cannot be answered exactly")
    refused(data_call([{"Id": "e1", "Expression": "SUM(METRICS())"}]), "InvalidParameterValue", 400, "not supported")
    refused(data_call(NextToken="not-a-token"), "InvalidNextToken", 400, "not a token cwms serve gave")
    refused(data_call(EndTime=utc(START)), "InvalidParameterValue", 400, "must be after StartTime")
    # What boto3 cannot send: malformed JSON, a wrong type, an unknown target, a body past the limit.
    for body, needle in [(b'{"Namespace":', "not JSON"), (b'{"Namespace": 5}', "at Namespace")]:
        status, error = raw(body)
        assert (status, error["__type"]) == (400, "com.amazonaws.cloudwatch#SerializationException"), error
        assert needle in error["message"], error
    status, error = raw(b"{}", target="Nope.ListMetrics")
    assert (status, error["__type"]) == (400, "com.amazonaws.cloudwatch#UnknownOperationException"), error
    # A body past the limit is refused from its Content-Length, before it is sent (the client
    # waits for 100 Continue, as SDKs do for large bodies).
    host, port = ENDPOINT.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/")
    for name, value in [
        ("X-Amz-Target", "GraniteServiceVersion20100801.ListMetrics"),
        ("Content-Type", "application/x-amz-json-1.0"),
        ("Content-Length", str(4 * 1024 * 1024 + 1)),
        ("Expect", "100-continue"),
    ]:
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    error = json.loads(response.read())
    assert (response.status, error["__type"]) == (413, "com.amazonaws.cloudwatch#RequestEntityTooLargeException"), error
    assert "larger than the 4194304 bytes" in error["message"], error
    connection.close()
    # And the server still answers.
    assert cw.list_metrics(Namespace="AWS/EC2")["Metrics"]


check("list_metrics:everything", list_everything)
check("list_metrics:filters", list_filtered)
check("list_metrics:pages", list_pages)
check("get_metric_statistics:every_series", statistics_every_series)
check("get_metric_statistics:off_the_hour", statistics_off_the_hour)
check("get_metric_statistics:seed_course", statistics_seed_course_call)
check("get_metric_statistics:p99", statistics_p99_at_a_minute)
check("get_metric_data:paged_sum", lambda: data_paged("Sum", 1, 60, 997))
check("get_metric_data:paged_average", lambda: data_paged("Average", 2, 300, 50))
check("get_metric_data:paged_samplecount", lambda: data_paged("SampleCount", 0, 3600, 7))
check("get_metric_data:paged_min_max", lambda: (data_paged("Minimum", 3, 600, 100), data_paged("Maximum", 4, 60, 5000)))
check("get_metric_data:scan_by", data_descending_by_default)
check("get_metric_data:seed_course", data_seed_course_call)
check("bad_requests", bad_requests)

print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
