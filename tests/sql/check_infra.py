#!/usr/bin/env python3
"""Checks every CloudFormation/SAM template under infra/.

    python tests/sql/check_infra.py [--bin-dir target/debug]

Needs cfn-lint and aws-sam-translator importable, the SAM CLI and checkov in their own venvs under
target/tools/ (scripts/install-tools), and the debug binaries (`cargo build --bins`).

For each template:
  lint:<file>        cfn-lint on the template as written (SAM resources validated by cfn-lint's SAM
                     schemas), at three fixed PYTHONHASHSEEDs: cfn-lint's condition solver stops after
                     128 scenarios and the order it tries them in follows Python's set order, so a single
                     run can miss (or invent) a finding. Any error or warning fails; informational
                     findings are printed only.
  sam-lint:<file>    `sam validate --lint`, the SAM CLI's own validation (its own cfn-lint pin).
  checkov:<file>     checkov's CloudFormation checks: none may fail; each skip in the template must say why.
  sam:<file>         the AWS SAM translator turns it into plain CloudFormation (what `sam deploy` sends),
                     and cfn-lint (one seed) must pass on that too.
  contract:<file>    the properties the rest of cwms relies on, read from the translated template:
                     least-privilege IAM (no wildcard actions, no Resource "*"), the bucket's guards and
                     lifecycle, the Firehose prefixes and processor, the Lambda build and environment
                     contract, the Glue columns equal to infra/sql/athena/ddl (names, types, order,
                     partition keys), projection settings, the alarms, the outputs.
  first-deploy:<file> what makes a first deploy fail: no fixed reserved concurrency, names derived
                     from the stack (two stacks, and the DDL's own database, never collide), the bucket
                     RetainExceptOnCreate, the metric stream's trust policy as AWS documents it, and a
                     compactor ListBucket grant that makes a missing object a 404.
  split-lists:<file> every list parameter that Fn::Split or CommaDelimitedList cuts refuses a space
                     beside a separator or at either end, an empty entry (pattern or Rules), and one
                     entry more than its slots.
  settings:<file>    every parameter that reaches a CWMS_ variable: each allowed and refused example of
                     its pattern against the code's own settings parser, by starting the built binaries
                     (`cwms transform --event`, the `cwms-compactor` bootstrap) with the environment the
                     template would give them.
  alarms:<file>      alarm metric names are the ones the code emits (emf_document in both crates);
                     "nothing arrives" alarms treat missing data as breaching; the freshness alarm is
                     derived from the buffering intervals; a fresh or paused stack stays quiet; the
                     compactor's schedule and function have a dead-letter queue that is alarmed.
  iam-vs-sdk:<file>  the compactor role's actions equal the AWS SDK calls the compactor's code makes
                     (read from crates/cwms-store and crates/cwms-compactor), plus what Lambda itself
                     needs (logs, the dead-letter queue, KMS).
  binaries:<file>    the Binary of each rust-cargolambda function is a binary target of the workspace
                     (`cargo metadata`), built by `cargo build --bins`.
And once:
  samconfig          `sam build` will not prompt for the rust-cargolambda beta feature.
  cost-notes         infra/README.md's cost table counts the custom metrics the code emits and the
                     alarms the template creates.
Ends with the line "N passed, N failed"; exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import ast
import copy
import itertools
import json
import operator
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lake_contract as contract  # noqa: E402

REPO = contract.REPO
INFRA = REPO / "infra"
SEEDS = ("0", "1", "2")
# Variables a function may get conditionally, on top of the contract's (all known to the crates' settings).
OPTIONAL_ENV = {"CompactorFunction": {"CWMS_CODEC", "CWMS_MAX_POINTS"}, "TransformFunction": {"CWMS_MAX_RESPONSE_BYTES"}}
TOOLS = Path(os.environ.get("TEST_TOOLS_DIR") or REPO / "target" / "tools")
BIN_DIR = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "debug"
LINT = "import sys; from cfnlint.runner import main; sys.argv[0] = 'cfn-lint'; sys.exit(main())"


class CheckFailed(Exception):
    pass


def templates() -> list[Path]:
    found = []
    for path in sorted(INFRA.rglob("*")):
        if path.suffix in (".yaml", ".yml", ".json", ".template") and path.is_file():
            head = path.read_text(errors="replace")[:4000]
            if re.search(r"^\s*\"?(AWSTemplateFormatVersion|Resources)\"?\s*:", head, re.MULTILINE):
                found.append(path)
    return found


def cfn_lint(path: Path, seeds=SEEDS) -> tuple[list[str], list[str]]:
    """(errors and warnings, informational findings) over the seeds, deduplicated."""
    bad, info = [], []
    for seed in seeds:
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run(
            [sys.executable, "-c", LINT, "--format", "parseable", "--include-checks", "I", "--", str(path)],
            capture_output=True, text=True, env=env,
        )
        if proc.returncode not in (0, 2, 4, 6, 8, 10, 12, 14):  # cfn-lint's exit codes are bit flags
            raise CheckFailed(f"cfn-lint crashed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
        for line in proc.stdout.splitlines():
            # parseable: file:line:col:endline:endcol:RULE:message
            m = re.match(r"^.*?:(\d+):\d+:\d+:\d+:([EWI]\d+):(.*)$", line)
            if not m:
                continue
            finding = f"{m.group(2)} line {m.group(1)}: {m.group(3)} (seed {seed})"
            (info if m.group(2).startswith("I") else bad).append(finding)
    dedup = lambda xs: sorted(set(re.sub(r" \(seed \d+\)$", "", x) for x in xs))  # noqa: E731
    return dedup(bad), dedup(info)


def sam_translate(path: Path) -> dict:
    """Plain CloudFormation from the SAM template, as `sam deploy` would send it (local CodeUri replaced
    by a placeholder S3 location, as `sam package` would upload it)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from cfnlint.decode import decode
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    template, matches = decode(str(path))
    if matches:
        raise CheckFailed("; ".join(str(m) for m in matches))
    template = copy.deepcopy(template)
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            if not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = "s3://placeholder-bucket/placeholder.zip"

    class NoManagedPolicies:
        def load(self):
            return {}

    try:
        return transform(template, {}, NoManagedPolicies())
    except InvalidDocumentException as e:
        raise CheckFailed("; ".join(c.message for c in e.causes)) from None


# ---------------------------------------------------------------------------------------------------
# contract:<file>
# ---------------------------------------------------------------------------------------------------


def branches(value):
    """All concrete alternatives of a value that may be an Fn::If (recursively), NoValue dropped."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, yes, no = value["Fn::If"]
        return branches(yes) + branches(no)
    if value == {"Ref": "AWS::NoValue"}:
        return []
    return [value]


def statements(document) -> list[dict]:
    out = []
    for st in branches(document.get("Statement", [])):
        for s in st if isinstance(st, list) else [st]:
            out.extend(branches(s))
    return out


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def alarm_metrics(alarm: dict) -> list[tuple]:
    """(namespace, metric name, dimensions) of every metric an alarm reads, plain or metric math."""
    p = alarm["Properties"]
    if "MetricName" in p:
        return [(p.get("Namespace"), p["MetricName"], p.get("Dimensions", []))]
    out = []
    for m in p.get("Metrics", []):
        metric = m.get("MetricStat", {}).get("Metric")
        if metric:
            out.append((metric.get("Namespace"), metric.get("MetricName"), metric.get("Dimensions", [])))
    return out


def iam_documents(resources: dict):
    """(where, policy document) for every IAM policy document in the template."""
    for rid, r in resources.items():
        t, p = r.get("Type"), r.get("Properties", {})
        if t == "AWS::IAM::Role":
            for pol in p.get("Policies", []):
                yield f"{rid}/{pol.get('PolicyName')}", pol["PolicyDocument"]
            if p.get("ManagedPolicyArns"):
                yield f"{rid}/ManagedPolicyArns", {"Statement": [{"Effect": "Allow", "Action": "managed:" + str(a),
                                                                  "Resource": "n/a"} for a in p["ManagedPolicyArns"]]}
        elif t in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            yield rid, p["PolicyDocument"]


def check_contract(cfn: dict) -> str:
    res = cfn["Resources"]
    problems: list[str] = []

    def need(ok: bool, what: str):
        if not ok:
            problems.append(what)

    def of_type(t):
        return {k: v for k, v in res.items() if v.get("Type") == t}

    # --- IAM: least privilege ---------------------------------------------------------------------
    for where, doc in iam_documents(res):
        for st in statements(doc):
            if st.get("Effect") != "Allow":
                continue
            for action in as_list(st.get("Action", [])):
                need(isinstance(action, str) and not action.startswith("managed:"),
                     f"{where}: managed policy attached ({action}); write the actions out")
                need(isinstance(action, str) and "*" not in action, f"{where}: wildcard action {action!r}")
            for resource in as_list(st.get("Resource", [])):
                need(resource != "*", f"{where}: Resource '*' for {st.get('Action')}")
            need("NotAction" not in st and "NotResource" not in st, f"{where}: NotAction/NotResource")

    # --- Bucket -------------------------------------------------------------------------------------
    buckets = of_type("AWS::S3::Bucket")
    need(len(buckets) == 1, f"expected one bucket, found {list(buckets)}")
    for bid, b in buckets.items():
        p = b["Properties"]
        pab = p.get("PublicAccessBlockConfiguration", {})
        need(all(pab.get(k) is True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                                "RestrictPublicBuckets")), f"{bid}: public access not fully blocked")
        need(bool(p.get("BucketEncryption")), f"{bid}: no default encryption")
        rules = p.get("LifecycleConfiguration", {}).get("Rules", [])
        prefixes = {r.get("Prefix"): r for r in rules}
        for prefix in ("raw/", "errors/"):
            need(prefix in prefixes and "ExpirationInDays" in prefixes[prefix], f"{bid}: no expiry rule for {prefix}")
            need(isinstance(prefixes.get(prefix, {}).get("ExpirationInDays"), dict),
                 f"{bid}: expiry of {prefix} is not a parameter")
        need(any("AbortIncompleteMultipartUpload" in r for r in rules), f"{bid}: no AbortIncompleteMultipartUpload")
        # RetainExceptOnCreate: retained like Retain, except that a failed first create deletes the
        # bucket, so the retry does not fail with "already exists" (a fixed BucketName).
        need(b.get("DeletionPolicy") == "RetainExceptOnCreate",
             f"{bid}: DeletionPolicy {b.get('DeletionPolicy')!r}, want RetainExceptOnCreate (retained, except after a failed first create)")
    tls = False
    for pid, pol in of_type("AWS::S3::BucketPolicy").items():
        for st in statements(pol["Properties"]["PolicyDocument"]):
            cond = st.get("Condition", {}).get("Bool", {})
            if st.get("Effect") == "Deny" and str(cond.get("aws:SecureTransport")).lower() == "false":
                tls = True
    need(tls, "no bucket policy denying requests without TLS")

    # --- Metric stream ------------------------------------------------------------------------------
    streams = of_type("AWS::CloudWatch::MetricStream")
    need(bool(streams), "no AWS::CloudWatch::MetricStream")
    for sid, s in streams.items():
        # Every format the decoders read (cwms_model::otel::OutputFormat), chosen by the parameter.
        need(s["Properties"].get("OutputFormat") == {"Ref": "StreamOutputFormat"}, f"{sid}: OutputFormat is not the StreamOutputFormat parameter")
        need(cfn["Parameters"]["StreamOutputFormat"].get("AllowedValues") == ["json", "opentelemetry1.0", "opentelemetry0.7"],
             "StreamOutputFormat must allow exactly the three formats cwms reads")
        need("Condition" in s or len(streams) == 1, f"{sid}: several streams without conditions")

    # --- Firehose -----------------------------------------------------------------------------------
    firehoses = of_type("AWS::KinesisFirehose::DeliveryStream")
    need(len(firehoses) == 1, f"expected one delivery stream, found {list(firehoses)}")
    for fid, f in firehoses.items():
        p = f["Properties"]
        need(p.get("DeliveryStreamType") == "DirectPut", f"{fid}: not Direct PUT")
        s3 = p.get("ExtendedS3DestinationConfiguration", {})
        need(s3.get("Prefix") == "raw/dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/", f"{fid}: raw prefix {s3.get('Prefix')!r}")
        need(s3.get("ErrorOutputPrefix") == "errors/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/",
             f"{fid}: error prefix {s3.get('ErrorOutputPrefix')!r}")
        need(s3.get("CompressionFormat") == "GZIP", f"{fid}: not GZIP")
        need(s3.get("CloudWatchLoggingOptions", {}).get("Enabled") is True, f"{fid}: delivery errors not logged")
        for key in ("SizeInMBs", "IntervalInSeconds"):
            need(isinstance(s3.get("BufferingHints", {}).get(key), dict), f"{fid}: buffering {key} is not a parameter")
        processors = s3.get("ProcessingConfiguration", {}).get("Processors", [])
        lambda_arns = [prm["ParameterValue"] for pr in processors if pr.get("Type") == "Lambda"
                       for prm in pr.get("Parameters", []) if prm["ParameterName"] == "LambdaArn"]
        need(lambda_arns == [{"Fn::GetAtt": ["TransformFunction", "Arn"]}], f"{fid}: processor is {lambda_arns}")
        names = {prm["ParameterName"] for pr in processors for prm in pr.get("Parameters", [])}
        need({"BufferSizeInMBs", "BufferIntervalInSeconds"} <= names, f"{fid}: processor buffering not set")

    # --- Lambdas ------------------------------------------------------------------------------------
    env_contract = {
        "TransformFunction": ("cwms-transform", {"CWMS_INCLUDE_NAMESPACES", "CWMS_EXCLUDE_NAMESPACES",
                                                 "CWMS_INCLUDE_METRICS", "CWMS_EXCLUDE_METRICS",
                                                 "CWMS_MAX_DECOMPRESSED_BYTES"}),
        "CompactorFunction": ("cwms-compactor", {"CWMS_RAW", "CWMS_LAKE", "CWMS_GLUE_DATABASE", "CWMS_GLUE_TABLE_PREFIX",
                                                 "CWMS_MAX_DECOMPRESSED_BYTES"}),
    }
    for fn, (binary, env) in env_contract.items():
        f = res.get(fn)
        if not f:
            problems.append(f"no {fn}")
            continue
        p = f["Properties"]
        need(p.get("Runtime") == "provided.al2023", f"{fn}: runtime {p.get('Runtime')}")
        need(p.get("Architectures") == ["arm64"], f"{fn}: architectures {p.get('Architectures')}")
        need(p.get("Handler") == "bootstrap", f"{fn}: handler {p.get('Handler')}")
        meta = f.get("Metadata", {})
        need(meta.get("BuildMethod") == "rust-cargolambda", f"{fn}: BuildMethod {meta.get('BuildMethod')}")
        need(meta.get("BuildProperties", {}).get("Binary") == binary, f"{fn}: Binary {meta.get('BuildProperties')}")
        variables = p.get("Environment", {}).get("Variables", {})
        always = {k for k, v in variables.items() if branches(v)
                  and not (isinstance(v, dict) and "Fn::If" in v and len(branches(v)) < 2)}
        need(always == env, f"{fn}: environment {sorted(always)} != {sorted(env)}")
        need(set(variables) - env <= OPTIONAL_ENV.get(fn, set()), f"{fn}: unexpected variables {sorted(set(variables) - env)}")
        need("Role" in p and "Fn::GetAtt" in p["Role"], f"{fn}: no explicit least-privilege role")
    schedules = of_type("AWS::Scheduler::Schedule")
    need(any(s["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": ["CompactorFunction", "Arn"]} for s in schedules.values()),
         "no EventBridge Scheduler schedule targets the compactor")

    # --- Glue tables against the Athena DDL ----------------------------------------------------------
    ddl = contract.athena_tables()
    glue = {}
    for tid, t in of_type("AWS::Glue::Table").items():
        name = t["Properties"]["TableInput"]["Name"]
        name = name.get("Fn::Sub", name) if isinstance(name, dict) else name
        glue[re.sub(r"^\$\{GlueTablePrefix\}", "", name)] = (tid, t["Properties"]["TableInput"])
    need(set(glue) == set(ddl), f"Glue tables {sorted(glue)} != Athena DDL tables {sorted(ddl)}")
    for name in set(glue) & set(ddl):
        tid, ti = glue[name]
        cols = [(c["Name"], c["Type"].replace(" ", "").lower()) for c in ti["StorageDescriptor"]["Columns"]]
        want = [(c.name, c.type) for c in ddl[name].columns]
        need(cols == want, f"{tid}: columns {cols}\n      != {ddl[name].source.name} {want}")
        keys = [(c["Name"], c["Type"].lower()) for c in ti.get("PartitionKeys", [])]
        need(keys == [(c.name, c.type) for c in ddl[name].partition_keys], f"{tid}: partition keys {keys}")
        params_alternatives = branches(ti.get("Parameters", {}))
        projected = [p for p in params_alternatives if p.get("projection.enabled") == "true"]
        need(bool(projected), f"{tid}: no partition projection alternative")
        for p in projected:
            need(p.get("projection.dt.type") == "date" and p.get("projection.dt.format") == "yyyy-MM-dd",
                 f"{tid}: dt is not projected as a yyyy-MM-dd date")
            template = p.get("storage.location.template", {})
            template = template.get("Fn::Sub", template) if isinstance(template, dict) else template
            if name == "raw":
                need(template.endswith("/raw/dt=${!dt}/hour=${!hour}/"), f"{tid}: location template {template}")
            else:
                need(p.get("projection.dt.range") == "2020-01-01,NOW", f"{tid}: dt range {p.get('projection.dt.range')}")
                need(p.get("projection.namespace.type") == "injected", f"{tid}: namespace is not injected")
                need(template.endswith(f"/lake/{name}/dt=${{!dt}}/namespace=${{!namespace}}/"), f"{tid}: location template {template}")
        if name != "raw":
            need(any(p.get("projection.enabled") != "true" for p in params_alternatives),
                 f"{tid}: no registered-partitions alternative")
    need(bool(of_type("AWS::Athena::WorkGroup")), "no Athena workgroup")
    for wid, w in of_type("AWS::Athena::WorkGroup").items():
        need("OutputLocation" in w["Properties"]["WorkGroupConfiguration"].get("ResultConfiguration", {}),
             f"{wid}: no results location")

    # --- Alarms -------------------------------------------------------------------------------------
    alarmed = {metric[:2] for a in of_type("AWS::CloudWatch::Alarm").values() for metric in alarm_metrics(a)}
    for metric in [("cwms", "RecordsFailed"), ("cwms", "CompactionErrors"), ("cwms", "ObjectsFailedOutstanding"),
                   ("cwms", "LagSeconds"), ("AWS/Firehose", "DeliveryToS3.DataFreshness")]:
        need(metric in alarmed, f"no alarm on {metric[0]} {metric[1]}")
    for a in of_type("AWS::CloudWatch::Alarm").values():
        for namespace, name, dimensions in alarm_metrics(a):
            if namespace == "cwms":
                dims = [d["Name"] for d in dimensions]
                need(dims == ["FunctionName"], f"alarm on cwms {name} has dimensions {dims}")

    # --- Outputs ------------------------------------------------------------------------------------
    outputs = set(cfn.get("Outputs", {}))
    for o in ("BucketName", "MetricStreamName", "DeliveryStreamName", "GlueDatabaseName", "AthenaWorkGroupName"):
        need(o in outputs, f"no output {o}")

    if problems:
        raise CheckFailed("\n".join(problems))
    return f"{len(res)} resources hold the contract"


# ---------------------------------------------------------------------------------------------------
# A small evaluator of the intrinsic functions the template uses, for one assignment of parameters:
# what CloudFormation would resolve, with placeholders for physical ids it cannot know.
# ---------------------------------------------------------------------------------------------------

NOVALUE = object()
PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
          "AWS::URLSuffix": "amazonaws.com"}


class Resolver:
    def __init__(self, cfn: dict, params: dict | None = None, stack: str = "cwms"):
        self.cfn, self.params, self.stack = cfn, dict(params or {}), stack
        self.conditions: dict[str, bool] = {}

    def param(self, name: str):
        definition = self.cfn["Parameters"][name]
        value = str(self.params.get(name, definition.get("Default", "")))
        return value.split(",") if definition.get("Type") == "CommaDelimitedList" else value

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.cfn["Conditions"][name]))
        return self.conditions[name]

    def physical(self, rid: str) -> str:
        r = self.cfn["Resources"][rid]
        if r["Type"] == "AWS::Glue::Database":
            return self.value(r["Properties"]["DatabaseInput"]["Name"])
        if r["Type"] == "AWS::Glue::Table":
            return self.value(r["Properties"]["TableInput"]["Name"])
        return f"{self.stack}-{rid.lower()}"

    def ref(self, name: str):
        if name == "AWS::NoValue":
            return NOVALUE
        if name == "AWS::StackName":
            return self.stack
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.cfn.get("Parameters", {}):
            return self.param(name)
        if name in self.cfn.get("Resources", {}):
            return self.physical(name)
        raise CheckFailed(f"cannot resolve Ref {name}")

    def sub(self, text: str, variables: dict) -> str:
        def one(m):
            if m.group(1):
                return "${" + m.group(2) + "}"
            name = m.group(2)
            if name in variables:
                return str(self.value(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                return f"arn:aws:placeholder:::{name}"
            return str(self.ref(name))
        return re.sub(r"\$\{(!?)([^}]*)\}", one, text)

    def value(self, x):
        if isinstance(x, list):
            return [v for v in (self.value(i) for i in x) if v is not NOVALUE]
        if not isinstance(x, dict):
            return x
        if len(x) == 1:
            (fn, arg), = x.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self.sub(text, variables)
            if fn == "Fn::Join":
                return arg[0].join(str(v) for v in self.value(arg[1]))
            if fn == "Fn::Split":
                return str(self.value(arg[1])).split(arg[0])
            if fn == "Fn::Select":
                items = self.value(arg[1])
                index = int(self.value(arg[0]))
                if index >= len(items):
                    raise CheckFailed(f"Fn::Select index {index} beyond {items}")
                return items[index]
            if fn == "Fn::GetAtt":
                target = arg if isinstance(arg, str) else ".".join(arg)
                return f"arn:aws:placeholder:::{target}"
            if fn == "Fn::Equals":
                a, b = (self.value(v) for v in arg)
                return str(a) == str(b)
            if fn == "Fn::Not":
                return not self.value(arg[0])
            if fn == "Fn::And":
                return all(self.value(v) for v in arg)
            if fn == "Fn::Or":
                return any(self.value(v) for v in arg)
        return {k: v for k, v in ((k, self.value(v)) for k, v in x.items()) if v is not NOVALUE}


def refs_in(x) -> set[str]:
    """Every name that a Ref (or a ${...} of a Sub) in x names."""
    out: set[str] = set()
    if isinstance(x, dict):
        for k, v in x.items():
            if k == "Ref" and isinstance(v, str):
                out.add(v)
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                out |= {n for n in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                out |= refs_in(v if isinstance(v, str) else v[1])
            else:
                out |= refs_in(v)
    elif isinstance(x, list):
        for v in x:
            out |= refs_in(v)
    return out


def parameter_accepts(definition: dict, value: str) -> bool:
    """Whether CloudFormation's parameter validation accepts the text (AllowedPattern as a Java regex
    over the whole value, or over each entry of a CommaDelimitedList)."""
    allowed = definition.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        return False
    kind = definition.get("Type", "String")
    if kind == "Number":
        try:
            number = float(value)
        except ValueError:
            return False
        return (number >= float(definition.get("MinValue", "-inf"))) and (number <= float(definition.get("MaxValue", "inf")))
    entries = value.split(",") if kind == "CommaDelimitedList" else [value]
    pattern = definition.get("AllowedPattern")
    for entry in entries:
        if pattern is not None and not re.fullmatch(pattern, entry):
            return False
        if not int(definition.get("MinLength", 0)) <= len(entry) <= int(definition.get("MaxLength", 1 << 30)):
            return False
    return True


# ---------------------------------------------------------------------------------------------------
# first-deploy:<file> (issue 18, items 1, 2, 3, 5, 7)
# ---------------------------------------------------------------------------------------------------

# AWS's documented trust policy for a metric stream's role, statement for statement.
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-metric-streams-trustpolicy.html
METRIC_STREAM_TRUST = [{"Effect": "Allow", "Principal": {"Service": "streams.metrics.cloudwatch.amazonaws.com"},
                        "Action": "sts:AssumeRole"}]


def ddl_database() -> str:
    text = (INFRA / "sql" / "athena" / "ddl" / "00_database.sql").read_text()
    m = re.search(r"CREATE\s+DATABASE\s+(?:IF\s+NOT\s+EXISTS\s+)?`?(\w+)", text, re.IGNORECASE)
    if not m:
        raise CheckFailed("00_database.sql creates no database")
    return m.group(1).lower()


def samconfig_stack() -> str:
    data = tomllib.loads((INFRA / "samconfig.toml").read_text())
    return data.get("default", {}).get("global", {}).get("parameters", {}).get("stack_name", "cwms")


def check_first_deploy(cfn: dict) -> str:
    res, problems = cfn["Resources"], []
    # 1. Reserved concurrency: nothing by default (Lambda keeps 100 unreserved), settable.
    for rid, r in res.items():
        if r["Type"] != "AWS::Lambda::Function":
            continue
        rce = Resolver(cfn).value(r["Properties"]).get("ReservedConcurrentExecutions")
        if rce is not None:
            problems.append(f"{rid}: reserves {rce} concurrent executions by default; Lambda refuses that in accounts "
                            "whose unreserved concurrency would drop below 100")
    compactor = res["CompactorFunction"]["Properties"]
    reserved = Resolver(cfn, {"CompactorReservedConcurrency": "1"}).value(compactor).get("ReservedConcurrentExecutions")
    if str(reserved) != "1":
        problems.append(f"CompactorReservedConcurrency=1 gives ReservedConcurrentExecutions {reserved!r}")
    # 2. Names unique per account: derived from the stack (or from a parameter the user sets).
    stack = samconfig_stack()
    named = {"AWS::Glue::Database": ("DatabaseInput", "Name"), "AWS::Athena::WorkGroup": ("Name",),
             "AWS::Logs::LogGroup": ("LogGroupName",), "AWS::S3::Bucket": ("BucketName",),
             "AWS::SQS::Queue": ("QueueName",), "AWS::SNS::Topic": ("TopicName",),
             "AWS::KinesisFirehose::DeliveryStream": ("DeliveryStreamName",), "AWS::CloudWatch::MetricStream": ("Name",),
             "AWS::Lambda::Function": ("FunctionName",), "AWS::IAM::Role": ("RoleName",),
             "AWS::Scheduler::Schedule": ("Name",), "AWS::CloudWatch::Alarm": ("AlarmName",)}
    for rid, r in res.items():
        path = named.get(r["Type"])
        if not path:
            continue
        def name_for(stack_name, r=r, path=path):
            resolver = Resolver(cfn, stack=stack_name)
            if "Condition" in r and not resolver.condition(r["Condition"]):
                return None
            value = resolver.value(r.get("Properties", {}))
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            return value
        dev, prod = name_for("cwms-dev"), name_for("cwms-prod")
        if dev is not None and dev == prod:
            problems.append(f"{rid}: fixed name {dev!r}: a second stack in the account would collide")
    database = Resolver(cfn, stack=stack).value({"Fn::If": ["CreateGlueDatabase", {"Ref": "GlueDatabase"}, {"Ref": "GlueDatabaseName"}]})
    if database == ddl_database():
        problems.append(f"stack {stack!r} creates Glue database {database!r}, the one 00_database.sql creates")
    for stack_name in (stack, "cwms-prod"):
        db = Resolver(cfn, stack=stack_name).value({"Ref": "GlueDatabase"})
        if not re.fullmatch(r"[a-z0-9_]+", db):
            problems.append(f"stack {stack_name!r}: derived database name {db!r} needs quoting in Athena")
    existing = Resolver(cfn, {"GlueDatabaseName": "shared_lake"})
    if existing.condition(res["GlueDatabase"].get("Condition", "CreateGlueDatabase")):
        problems.append("GlueDatabaseName=shared_lake still creates a database: an existing one cannot be used")
    for rid in ("Metrics1mTable", "Metrics1hTable", "RawTable"):
        if existing.value(res[rid]["Properties"]["DatabaseName"]) != "shared_lake":
            problems.append(f"{rid}: not created in the existing database named by GlueDatabaseName")
    # 3. The bucket: retained, except when the first create rolls back.
    for rid, r in res.items():
        if r["Type"] == "AWS::S3::Bucket" and r.get("DeletionPolicy") != "RetainExceptOnCreate":
            problems.append(f"{rid}: DeletionPolicy {r.get('DeletionPolicy')!r}: a failed first create would keep the "
                            "bucket and every retry fail with 'already exists'")
    # 5. The metric stream's role trusts the service exactly as documented.
    for rid, r in res.items():
        if r["Type"] != "AWS::IAM::Role":
            continue
        trust = r["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        services = {s.get("Principal", {}).get("Service") for s in trust}
        if "streams.metrics.cloudwatch.amazonaws.com" in services and trust != METRIC_STREAM_TRUST:
            problems.append(f"{rid}: trust policy {trust} is not AWS's documented one {METRIC_STREAM_TRUST}")
    # 7. A GET of a missing object must be a 404 (first run: no checkpoint; new partitions).
    unconditioned_list = False
    for pol in res["CompactorRole"]["Properties"]["Policies"]:
        for st in statements(pol["PolicyDocument"]):
            if (st.get("Effect") == "Allow" and "s3:ListBucket" in as_list(st.get("Action"))
                    and st.get("Resource") == {"Fn::GetAtt": ["Bucket", "Arn"]} and "Condition" not in st):
                unconditioned_list = True
    if not unconditioned_list:
        problems.append("CompactorRole: no unconditioned s3:ListBucket on the bucket, so a GET of the not-yet-written "
                        "checkpoint (or of a new partition's object) may answer 403 instead of 404")
    if problems:
        raise CheckFailed("\n".join(problems))
    return "no reserved concurrency by default, names derived from the stack, bucket RetainExceptOnCreate, documented trust, 404 for missing objects"


# ---------------------------------------------------------------------------------------------------
# split-lists:<file> (item 4)
# ---------------------------------------------------------------------------------------------------

# A valid value of each list parameter, with every separator in it.
LIST_EXAMPLES = {
    "StreamIncludeNamespaces": "AWS/EC2,AWS/Lambda,My App",
    "StreamExcludeNamespaces": "AWS/Usage,AWS/Logs",
    "StreamAdditionalStatistics": "p50,p99,TM(10%:90%)",
    "StreamStatisticsMetrics": "AWS/ApplicationELB|TargetResponseTime,AWS/Lambda|Duration",
}


def split_uses(x, found: dict, selected: dict):
    """Parameter -> separators of the Fn::Split calls over it; parameter -> highest Fn::Select index."""
    if isinstance(x, dict):
        if "Fn::Split" in x:
            sep, arg = x["Fn::Split"]
            for name in refs_in(arg):
                found.setdefault(name, set()).add(sep)
        if "Fn::Select" in x:
            index, arg = x["Fn::Select"]
            if isinstance(index, int) and isinstance(arg, dict) and "Fn::Split" in arg:
                for name in refs_in(arg):
                    selected[name] = max(selected.get(name, -1), index)
        for v in x.values():
            split_uses(v, found, selected)
    elif isinstance(x, list):
        for v in x:
            split_uses(v, found, selected)


def rules_accept(cfn: dict, assignment: dict) -> bool:
    """Whether every assertion of the template's Rules holds for these parameters."""
    resolver = Resolver(cfn, assignment)

    def ev(x):
        if isinstance(x, dict) and len(x) == 1:
            (fn, arg), = x.items()
            if fn == "Fn::EachMemberEquals":
                return all(str(v) == str(ev(arg[1])) for v in as_list(ev(arg[0])))
            if fn == "Fn::EachMemberIn":
                return all(str(v) in [str(w) for w in as_list(ev(arg[1]))] for v in as_list(ev(arg[0])))
            if fn == "Fn::Contains":
                return str(ev(arg[1])) in [str(v) for v in as_list(ev(arg[0]))]
            if fn == "Fn::Equals":
                return ev(arg[0]) == ev(arg[1])
            if fn == "Fn::Not":
                return not ev(arg[0])
            if fn == "Fn::And":
                return all(ev(v) for v in arg)
            if fn == "Fn::Or":
                return any(ev(v) for v in arg)
        return resolver.value(x)

    for rule in cfn.get("Rules", {}).values():
        if "RuleCondition" in rule and not ev(rule["RuleCondition"]):
            continue
        if not all(ev(a["Assert"]) for a in rule["Assertions"]):
            return False
    return True


def check_split_lists(cfn: dict) -> str:
    params = cfn["Parameters"]
    separators: dict[str, set] = {}
    slots: dict[str, int] = {}
    split_uses({k: v for k, v in cfn.items() if k != "Parameters"}, separators, slots)
    separators = {k: v for k, v in separators.items() if k in params}
    for name, p in params.items():
        if p.get("Type") == "CommaDelimitedList":
            separators.setdefault(name, set()).add(",")
    problems = []
    for name, seps in sorted(separators.items()):
        example = LIST_EXAMPLES.get(name)
        if example is None:
            problems.append(f"{name}: split by {sorted(seps)} but has no example in LIST_EXAMPLES")
            continue
        if not parameter_accepts(params[name], example):
            problems.append(f"{name}: refuses its own valid example {example!r}")
        variants = {" " + example, example + " "}
        for sep in seps:
            for i in [m.start() for m in re.finditer(re.escape(sep), example)]:
                variants |= {example[:i] + " " + example[i:], example[:i + 1] + " " + example[i + 1:]}
        for v in sorted(variants):
            if parameter_accepts(params[name], v):
                problems.append(f"{name}: accepts {v!r}, and Fn::Split would pass the space on")
        if name in slots:
            entries = example.split(",")
            full = ",".join((entries * (slots[name] + 2))[: slots[name] + 1])
            over = ",".join((entries * (slots[name] + 2))[: slots[name] + 2])
            if not parameter_accepts(params[name], full):
                problems.append(f"{name}: refuses {slots[name] + 1} entries, the number of its slots")
            if parameter_accepts(params[name], over):
                problems.append(f"{name}: accepts {slots[name] + 2} entries but has {slots[name] + 1} slots (the rest would be dropped)")
    # A CommaDelimitedList's pattern sees one entry at a time, so an empty entry (a doubled or an end
    # comma) must be refused by a rule.
    base = {k: v for k, v in LIST_EXAMPLES.items() if k != "StreamExcludeNamespaces"}
    if not rules_accept(cfn, base):
        problems.append(f"the Rules refuse the valid examples {base}")
    for name, p in params.items():
        if p.get("Type") == "CommaDelimitedList" and name in LIST_EXAMPLES:
            example = LIST_EXAMPLES[name]
            for v in (example.replace(",", ",,", 1), "," + example, example + ","):
                if parameter_accepts(p, v) and rules_accept(cfn, {**base, name: v}):
                    problems.append(f"{name}: accepts {v!r}, an empty entry that CloudWatch would refuse")
    if problems:
        raise CheckFailed("\n".join(problems))
    return f"{len(separators)} list parameters refuse spaces beside separators, empty entries and entries beyond their slots"


# ---------------------------------------------------------------------------------------------------
# settings:<file> (item 6): the code's own settings parser is the truth
# ---------------------------------------------------------------------------------------------------

# Examples per parameter: "ok" (the template allows it and the code starts), "refused" (both refuse
# it), or "stricter: <why>" (the template refuses a value the code would accept).
GLOBS = [
    ("", "ok"), ("AWS/*", "ok"), ("AWS/EC2,MyApp", "ok"), ("My App", "ok"), ("AWS/**", "ok"), ("CPU?tilization", "ok"),
    ("AWS/EC2,", "refused"), ("a,,b", "refused"), (",a", "refused"), ("a[", "refused"), ("a{b", "refused"),
    ("a}b", "refused"), ("a\\", "refused"), ("{AWS,App}/*", "refused"),
    (" AWS/EC2", "stricter: the code trims entries, the template keeps them exact"),
    ("AWS/EC2, MyApp", "stricter: the code trims entries, the template keeps them exact"),
    ("[AB]*", "stricter: character classes are valid globs, but the template allows * and ? only"),
]
BYTES = [
    ("268435456", "ok"), ("1048576", "ok"), ("1073741824", "ok"),
    ("0", "refused"), ("-1", "refused"), ("10MB", "refused"), ("268435456.0", "refused"), ("2.5e8", "refused"), ("", "refused"),
    ("1000", "stricter: a cap below 1 MB would fail ordinary records"),
    (" 268435456", "stricter: the code trims, the template takes digits only"),
]
SETTING_EXAMPLES = {
    "TransformIncludeNamespaces": GLOBS, "TransformExcludeNamespaces": GLOBS,
    "TransformIncludeMetrics": GLOBS, "TransformExcludeMetrics": GLOBS,
    "TransformMaxDecompressedBytes": BYTES, "CompactorMaxDecompressedBytes": BYTES,
    "CompactorMaxPoints": [
        ("", "ok"), ("100000", "ok"), ("1000000", "ok"), ("10000000", "ok"),
        ("0", "refused"), ("-1", "refused"), ("1e6", "refused"), ("1000000.0", "refused"), ("1,000,000", "refused"),
        ("99999", "stricter: fewer points than a busy minute makes every hour a write in parts"),
        ("10000001", "stricter: past the template's ceiling of 10,000,000 points (about 2.7 GB)"),
    ],
    "LakeCodec": [
        ("", "ok"), ("zstd", "ok"), ("zstd(1)", "ok"), ("zstd(9)", "ok"), ("zstd(22)", "ok"), ("snappy", "ok"), ("uncompressed", "ok"),
        ("zstd(23)", "refused"), ("zstd(99)", "refused"), ("lz4", "refused"), ("gzip", "refused"), ("zstd()", "refused"),
        ("zstd(0)", "refused"), ("zstd(-1)", "refused"),
        ("ZSTD", "stricter: the code ignores case, the template takes the documented spelling"),
        ("none", "stricter: an alias of uncompressed"),
    ],
    "GlueDatabaseName": [
        ("", "ok"), ("cwms", "ok"), ("cwms_prod", "ok"),
        ("Cwms", "stricter: Athena and Glue names are lowercase"), ("cwms-prod", "stricter: Athena needs a hyphen quoted"),
    ],
    "GlueTablePrefix": [
        ("", "ok"), ("prod_", "ok"),
        ("Prod_", "stricter: Athena and Glue names are lowercase"), ("prod-", "stricter: Athena needs a hyphen quoted"),
    ],
}
EMPTY_EVENT = '{"invocationId":"i","deliveryStreamArn":"arn:aws:firehose:us-east-1:123456789012:deliverystream/s","region":"us-east-1","records":[]}'


def run_setting(function: str, env: dict, event: Path) -> tuple[bool, str]:
    """(accepted, what the binary said) for the function's cold start with this environment."""
    base = {"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "placeholder",
            "AWS_SECRET_ACCESS_KEY": "placeholder", "AWS_EC2_METADATA_DISABLED": "true", "AWS_LAMBDA_FUNCTION_NAME": "_",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "1"}
    if function == "TransformFunction":
        cmd = [str(BIN_DIR / "cwms"), "transform", "--event", str(event)]
    else:
        cmd = [str(BIN_DIR / "cwms-compactor")]
    try:
        proc = subprocess.run(cmd, env={**base, **env}, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{cmd[0]} did not stop within 60 s with {env}") from None
    said = (proc.stderr.strip().splitlines() or [""])[-1] if proc.returncode else "started"
    refused = re.search(r"(setting|unknown setting|missing setting) CWMS_", proc.stderr) is not None
    if function == "TransformFunction":
        if proc.returncode == 0:
            return True, said
    elif "AWS_LAMBDA_RUNTIME_API" in proc.stderr:
        # Settings and clients were built; the bootstrap stopped only for want of the Lambda runtime.
        return True, "started (stopped for want of the Lambda Runtime API)"
    if refused:
        return False, re.sub(r"^.*?(?=setting|unknown setting|missing setting)", "", said)
    raise CheckFailed(f"{' '.join(cmd)} exited {proc.returncode} without naming a setting: {proc.stderr.strip()[-500:]}")


# Template defaults that must equal a constant of the code (so "the default" means one thing).
CODE_DEFAULTS = {"TransformMaxDecompressedBytes": ("crates/cwms-transform/src/config.rs", "DEFAULT_MAX_DECOMPRESSED_BYTES"),
                 "CompactorMaxDecompressedBytes": ("crates/cwms-compactor/src/lib.rs", "DEFAULT_MAX_DECOMPRESSED_BYTES")}


def rust_constant(path: str, name: str) -> int:
    """The value of `const NAME: usize = <integer arithmetic>;` in a Rust source file."""
    m = re.search(rf"const {name}\s*:\s*\w+\s*=\s*([^;]+);", (REPO / path).read_text())
    if not m:
        raise CheckFailed(f"{path}: no const {name}")
    expression = m.group(1).replace("_", "")
    if not re.fullmatch(r"[0-9\s*+<()-]+", expression):
        raise CheckFailed(f"{path}: const {name} = {m.group(1)} is not plain integer arithmetic")
    return int(eval(expression, {"__builtins__": {}}))  # digits and operators only, checked above


def check_settings(cfn: dict) -> str:
    defaults = []
    for name, (path, const) in CODE_DEFAULTS.items():
        want = rust_constant(path, const)
        got = cfn["Parameters"][name].get("Default")
        if str(got) != str(want):
            defaults.append(f"{name}: default {got}, but the code's {const} ({path}) is {want}")
    if defaults:
        raise CheckFailed("\n".join(defaults))
    missing = [b for b in ("cwms", "cwms-compactor") if not (BIN_DIR / b).is_file()]
    if missing:
        raise CheckFailed(f"{', '.join(missing)} not built in {BIN_DIR}: run `cargo build --bins` (./scripts/test does)")
    res, params = cfn["Resources"], cfn["Parameters"]
    problems, cases = [], []
    with tempfile.TemporaryDirectory() as tmp:
        event = Path(tmp) / "event.json"
        event.write_text(EMPTY_EVENT)
        for function in ("TransformFunction", "CompactorFunction"):
            variables = res[function]["Properties"].get("Environment", {}).get("Variables", {})
            wired = sorted(n for n in refs_in(variables) if n in params)
            cases.append((function, None, None, "ok"))
            for name in wired:
                if name not in SETTING_EXAMPLES:
                    problems.append(f"{name} reaches {function}'s environment but has no examples in SETTING_EXAMPLES")
                    continue
                default = str(params[name].get("Default", ""))
                if default not in [v for v, _ in SETTING_EXAMPLES[name]]:
                    cases.append((function, name, default, "ok"))
                for value, verdict in SETTING_EXAMPLES[name]:
                    cases.append((function, name, value, verdict))

        def run(case):
            function, name, value, verdict = case
            assignment = {} if name is None else {name: value}
            template_ok = name is None or parameter_accepts(params[name], value)
            variables = res[function]["Properties"].get("Environment", {}).get("Variables", {})
            env = {k: str(v) for k, v in Resolver(cfn, assignment).value(variables).items()}
            code_ok, said = run_setting(function, env, event)
            return case, template_ok, code_ok, said

        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(run, cases))
    broken = {case[0] for case, _, code_ok, _ in results if case[1] is None and not code_ok}
    for (function, name, value, verdict), template_ok, code_ok, said in results:
        if function in broken and name is not None:
            continue  # every example fails the same way; the defaults' line says why
        what = f"{function} with its defaults" if name is None else f"{name}={value!r}"
        want_template, want_code = {"ok": (True, True), "refused": (False, False)}.get(verdict, (False, True))
        if template_ok and not code_ok:
            problems.append(f"{what}: the template allows it, the code refuses it at every cold start ({said})")
        elif (template_ok, code_ok) != (want_template, want_code):
            problems.append(f"{what}: expected {verdict!r}, got template {'allows' if template_ok else 'refuses'}, "
                            f"code {'accepts' if code_ok else 'refuses'} ({said})")
    if problems:
        raise CheckFailed("\n".join(problems))
    return f"{len(results)} cold starts: every value the template allows starts the code, as the examples say"


# ---------------------------------------------------------------------------------------------------
# alarms:<file> (items 8, 9, 10, 13, and the metric names)
# ---------------------------------------------------------------------------------------------------

EMF_SOURCES = {"TransformFunction": (REPO / "crates/cwms-transform/src/emf.rs", "fn emf_document"),
               "CompactorFunction": (REPO / "crates/cwms-compactor/src/report.rs", "fn metrics")}
# Metrics a healthy stack emits continuously: the only ones whose missing data may be breaching.
ARRIVALS = {("AWS/Firehose", "IncomingRecords"), ("AWS/CloudWatch/MetricStreams", "MetricUpdate")}


def emitted_metrics(function: str) -> set[str]:
    """Metric names in the function that lists the crate's EMF metrics: its ("Name", "Unit", value) entries."""
    path, function_name = EMF_SOURCES[function]
    text = path.read_text()
    start = text.index(function_name)
    body = text[start: text.index("\n}\n", start)]
    return set(re.findall(r'\(\s*"([A-Za-z0-9]+)"\s*,\s*"(?:Count|Bytes|Seconds|Milliseconds|Percent|None)"', body))


def freshness_trigger(cfn: dict, alarm: dict, assignment: dict) -> float:
    """The DeliveryToS3.DataFreshness value at which the alarm fires, for these parameters."""
    resolver = Resolver(cfn, assignment)
    p = resolver.value(alarm["Properties"])
    threshold = float(p["Threshold"])
    if "MetricName" in p:
        return threshold
    ids = {m["Id"] for m in p["Metrics"] if m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "DeliveryToS3.DataFreshness"}
    expr = next(m["Expression"] for m in p["Metrics"] if m.get("ReturnData", True) and "Expression" in m)

    def evaluate(f):
        ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}

        def walk(node):
            if isinstance(node, ast.BinOp) and type(node.op) in ops:
                return ops[type(node.op)](walk(node.left), walk(node.right))
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
                return -walk(node.operand)
            if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
                return node.value
            if isinstance(node, ast.Name) and node.id in ids:
                return f
            raise CheckFailed(f"freshness alarm expression {expr!r}: cannot evaluate {ast.dump(node)}")
        return walk(ast.parse(expr, mode="eval").body)

    slope = evaluate(1.0) - evaluate(0.0)
    if slope <= 0:
        raise CheckFailed(f"freshness alarm expression {expr!r} does not grow with freshness")
    return (threshold - evaluate(0.0)) / slope


def check_alarms(cfn: dict) -> str:
    res, params = cfn["Resources"], cfn["Parameters"]
    alarms = {k: v for k, v in res.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    problems = []
    # Metric names: what emf_document emits for the function in the dimension.
    for aid, a in alarms.items():
        for namespace, name, dims in alarm_metrics(a):
            if namespace != "cwms":
                continue
            fn = next((d["Value"].get("Ref") for d in dims if d["Name"] == "FunctionName" and isinstance(d["Value"], dict)), None)
            if fn not in EMF_SOURCES:
                problems.append(f"{aid}: cwms {name} for {fn}, which emits no EMF metrics")
            elif name not in emitted_metrics(fn):
                problems.append(f"{aid}: {fn} never emits {name} (it emits {sorted(emitted_metrics(fn))})")
    # 8. Nothing arriving is an alarm: missing data is breaching on the arrival metrics.
    for metric in sorted(ARRIVALS):
        if not any(metric in {m[:2] for m in alarm_metrics(a)} and a["Properties"].get("TreatMissingData") == "breaching"
                   and a["Properties"].get("ComparisonOperator") == "LessThanThreshold" for a in alarms.values()):
            problems.append(f"no alarm on {metric[0]} {metric[1]} treating missing data as breaching")
    # 9. Freshness: never below what the allowed buffering settings produce normally.
    for aid, a in alarms.items():
        if ("AWS/Firehose", "DeliveryToS3.DataFreshness") not in {m[:2] for m in alarm_metrics(a)}:
            continue
        knobs = sorted(({"ProcessorBufferIntervalSeconds", "DeliveryBufferIntervalSeconds"} | refs_in(a["Properties"])) & set(params))
        corners = [[params[k].get("MinValue", params[k].get("Default")), params[k].get("Default"),
                    params[k].get("MaxValue", params[k].get("Default"))] for k in knobs]
        for combo in itertools.product(*corners):
            assignment = {k: str(v) for k, v in zip(knobs, combo)}
            buffering = float(assignment["ProcessorBufferIntervalSeconds"]) + float(assignment["DeliveryBufferIntervalSeconds"])
            trigger = freshness_trigger(cfn, a, assignment)
            if trigger <= buffering:
                problems.append(f"{aid}: fires at a freshness of {trigger:.0f} s while buffering alone holds records "
                                f"{buffering:.0f} s ({assignment}): it would never clear")
                break
    # 10. A fresh stack (every alarm INSUFFICIENT_DATA -> OK) and a paused one stay quiet.
    for aid, a in alarms.items():
        p = a["Properties"]
        ok = p.get("OKActions")
        breaching = p.get("TreatMissingData") == "breaching"
        if breaching and not {m[:2] for m in alarm_metrics(a)} <= ARRIVALS:
            problems.append(f"{aid}: missing data is breaching on {alarm_metrics(a)[0][:2]}, which a healthy stack "
                            "does not emit before its first run: it fires on every fresh or paused stack")
        if ok is not None and not breaching and not (isinstance(ok, dict) and "Fn::If" in ok and not branches(ok["Fn::If"][2])):
            problems.append(f"{aid}: mails OK unconditionally, so creating the stack sends an OK mail")
        if breaching and ok is None:
            problems.append(f"{aid}: starts in ALARM on a fresh stack but never mails the OK that follows")
        compactor = any(isinstance(d["Value"], dict) and d["Value"].get("Ref") == "CompactorFunction"
                        for m in alarm_metrics(a) for d in m[2])
        quiet_when_missing = p.get("TreatMissingData") in ("notBreaching", "ignore") or (
            p.get("TreatMissingData", "missing") == "missing" and "InsufficientDataActions" not in p)
        if compactor and not quiet_when_missing:
            enabled = p.get("ActionsEnabled")
            paused = Resolver(cfn, {"CompactorScheduleState": "DISABLED"}).value(enabled) if enabled is not None else True
            running = Resolver(cfn, {"CompactorScheduleState": "ENABLED"}).value(enabled) if enabled is not None else True
            if paused is not False or running is not True:
                problems.append(f"{aid}: reports a compactor that is not running, but its actions are not switched off "
                                "while CompactorScheduleState is DISABLED")
        if compactor and breaching:
            problems.append(f"{aid}: breaching on missing compactor data fires on a fresh stack before the first run")
    # 13. A failed run or an undeliverable tick is visible: dead-letter queues, retries, an alarm.
    queues = set()
    for sid, sch in res.items():
        if sch["Type"] != "AWS::Scheduler::Schedule":
            continue
        target = sch["Properties"]["Target"]
        if "RetryPolicy" not in target:
            problems.append(f"{sid}: no RetryPolicy")
        dlq = target.get("DeadLetterConfig", {}).get("Arn")
        if not dlq:
            problems.append(f"{sid}: no dead-letter queue for ticks it cannot deliver")
        else:
            queues.add(json.dumps(dlq))
    fn_dlq = res["CompactorFunction"]["Properties"].get("DeadLetterConfig", {}).get("TargetArn")
    destination = res.get("CompactorFunctionEventInvokeConfig", {}).get("Properties", {}).get("DestinationConfig", {})
    if not fn_dlq and not destination.get("OnFailure"):
        problems.append("CompactorFunction: a failed asynchronous run goes nowhere (no dead-letter queue, no on-failure destination)")
    elif fn_dlq:
        queues.add(json.dumps(fn_dlq))
    for q in queues:
        queue_id = json.loads(q).get("Fn::GetAtt", [None])[0]
        if not any(m[:2] == ("AWS/SQS", "ApproximateNumberOfMessagesVisible") and any(
                isinstance(d["Value"], dict) and d["Value"].get("Fn::GetAtt", [None])[0] == queue_id for d in m[2])
                for a in alarms.values() for m in alarm_metrics(a)):
            problems.append(f"dead-letter queue {queue_id}: no alarm on its visible messages")
    if problems:
        raise CheckFailed("\n".join(problems))
    return f"{len(alarms)} alarms: metric names emitted by the code, arrivals breaching, freshness derived, quiet when fresh or paused, dead letters alarmed"


# ---------------------------------------------------------------------------------------------------
# iam-vs-sdk:<file> (item 12)
# ---------------------------------------------------------------------------------------------------

COMPACTOR_SOURCES = [REPO / "crates/cwms-store/src", REPO / "crates/cwms-compactor/src"]
# The IAM action each AWS SDK operation needs (aws-sdk-rust method name -> action).
SDK_ACTIONS = {
    "list_objects_v2": "s3:ListBucket", "list_objects": "s3:ListBucket", "get_object": "s3:GetObject",
    "head_object": "s3:GetObject", "put_object": "s3:PutObject", "create_multipart_upload": "s3:PutObject",
    "upload_part": "s3:PutObject", "complete_multipart_upload": "s3:PutObject",
    "abort_multipart_upload": "s3:AbortMultipartUpload", "list_parts": "s3:ListMultipartUploadParts",
    "delete_object": "s3:DeleteObject", "delete_objects": "s3:DeleteObject", "copy_object": "s3:PutObject",
    "get_table": "glue:GetTable", "get_database": "glue:GetDatabase", "get_partition": "glue:GetPartition",
    "get_partitions": "glue:GetPartitions", "batch_get_partition": "glue:BatchGetPartition",
    "create_partition": "glue:CreatePartition", "batch_create_partition": "glue:BatchCreatePartition",
    "update_partition": "glue:UpdatePartition", "batch_update_partition": "glue:BatchUpdatePartition",
}
# Methods of an SDK client that send no request.
NOT_OPERATIONS = {"clone", "config"}
# What the role needs that the code does not call: Lambda writes the logs and the dead letters with the
# function's role; S3 uses the KMS key for SSE-KMS objects.
LAMBDA_OWN_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage", "kms:GenerateDataKey", "kms:Decrypt"}


def sdk_operations() -> dict[str, set[str]]:
    """SDK operation -> source files, for every `client.<operation>(` call in the compactor's code."""
    found: dict[str, set[str]] = {}
    for folder in COMPACTOR_SOURCES:
        for path in sorted(folder.rglob("*.rs")):
            for op in re.findall(r"\bclient\s*\.\s*([a-z][a-z0-9_]*)\s*\(", path.read_text()):
                if op not in NOT_OPERATIONS:
                    found.setdefault(op, set()).add(str(path.relative_to(REPO)))
    return found


def check_iam_vs_sdk(cfn: dict) -> str:
    calls = sdk_operations()
    unknown = sorted(op for op in calls if op not in SDK_ACTIONS)
    if unknown:
        raise CheckFailed(f"SDK calls without a known IAM action: {unknown} in {sorted(set().union(*(calls[o] for o in unknown)))}; "
                          "add them to SDK_ACTIONS")
    if not calls:
        raise CheckFailed(f"no SDK calls found under {[str(f.relative_to(REPO)) for f in COMPACTOR_SOURCES]}")
    needed = {SDK_ACTIONS[op] for op in calls}
    granted = set()
    for pol in cfn["Resources"]["CompactorRole"]["Properties"].get("Policies", []):
        for st in statements(pol["PolicyDocument"]):
            if st.get("Effect") == "Allow":
                granted |= set(as_list(st.get("Action", [])))
    problems = []
    if needed - granted:
        problems.append(f"CompactorRole lacks {sorted(needed - granted)}, which the code calls")
    if granted - needed - LAMBDA_OWN_ACTIONS:
        problems.append(f"CompactorRole grants {sorted(granted - needed - LAMBDA_OWN_ACTIONS)}, which the code never calls")
    if problems:
        raise CheckFailed("\n".join(problems))
    return f"{len(calls)} SDK calls -> {sorted(needed)}"


# ---------------------------------------------------------------------------------------------------
# Linters: sam-lint:<file>, checkov:<file>
# ---------------------------------------------------------------------------------------------------


def tool(venv: str, name: str) -> Path:
    path = TOOLS / venv / "bin" / name
    if not path.is_file():
        raise CheckFailed(f"{path} missing: run scripts/install-tools")
    return path


def check_sam_lint(path: Path) -> str:
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    proc = subprocess.run([str(tool("sam-venv", "sam")), "validate", "--lint", "--template", str(path)],
                          capture_output=True, text=True, env=env, cwd=path.parent, timeout=300)
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or "is a valid SAM Template" not in out:
        raise CheckFailed(f"sam validate --lint (exit {proc.returncode}):\n{out[-3000:]}")
    return out.splitlines()[-1]


def check_checkov(path: Path) -> str:
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false", LOG_LEVEL="ERROR")
    proc = subprocess.run([str(tool("checkov-venv", "checkov")), "-f", str(path), "--framework", "cloudformation",
                           "--skip-download", "--output", "json"],
                          capture_output=True, text=True, env=env, timeout=600)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise CheckFailed(f"checkov printed no JSON (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}") from None
    reports = report if isinstance(report, list) else [report]
    failed, skipped = [], []
    for r in reports:
        results = r.get("results", {})
        failed += [f"{c['check_id']} {c['resource']}: {c.get('check_name', '')}" for c in results.get("failed_checks", [])]
        skipped += results.get("skipped_checks", [])
    problems = list(failed)
    problems += [f"{c['check_id']} {c['resource']}: skipped without a reason" for c in skipped
                 if len(str(c.get("check_result", {}).get("suppress_comment", "")).strip()) < 10]
    if problems:
        raise CheckFailed("\n".join(problems))
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    return f"{passed} passed, 0 failed, {len(skipped)} skipped with a reason each"


# ---------------------------------------------------------------------------------------------------
# samconfig, cost-notes (items 16 and 14)
# ---------------------------------------------------------------------------------------------------


def check_samconfig() -> str:
    data = tomllib.loads((INFRA / "samconfig.toml").read_text())
    build = data.get("default", {}).get("build", {}).get("parameters", {})
    if build.get("beta_features") is not True:
        raise CheckFailed("samconfig.toml: [default.build.parameters] lacks beta_features = true, so SAM CLI releases that "
                          "treat rust-cargolambda as a beta feature prompt during `sam build` (and a CI run hangs)")
    return "sam build runs rust-cargolambda without a prompt"


def check_cost_notes(cfn: dict) -> str:
    text = (INFRA / "README.md").read_text()
    transform, compactor = (len(emitted_metrics(f)) for f in ("TransformFunction", "CompactorFunction"))
    problems = []
    m = re.search(r"EMF custom metrics \| (\d+) metrics \((\d+) transform, (\d+) compactor\)", text)
    if not m:
        problems.append("infra/README.md: no 'EMF custom metrics | N metrics (N transform, N compactor)' row")
    elif (int(m.group(1)), int(m.group(2)), int(m.group(3))) != (transform + compactor, transform, compactor):
        problems.append(f"infra/README.md counts {m.group(0)!r}; the code emits {transform + compactor} "
                        f"({transform} transform, {compactor} compactor)")
    alarms = sum(r["Type"] == "AWS::CloudWatch::Alarm" for r in cfn["Resources"].values())
    m = re.search(r"alarms \| (\d+) standard alarms", text)
    if not m or int(m.group(1)) != alarms:
        problems.append(f"infra/README.md's cost table counts {m.group(1) if m else 'no'} alarms; the template has {alarms}")
    if problems:
        raise CheckFailed("\n".join(problems))
    return f"{transform + compactor} custom metrics and {alarms} alarms, as the code and template have them"


def workspace_targets() -> tuple[set[str], dict[str, tuple[str, list[str]]]]:
    """The workspace's packages, and every binary target of theirs as cargo itself reads the
    manifests (auto-discovered `src/main.rs` and `src/bin/*`, explicit `[[bin]]`): name ->
    (package, required features)."""
    cargo = os.environ.get("CARGO", "cargo")
    command = [cargo, "metadata", "--no-deps", "--offline", "--format-version", "1"]
    try:
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CheckFailed(f"cannot run `{' '.join(command)}` to list the workspace's binaries: {e}")
    if proc.returncode != 0:
        raise CheckFailed(f"`{' '.join(command)}` failed: {proc.stderr.strip()}")
    packages = json.loads(proc.stdout)["packages"]
    return {p["name"] for p in packages}, {target["name"]: (p["name"], target.get("required-features", []))
                                           for p in packages for target in p["targets"] if "bin" in target["kind"]}


def check_binaries(cfn_sam: dict) -> str:
    """The Binary of each rust-cargolambda function is a binary target of the workspace, and
    `cargo build --bins` (default features, as `sam build` builds it) built it into BIN_DIR."""
    packages, binaries = workspace_targets()
    problems, found = [], []
    for rid, r in cfn_sam.get("Resources", {}).items():
        binary = r.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        if r.get("Metadata", {}).get("BuildMethod") != "rust-cargolambda" or not binary:
            continue
        if binary not in binaries:
            why = " (the package exists but has no binary target)" if binary in packages else ""
            problems.append(f"{rid}: Binary {binary} is no binary target of the workspace{why}: `sam build` cannot build it")
            continue
        package, features = binaries[binary]
        if not (BIN_DIR / binary).is_file():
            needs = f"; it needs the features {features}, which must be default" if features else ""
            problems.append(f"{rid}: Binary {binary} (package {package}) is not built in {BIN_DIR}: run `cargo build --bins`{needs}")
            continue
        found.append(f"{binary} ({package})")
    if problems:
        raise CheckFailed("\n".join(problems))
    return f"built: {', '.join(found)}" if found else "no rust-cargolambda function"


def main() -> int:
    global BIN_DIR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", type=Path, default=BIN_DIR, help="where `cargo build --bins` put cwms and cwms-compactor")
    BIN_DIR = parser.parse_args().bin_dir.resolve()
    try:
        import cfnlint  # noqa: F401
        import samtranslator  # noqa: F401
    except ImportError as e:
        print(f"FAIL  setup  {e}: install cfn-lint and aws-sam-translator (pip install cfn-lint aws-sam-translator)")
        print("0 passed, 1 failed")
        return 1
    results: list[tuple[str, str, str]] = []

    def timed(fn):
        started = time.monotonic()
        try:
            status, detail = "PASS", fn() or ""
        except CheckFailed as e:
            status, detail = "FAIL", str(e)
        first, *rest = detail.split("\n")
        return status, "\n".join([f"{first} ({time.monotonic() - started:.1f} s)", *rest])

    def record(name, fn):
        results.append((name, *timed(fn)))

    # The two external linters are whole processes of their own: they run beside the checks below.
    background = ThreadPoolExecutor(max_workers=1)
    found = templates()
    if not found:
        results.append(("templates", "FAIL", f"no CloudFormation templates under {INFRA}"))
    for path in found:
        rel = path.relative_to(REPO)

        def lint(path=path):
            bad, info = cfn_lint(path)
            if bad:
                raise CheckFailed("\n".join(bad))
            return f"0 errors, 0 warnings, {len(info)} informational" + ("".join(f"\n{i}" for i in info))

        linters = [(f"sam-lint:{rel}", background.submit(timed, lambda path=path: check_sam_lint(path))),
                   (f"checkov:{rel}", background.submit(timed, lambda path=path: check_checkov(path)))]
        record(f"lint:{rel}", lint)
        translated: dict = {}

        def sam(path=path):
            cfn = sam_translate(path)
            translated["cfn"] = cfn
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                json.dump(cfn, f, indent=1, default=str)
            try:
                bad, _ = cfn_lint(Path(f.name), seeds=SEEDS[:1])
            finally:
                os.unlink(f.name)
            if bad:
                raise CheckFailed("\n".join(bad))
            return f"translated to {len(cfn['Resources'])} CloudFormation resources, cfn-lint clean"

        record(f"sam:{rel}", sam)
        if "cfn" in translated:
            cfn = translated["cfn"]
            record(f"contract:{rel}", lambda: check_contract(cfn))
            record(f"first-deploy:{rel}", lambda: check_first_deploy(cfn))
            record(f"split-lists:{rel}", lambda: check_split_lists(cfn))
            record(f"settings:{rel}", lambda: check_settings(cfn))
            record(f"alarms:{rel}", lambda: check_alarms(cfn))
            record(f"iam-vs-sdk:{rel}", lambda: check_iam_vs_sdk(cfn))
            if path == INFRA / "template.yaml":
                record("cost-notes", lambda: check_cost_notes(cfn))
            from cfnlint.decode import decode

            record(f"binaries:{rel}", lambda path=path: check_binaries(decode(str(path))[0]))
        results.extend((name, *future.result()) for name, future in linters)
    background.shutdown()
    record("samconfig", check_samconfig)

    width = max(len(n) for n, _, _ in results)
    for name, status, detail in results:
        first, *rest = detail.split("\n")
        print(f"{status:4}  {name:<{width}}  {first}")
        for line in rest:
            print(f"      {' ' * width}  {line}")
    passed = sum(s == "PASS" for _, s, _ in results)
    failed = sum(s == "FAIL" for _, s, _ in results)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
