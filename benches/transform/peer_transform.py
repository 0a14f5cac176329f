#!/usr/bin/env python3
"""The usual Python Firehose data-transformation Lambda, run as a whole process on an event file.

This is the peer cwms's transform is measured against (DESIGN 8): what the AWS blueprints and most
hand-written Firehose processors do. For each record: base64-decode, split into lines, parse each
line with json.loads, write it back with json.dumps, join with newlines, base64-encode, result Ok
(ProcessingFailed when anything raises). It neither validates the datums, nor removes duplicates,
nor returns partition keys, nor caps the response: it does less work than cwms.

Usage: peer_transform.py EVENT.json > response.json
"""

import base64
import json
import sys


def transform(event):
    output = []
    for record in event["records"]:
        try:
            payload = base64.b64decode(record["data"], validate=True).decode("utf-8")
            lines = [json.dumps(json.loads(line)) for line in payload.split("\n") if line.strip()]
            data = base64.b64encode(("\n".join(lines) + "\n").encode("utf-8")).decode("ascii")
            output.append({"recordId": record["recordId"], "result": "Ok", "data": data})
        except Exception:  # noqa: BLE001 - any failure fails the record, as in the blueprints
            output.append({"recordId": record["recordId"], "result": "ProcessingFailed", "data": record["data"]})
    return {"records": output}


def main():
    with open(sys.argv[1], "rb") as f:
        event = json.load(f)
    json.dump(transform(event), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
