#!/usr/bin/env python3
"""The stack of infra/template.yaml in the ministack emulator, for tests/integration/deployed.rs.

    stack.py deploy   --endpoint URL --bin-dir DIR --work DIR --stack NAME [--parameter K=V ...]
    stack.py invoke-compactor --endpoint URL --stack NAME
    stack.py download --endpoint URL --bucket B --prefix P --out DIR
    stack.py observe  --endpoint URL --stack NAME

Each command prints one JSON document on standard output; the Rust test makes the assertions.
Runs with the test venv (target/tools/venv: boto3, and cfn-lint's template decoder).

`deploy` does what `sam build`, `sam package` and `sam deploy` do, with the debug bootstraps:
it zips each function's binary as `bootstrap` (the rust-cargolambda layout), uploads the zips
and the template to the emulator's S3, and creates the stack from its TemplateURL. The template
is infra/template.yaml as written, except for the edits of emulator_edits() below, each applied
mechanically to the real file and each refused loudly when the template no longer has what it
removes, so the list cannot go stale. The edits are printed with the result.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "template.yaml"
REGION = "us-east-1"
ARTIFACTS = "cwms-deploy-artifacts"
# How long the emulator may take to create the stack (37 resources, most of them instant; about 2 s
# here): well inside the test's nextest time limit, so a stuck stack fails with its status.
CREATE_TIMEOUT_S = 120

# The resource types the template uses and the emulator does not have.
NOT_EMULATED = {"AWS::CloudWatch::MetricStream"}


class EditFailed(Exception):
    pass


def client(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, read_timeout=300),
    )


def load_template() -> dict:
    from cfnlint.decode import decode

    template, matches = decode(str(TEMPLATE))
    if matches:
        raise EditFailed("; ".join(str(m) for m in matches))
    # Plain dicts, lists and strings (cfn-lint's nodes carry line marks).
    return json.loads(json.dumps(template))


def walk(value, fn):
    """Rebuilds `value` bottom-up, with fn applied to every dict and list."""
    if isinstance(value, dict):
        return fn({k: walk(v, fn) for k, v in value.items()})
    if isinstance(value, list):
        return fn([walk(v, fn) for v in value])
    return value


def contains(value, pred) -> bool:
    if pred(value):
        return True
    if isinstance(value, dict):
        return any(contains(v, pred) for v in value.values())
    if isinstance(value, list):
        return any(contains(v, pred) for v in value)
    return False


def package(template: dict, artifacts: dict[str, str]) -> list[dict]:
    """What `sam build` + `sam package` do: each rust-cargolambda function's CodeUri becomes the
    S3 object of its zip. Not an emulator limit; listed so that every difference is visible."""
    done = []
    for rid, r in template["Resources"].items():
        if r.get("Type") != "AWS::Serverless::Function":
            continue
        meta = r.get("Metadata", {})
        if meta.get("BuildMethod") != "rust-cargolambda":
            raise EditFailed(f"{rid}: BuildMethod {meta.get('BuildMethod')!r}, expected rust-cargolambda")
        binary = meta["BuildProperties"]["Binary"]
        if binary not in artifacts:
            raise EditFailed(f"{rid}: no package for binary {binary}")
        before = r["Properties"].get("CodeUri")
        r["Properties"]["CodeUri"] = artifacts[binary]
        done.append({"edit": f"{rid}.CodeUri {before!r} -> {artifacts[binary]}",
                     "why": "sam package: the zip of the bootstrap, uploaded to S3 (the debug x86_64 build)"})
    if not done:
        raise EditFailed("no rust-cargolambda function in the template")
    return done


def edit_architectures(template: dict) -> list[dict]:
    done = []
    for rid, r in template["Resources"].items():
        if r.get("Type") == "AWS::Serverless::Function":
            before = r["Properties"].get("Architectures")
            r["Properties"]["Architectures"] = ["x86_64"]
            done.append({"edit": f"{rid}.Architectures {before} -> ['x86_64']",
                         "why": "the emulator runs a provided.al2023 bootstrap as a process on this x86_64 host "
                                "and ignores Architectures; the stack says what actually runs"})
    return done


def edit_not_emulated_resources(template: dict, stand_in: str) -> list[dict]:
    resources = template["Resources"]
    removed = [rid for rid, r in resources.items() if r.get("Type") in NOT_EMULATED]
    if not removed:
        raise EditFailed(f"no resource of type {sorted(NOT_EMULATED)} left to remove: update emulator_edits()")
    for rid in removed:
        del resources[rid]

    def replace(x):
        if isinstance(x, dict) and set(x) == {"Ref"} and x["Ref"] in removed:
            return stand_in
        if isinstance(x, dict) and set(x) == {"Fn::GetAtt"} and x["Fn::GetAtt"][0] in removed:
            return stand_in
        return x

    for section in ("Resources", "Outputs"):
        template[section] = walk(template[section], replace)
    return [{"edit": f"removed {', '.join(removed)} ({', '.join(sorted(NOT_EMULATED))}); references to them "
                     f"(the metric-stream alarms' dimension, output MetricStreamName) read {stand_in!r}",
             "why": "the emulator has no AWS::CloudWatch::MetricStream; the test puts records into the delivery "
                    "stream itself, as the stream would"}]


def edit_split_conditions(template: dict) -> list[dict]:
    conditions = template.get("Conditions", {})
    split = [name for name, c in conditions.items() if contains(c, lambda x: isinstance(x, dict) and "Fn::Split" in x)]
    if not split:
        raise EditFailed("no condition uses Fn::Split any more: update emulator_edits()")
    rest = {k: v for k, v in template.items() if k != "Conditions"}
    rest["Conditions"] = {k: v for k, v in conditions.items() if k not in split}
    used = [n for n in split if contains(rest, lambda x, n=n: x == n or (isinstance(x, dict) and x.get("Condition") == n))]
    if used:
        raise EditFailed(f"conditions {used} use Fn::Split and are still referenced after the edits before")
    for name in split:
        del conditions[name]
    return [{"edit": f"removed the {len(split)} slot conditions over Fn::Select/Fn::Split/Fn::Join "
                     f"({split[0]} ... {split[-1]}), used only by the metric streams removed above",
             "why": "the emulator's condition evaluator resolves Fn::Select only over a Ref or a literal list; "
                    "over Fn::Split it fails the whole CreateStack with InternalError (KeyError: 0)"}]


def edit_metric_math_alarms(template: dict) -> list[dict]:
    resources = template["Resources"]
    math = [rid for rid, r in resources.items()
            if r.get("Type") == "AWS::CloudWatch::Alarm" and "Metrics" in r.get("Properties", {})]
    if not math:
        raise EditFailed("no metric-math alarm left to remove: update emulator_edits()")
    rest = {k: v for k, v in template.items() if k != "Resources"}
    rest["Resources"] = {k: v for k, v in resources.items() if k not in math}
    if contains(rest, lambda x: isinstance(x, dict) and (x.get("Ref") in math or (x.get("Fn::GetAtt") or [None])[0] in math)):
        raise EditFailed(f"{math} are referenced elsewhere")
    for rid in math:
        del resources[rid]
    return [{"edit": f"removed {', '.join(math)} (a metric-math alarm: Properties.Metrics)",
             "why": "the emulator's AWS::CloudWatch::Alarm refuses Metrics (\"metric math is not supported\")"}]


def emulator_edits(template: dict, artifacts: dict[str, str], stand_in: str) -> tuple[dict, list[dict]]:
    """The template the emulator can deploy, and every edit made to get it."""
    t = copy.deepcopy(template)
    edits = package(t, artifacts)
    edits += edit_architectures(t)
    edits += edit_not_emulated_resources(t, stand_in)
    edits += edit_split_conditions(t)
    edits += edit_metric_math_alarms(t)
    return t, edits


def zip_bootstrap(binary: Path, work: Path) -> bytes:
    """The package SAM's rust-cargolambda build makes: one executable file named bootstrap.

    The debug binary is stripped first when `strip` is there, as the workspace's release profile
    strips what `sam build` builds: the compactor's debug info is 500 MB, which takes half a
    minute to zip and the emulator as long to unpack."""
    if shutil.which("strip"):
        stripped = work / f"{binary.name}.stripped"
        subprocess.run(["strip", "-o", str(stripped), str(binary)], check=True)
        binary = stripped
    data = binary.read_bytes()
    buf = io.BytesIO()
    info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = 0o755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(info, data, compresslevel=1)
    return buf.getvalue()


def deploy(args) -> dict:
    started = time.monotonic()
    s3 = client("s3", args.endpoint)
    cfn = client("cloudformation", args.endpoint)
    s3.create_bucket(Bucket=ARTIFACTS)
    template = load_template()
    artifacts = {}
    for r in template["Resources"].values():
        if r.get("Type") == "AWS::Serverless::Function":
            binary = r["Metadata"]["BuildProperties"]["Binary"]
            path = Path(args.bin_dir) / binary
            if not path.is_file():
                raise EditFailed(f"{path} is not built (cargo build --bins)")
            s3.put_object(Bucket=ARTIFACTS, Key=f"{binary}.zip", Body=zip_bootstrap(path, Path(args.work)))
            artifacts[binary] = f"s3://{ARTIFACTS}/{binary}.zip"
    packaged = time.monotonic()
    edited, edits = emulator_edits(template, artifacts, f"{args.stack}-metric-stream")
    body = json.dumps(edited, indent=1)
    Path(args.work, "template.emulator.json").write_text(body)
    s3.put_object(Bucket=ARTIFACTS, Key="template.json", Body=body.encode())
    parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in (p.split("=", 1) for p in args.parameter)]
    cfn.create_stack(
        StackName=args.stack,
        TemplateURL=f"{args.endpoint}/{ARTIFACTS}/template.json",
        Parameters=parameters,
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.monotonic() + CREATE_TIMEOUT_S
    while True:
        stack = cfn.describe_stacks(StackName=args.stack)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise EditFailed(f"stack still {stack['StackStatus']} after {CREATE_TIMEOUT_S} s")
        time.sleep(0.5)
    events = [f"{e['LogicalResourceId']} {e['ResourceStatus']} {e.get('ResourceStatusReason', '')}".strip()
              for e in cfn.describe_stack_events(StackName=args.stack)["StackEvents"]
              if "FAILED" in e["ResourceStatus"]]
    resources = cfn.describe_stack_resources(StackName=args.stack)["StackResources"]
    return {
        "status": stack["StackStatus"],
        "reason": stack.get("StackStatusReason", ""),
        "failed_events": events,
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        "resources": {r["LogicalResourceId"]: {"type": r["ResourceType"], "physical": r.get("PhysicalResourceId", "")}
                      for r in resources},
        "template_bytes": {"real": TEMPLATE.stat().st_size, "deployed": len(body)},
        "edits": edits,
        "seconds": {"package": round(packaged - started, 1), "create": round(time.monotonic() - packaged, 1)},
    }


def stack_resources(endpoint: str, stack: str) -> dict:
    cfn = client("cloudformation", endpoint)
    return {r["LogicalResourceId"]: r for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]}


def invoke_compactor(args) -> dict:
    """Invokes the compactor with exactly what the stack's schedule sends: its target's Input."""
    resources = stack_resources(args.endpoint, args.stack)
    schedule_name = resources["CompactorSchedule"]["PhysicalResourceId"]
    scheduler = client("scheduler", args.endpoint)
    # The physical id may be the name or "group|name"; the schedule lives in the default group.
    schedule = scheduler.get_schedule(Name=schedule_name.split("|")[-1])
    target = schedule["Target"]
    function = resources["CompactorFunction"]["PhysicalResourceId"]
    lam = client("lambda", args.endpoint)
    function_arn = lam.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    # The schedule's dead-letter queue is the stack's (its physical id is the queue's URL).
    queue_url = resources["CompactorDeadLetterQueue"]["PhysicalResourceId"]
    queue_arn = client("sqs", args.endpoint).get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    started = time.monotonic()
    answer = lam.invoke(FunctionName=function, Payload=target["Input"].encode(), InvocationType="RequestResponse")
    payload = answer["Payload"].read().decode()
    return {
        "schedule": {"name": schedule["Name"], "expression": schedule["ScheduleExpression"], "state": schedule["State"],
                     "target_arn": target["Arn"], "input": target["Input"],
                     "retry_policy": target.get("RetryPolicy"),
                     "dead_letter_arn": (target.get("DeadLetterConfig") or {}).get("Arn")},
        "dead_letter_queue_arn": queue_arn,
        "function": function,
        "function_arn": function_arn,
        "status": answer["StatusCode"],
        "function_error": answer.get("FunctionError"),
        "payload": payload,
        "seconds": round(time.monotonic() - started, 1),
    }


def download(args) -> dict:
    s3 = client("s3", args.endpoint)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix=args.prefix):
        for o in page.get("Contents", []):
            key = o["Key"]
            keys.append(key)
            path = Path(args.out, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(s3.get_object(Bucket=args.bucket, Key=key)["Body"].read())
    return {"keys": sorted(keys)}


def log_messages(endpoint: str, group: str) -> list[str]:
    logs = client("logs", endpoint)
    messages = []
    kwargs = {"logGroupName": group}
    while True:
        page = logs.filter_log_events(**kwargs)
        messages += [e["message"] for e in page.get("events", [])]
        if not page.get("nextToken"):
            return messages
        kwargs["nextToken"] = page["nextToken"]


def observe(args) -> dict:
    """What the stack's parts hold after the run: function configurations, log lines (the EMF
    documents among them), alarms (and the metrics of the metric-math alarms left out of the
    deployed template), the Glue tables' partitions, the delivery stream's destination."""
    resources = stack_resources(args.endpoint, args.stack)
    physical = {rid: r["PhysicalResourceId"] for rid, r in resources.items()}
    lam = client("lambda", args.endpoint)
    functions = {}
    for rid in ("TransformFunction", "CompactorFunction"):
        config = lam.get_function_configuration(FunctionName=physical[rid])
        group = (config.get("LoggingConfig") or {}).get("LogGroup") or f"/aws/lambda/{physical[rid]}"
        functions[rid] = {
            "name": physical[rid],
            "architectures": config.get("Architectures"),
            "runtime": config.get("Runtime"),
            "log_format": (config.get("LoggingConfig") or {}).get("LogFormat"),
            "environment": (config.get("Environment") or {}).get("Variables", {}),
            "log_group": group,
            "log": log_messages(args.endpoint, group),
        }
    cw = client("cloudwatch", args.endpoint)
    alarm_names = [physical[rid] for rid, r in resources.items() if r["ResourceType"] == "AWS::CloudWatch::Alarm"]
    alarms = []
    for i in range(0, len(alarm_names), 100):
        alarms += cw.describe_alarms(AlarmNames=alarm_names[i:i + 100])["MetricAlarms"]
    alarms = [{"logical": next(rid for rid, p in physical.items() if p == a["AlarmName"]),
               "namespace": a.get("Namespace"), "metric": a.get("MetricName"),
               "dimensions": {d["Name"]: d["Value"] for d in a.get("Dimensions", [])},
               "treat_missing_data": a.get("TreatMissingData")} for a in alarms]
    # The metric-math alarms the emulator cannot create (see edit_metric_math_alarms): the metrics
    # they read, from the real template, with each Ref resolved to the deployed resource.
    def resolve(value):
        if isinstance(value, dict) and set(value) == {"Ref"}:
            if value["Ref"] not in physical:
                raise EditFailed(f"a metric-math alarm's dimension refers to {value['Ref']}, not deployed")
            return physical[value["Ref"]]
        if not isinstance(value, str):
            raise EditFailed(f"a metric-math alarm's dimension value {value!r} is neither a Ref nor a literal")
        return value
    math_alarms = []
    for rid, r in load_template()["Resources"].items():
        if r.get("Type") != "AWS::CloudWatch::Alarm" or "Metrics" not in r.get("Properties", {}):
            continue
        for query in r["Properties"]["Metrics"]:
            if "MetricStat" not in query:
                continue
            metric = query["MetricStat"]["Metric"]
            math_alarms.append({"logical": f"{rid}.{query['Id']}", "namespace": metric["Namespace"],
                                "metric": metric["MetricName"],
                                "dimensions": {d["Name"]: resolve(d["Value"]) for d in metric.get("Dimensions", [])}})
    glue = client("glue", args.endpoint)
    outputs = {o["OutputKey"]: o["OutputValue"]
               for o in client("cloudformation", args.endpoint).describe_stacks(StackName=args.stack)["Stacks"][0].get("Outputs", [])}
    database = outputs["GlueDatabaseName"]
    tables = {}
    for table in outputs["GlueTables"].split(","):
        # The physical id of an AWS::Glue::Table may carry the database ("db|table").
        name = table.split("|")[-1]
        partitions = []
        kwargs = {"DatabaseName": database, "TableName": name}
        while True:
            page = glue.get_partitions(**kwargs)
            partitions += [{"values": p["Values"], "location": p["StorageDescriptor"]["Location"]} for p in page["Partitions"]]
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        tables[name] = {"location": glue.get_table(DatabaseName=database, Name=name)["Table"]["StorageDescriptor"]["Location"],
                        "partitions": sorted(partitions, key=lambda p: p["values"])}
    firehose = client("firehose", args.endpoint).describe_delivery_stream(DeliveryStreamName=physical["DeliveryStream"])
    destination = firehose["DeliveryStreamDescription"]["Destinations"][0].get("ExtendedS3DestinationDescription", {})
    return {
        "physical": physical,
        "outputs": outputs,
        "functions": functions,
        "alarms": sorted(alarms, key=lambda a: a["logical"]),
        "alarm_resources": sorted(rid for rid, r in resources.items() if r["ResourceType"] == "AWS::CloudWatch::Alarm"),
        "math_alarm_metrics": math_alarms,
        "glue": {"database": database, "tables": tables},
        "delivery_stream": {
            "name": physical["DeliveryStream"],
            "prefix": destination.get("Prefix"),
            "error_output_prefix": destination.get("ErrorOutputPrefix"),
            "compression": destination.get("CompressionFormat"),
            "processors": destination.get("ProcessingConfiguration", {}),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("deploy")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bin-dir", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--stack", required=True)
    p.add_argument("--parameter", action="append", default=[])
    p = sub.add_parser("invoke-compactor")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--stack", required=True)
    p = sub.add_parser("download")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("observe")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--stack", required=True)
    args = parser.parse_args()
    command = {"deploy": deploy, "invoke-compactor": invoke_compactor, "download": download, "observe": observe}[args.command]
    try:
        result = command(args)
    except EditFailed as e:
        print(f"stack.py {args.command}: {e}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
