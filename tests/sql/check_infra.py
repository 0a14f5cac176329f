#!/usr/bin/env python3
"""Checks every CloudFormation/SAM template under infra/.

    python tests/sql/check_infra.py            # needs cfn-lint and aws-sam-translator importable

For each template:
  lint:<file>        cfn-lint on the template as written (SAM resources validated by cfn-lint's SAM
                     schemas), at three fixed PYTHONHASHSEEDs: cfn-lint's condition solver stops after
                     128 scenarios and the order it tries them in follows Python's set order, so a single
                     run can miss (or invent) a finding. Any error or warning fails; informational
                     findings are printed only.
  sam:<file>         the AWS SAM translator turns it into plain CloudFormation (what `sam deploy` sends),
                     and cfn-lint (one seed) must pass on that too.
  contract:<file>    the properties the rest of cwms relies on, read from the translated template:
                     least-privilege IAM (no wildcard actions, no Resource "*"), the bucket's guards and
                     lifecycle, the Firehose prefixes and processor, the Lambda build and environment
                     contract, the Glue columns equal to infra/sql/athena/ddl (names, types, order,
                     partition keys), projection settings, the alarms, the outputs.
Ends with the line "N passed, N failed"; exit status 1 on any failure.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lake_contract as contract  # noqa: E402

REPO = contract.REPO
INFRA = REPO / "infra"
SEEDS = ("0", "1", "2")
# Variables a function may get conditionally, on top of the contract's (all known to the crates' settings).
OPTIONAL_ENV = {"CompactorFunction": {"CWMS_CODEC", "CWMS_MAX_POINTS"}, "TransformFunction": {"CWMS_MAX_RESPONSE_BYTES"}}
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
        need(b.get("DeletionPolicy") == "Retain", f"{bid}: the lake bucket should be retained on stack deletion")
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
        need(s["Properties"].get("OutputFormat") == "json", f"{sid}: OutputFormat is not json")
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
        "CompactorFunction": ("cwms-compactor", {"CWMS_RAW", "CWMS_LAKE", "CWMS_GLUE_DATABASE", "CWMS_GLUE_TABLE_PREFIX"}),
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
        always = {k for k, v in variables.items() if not (isinstance(v, dict) and "Fn::If" in v)}
        need(always == env, f"{fn}: environment {sorted(always)} != {sorted(env)}")
        need(set(variables) - env <= OPTIONAL_ENV.get(fn, set()), f"{fn}: unexpected variables {sorted(set(variables) - env)}")
        need("Role" in p and "Fn::GetAtt" in p["Role"], f"{fn}: no explicit least-privilege role")
    need(res.get("CompactorFunction", {}).get("Properties", {}).get("ReservedConcurrentExecutions") == 1,
         "compactor reserved concurrency is not 1")
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
    alarmed = {(a["Properties"].get("Namespace"), a["Properties"].get("MetricName"))
               for a in of_type("AWS::CloudWatch::Alarm").values()}
    for metric in [("cwms", "RecordsFailed"), ("cwms", "CompactionErrors"), ("cwms", "ObjectsFailed"),
                   ("cwms", "LagSeconds"), ("AWS/Firehose", "DeliveryToS3.DataFreshness")]:
        need(metric in alarmed, f"no alarm on {metric[0]} {metric[1]}")
    for a in of_type("AWS::CloudWatch::Alarm").values():
        if a["Properties"].get("Namespace") == "cwms":
            dims = [d["Name"] for d in a["Properties"].get("Dimensions", [])]
            need(dims == ["FunctionName"], f"alarm on cwms {a['Properties']['MetricName']} has dimensions {dims}")

    # --- Outputs ------------------------------------------------------------------------------------
    outputs = set(cfn.get("Outputs", {}))
    for o in ("BucketName", "MetricStreamName", "DeliveryStreamName", "GlueDatabaseName", "AthenaWorkGroupName"):
        need(o in outputs, f"no output {o}")

    if problems:
        raise CheckFailed("\n".join(problems))
    return f"{len(res)} resources hold the contract"


def check_binaries(cfn_sam: dict) -> str:
    """The Binary of each rust-cargolambda function is a package in the workspace."""
    packages = {}
    for manifest in REPO.glob("crates/*/Cargo.toml"):
        data = tomllib.loads(manifest.read_text())
        name = data.get("package", {}).get("name")
        bins = {b.get("name") for b in data.get("bin", [])}
        if (manifest.parent / "src" / "main.rs").exists():
            bins.add(name)
        packages[name] = bins
    missing, notes = [], []
    for rid, r in cfn_sam.get("Resources", {}).items():
        binary = r.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        if r.get("Metadata", {}).get("BuildMethod") != "rust-cargolambda" or not binary:
            continue
        owners = [p for p, bins in packages.items() if binary in bins]
        if not owners and binary not in packages:
            missing.append(f"{rid}: no workspace package or binary named {binary}")
        elif not owners:
            notes.append(f"{binary}: package exists, binary target not written yet")
    if missing:
        raise CheckFailed("; ".join(missing))
    return "; ".join(notes) or "every Binary is a workspace binary"


def main() -> int:
    try:
        import cfnlint  # noqa: F401
        import samtranslator  # noqa: F401
    except ImportError as e:
        print(f"FAIL  setup  {e}: install cfn-lint and aws-sam-translator (pip install cfn-lint aws-sam-translator)")
        print("0 passed, 1 failed")
        return 1
    results: list[tuple[str, str, str]] = []

    def record(name, fn):
        try:
            results.append((name, "PASS", fn() or ""))
        except CheckFailed as e:
            results.append((name, "FAIL", str(e)))

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
            record(f"contract:{rel}", lambda: check_contract(translated["cfn"]))
            from cfnlint.decode import decode

            record(f"binaries:{rel}", lambda path=path: check_binaries(decode(str(path))[0]))

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
