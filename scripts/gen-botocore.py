#!/usr/bin/env python3
"""Writes the data the project takes from AWS's service models, as shipped in botocore (PyPI; the
models are Apache-2.0), into two compact JSON files that record the botocore release and the model
versions they come from:

- crates/emulator/src/model/botocore.json, which the emulator loads at start to validate requests:
  for each service in SERVICES, its operations (HTTP method, URI, input shape, modelled errors with
  their HTTP statuses) and every shape reachable from their inputs, in botocore's own words (type,
  min / max, pattern, enum, members with where they travel, required, union, payload, document,
  sensitive). Documentation is left out.
- lib/converse-shapes.json, which lib/converse.js and lib/stream.js walk to put a Converse request on
  the wire as the AWS SDK for JavaScript does and to read an answer's blobs back as bytes: the shapes
  reachable from JS_ROOTS, each as ["s", [[member, shape], ...]] a structure (body members only, in
  the SDK's order: required members first, then the others, each group in the model's order),
  ["u", [[member, shape], ...]] a union, ["l", shape] a list, ["m", shape] a map's values, ["b"] a
  blob, ["t"] a timestamp, ["d"] a document; strings, numbers and booleans are not listed.

To add an operation, add it to SERVICES (a new service with its model version; the emulator finds it
by name, `MODELS.service("service-quotas")`) and run this script, with a Python that has the botocore
release `.ci/test` pins (it makes one in .cache/botocore):

    .cache/botocore/bin/python scripts/gen-botocore.py           # rewrite both files
    .cache/botocore/bin/python scripts/gen-botocore.py --check   # exit 1 when they differ (CI)
"""

import argparse
import difflib
import json
import os
import re
import sys

import botocore
from botocore.loaders import Loader

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# The operations the project models, per service and model version: the emulator validates their
# inputs and answers their modelled errors.
SERVICES = [
    (
        "bedrock",
        "2023-04-20",
        ["CreateModelInvocationJob", "GetModelInvocationJob", "ListModelInvocationJobs", "StopModelInvocationJob"],
    ),
    (
        "bedrock-runtime",
        "2023-09-30",
        ["InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream", "CountTokens"],
    ),
    ("service-quotas", "2019-06-24", ["ListServiceQuotas", "GetServiceQuota"]),
]

# The shapes the JS layer walks: the Converse request, its answer and the ConverseStream events.
JS_SERVICE = "bedrock-runtime"
JS_ROOTS = ["ConverseRequest", "ConverseResponse", "ConverseStreamOutput"]

EMULATOR_OUT = "crates/emulator/src/model/botocore.json"
JS_OUT = "lib/converse-shapes.json"


def pinned_version():
    """The botocore release .ci/test installs (`botocore_version=...`)."""
    with open(os.path.join(ROOT, ".ci", "test")) as f:
        m = re.search(r"^botocore_version=(\S+)$", f.read(), re.M)
    if not m:
        sys.exit(".ci/test pins no botocore_version")
    return m.group(1)


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def opening(obj):
    """The JSON object `obj` left open for more members (`{"a":1,`)."""
    return compact(obj)[:-1] + ","


def one_a_line(items):
    """JSON values, one a line (a small change in the models is a small diff)."""
    return ",\n".join(compact(i) for i in items)


def closure(shapes, roots):
    """The names of the shapes reachable from `roots`, sorted."""
    seen = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        s = shapes[name]
        stack.extend(m["shape"] for m in s.get("members", {}).values())
        stack.extend(s[k]["shape"] for k in ("member", "key", "value") if k in s)
    return sorted(seen)


def emulator_shape(name, s):
    """A shape with what validation needs, in botocore's words; member order is the model's."""
    t = s["type"]
    out = {"name": name, "type": t}
    if s.get("sensitive"):
        out["sensitive"] = True
    whole = t not in ("float", "double")
    for bound in ("min", "max"):
        if bound in s:
            out[bound] = int(s[bound]) if whole else s[bound]
    if t == "structure":
        if s.get("document"):
            out["document"] = True
            return out
        members = []
        for m, v in s.get("members", {}).items():
            member = {"name": m, "shape": v["shape"]}
            if "location" in v:
                member["location"] = v["location"]
                member["locationName"] = v["locationName"]
            members.append(member)
        out["members"] = members
        if s.get("required"):
            out["required"] = s["required"]
        if s.get("union"):
            out["union"] = True
        if s.get("payload"):
            out["payload"] = s["payload"]
    elif t == "list":
        out["member"] = s["member"]["shape"]
    elif t == "map":
        out["key"] = s["key"]["shape"]
        out["value"] = s["value"]["shape"]
    elif t == "string":
        if "pattern" in s:
            out["pattern"] = s["pattern"]
        if "enum" in s:
            out["enum"] = s["enum"]
    elif t not in ("integer", "long", "float", "double", "boolean", "blob", "timestamp"):
        sys.exit(f"{name}: unsupported shape type {t!r}")
    return out


def status(error_shape):
    """The HTTP status of a modelled error (400 unless the model says)."""
    return error_shape.get("error", {}).get("httpStatusCode", 400)


def emulator_service(name, version, model, operations):
    shapes = model["shapes"]
    ops = [model["operations"][o] for o in operations]
    out_ops = []
    for o in ops:
        errors = [[e["shape"], status(shapes[e["shape"]])] for e in o.get("errors", [])]
        out_ops.append(
            {
                "name": o["name"],
                "method": o["http"]["method"],
                "uri": o["http"]["requestUri"],
                "input": o["input"]["shape"],
                "errors": errors,
            }
        )
    names = closure(shapes, [o["input"]["shape"] for o in ops])
    return "\n".join(
        [
            opening({"name": name, "version": version}) + '"operations":[',
            one_a_line(out_ops),
            '],"shapes":[',
            one_a_line(emulator_shape(n, shapes[n]) for n in names),
            "]}",
        ]
    )


def js_shapes(shapes, roots):
    out = {}

    def visit(name):
        if name in out:
            return
        s = shapes[name]
        t = s["type"]
        out[name] = None
        if t == "structure":
            members = list(s.get("members", {}).items())
            if s.get("union"):
                out[name] = ["u", [[m, v["shape"]] for m, v in members]]
            elif s.get("document"):
                out[name] = ["d"]
                return
            else:
                required = s.get("required", [])
                ordered = [m for m in members if m[0] in required] + [m for m in members if m[0] not in required]
                # Members bound to the URL or headers are not in the body.
                out[name] = ["s", [[m, v["shape"]] for m, v in ordered if "location" not in v]]
            for _, v in members:
                visit(v["shape"])
        elif t == "list":
            out[name] = ["l", s["member"]["shape"]]
            visit(s["member"]["shape"])
        elif t == "map":
            out[name] = ["m", s["value"]["shape"]]
            visit(s["value"]["shape"])
        elif t == "blob":
            out[name] = ["b"]
        elif t == "timestamp":
            out[name] = ["t"]

    for r in roots:
        visit(r)
    return {k: v for k, v in sorted(out.items()) if v is not None}


def generate():
    """{path relative to the repository: text} for both files."""
    version = botocore.__version__
    source = (
        f"generated by scripts/gen-botocore.py from botocore {version} (PyPI; its service models are Apache-2.0);"
        " do not edit"
    )
    loader = Loader()
    models = {name: loader.load_service_model(name, "service-2", v) for name, v, _ in SERVICES}
    services = [emulator_service(name, v, models[name], ops) for name, v, ops in SERVICES]
    emulator = opening({"source": source, "botocore": version}) + '"services":[\n' + ",\n".join(services) + "]}\n"
    js_version = next(v for name, v, _ in SERVICES if name == JS_SERVICE)
    shapes = js_shapes(models[JS_SERVICE]["shapes"], JS_ROOTS)
    head = opening({"source": source, "botocore": version, "service": JS_SERVICE, "version": js_version})
    js = head + '"shapes":{\n' + ",\n".join(f"{compact(k)}:{compact(v)}" for k, v in shapes.items()) + "\n}}\n"
    for text in (emulator, js):
        json.loads(text)  # both are JSON
    return {EMULATOR_OUT: emulator, JS_OUT: js}


def main():
    parser = argparse.ArgumentParser(description="Writes the data taken from botocore's service models.")
    parser.add_argument("--check", action="store_true", help="compare with the files in the tree; 1 if they differ")
    args = parser.parse_args()
    pinned = pinned_version()
    if botocore.__version__ != pinned:
        sys.exit(f"botocore {botocore.__version__} is not {pinned} (.ci/test pins it): use .cache/botocore/bin/python")
    different = []
    for rel, text in generate().items():
        path = os.path.join(ROOT, rel)
        if args.check:
            try:
                with open(path, encoding="utf-8") as f:
                    old = f.read()
            except FileNotFoundError:
                old = ""
            if old != text:
                different.append(rel)
                diff = difflib.unified_diff(old.splitlines(True), text.splitlines(True), rel, rel + " (generated)")
                sys.stdout.writelines(diff)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {rel} ({len(text.encode())} bytes) from botocore {botocore.__version__}", file=sys.stderr)
    if different:
        sys.exit(f"{', '.join(different)}: not what botocore {pinned} gives; run scripts/gen-botocore.py and commit")
    if args.check:
        print(f"the generated botocore data is current (botocore {pinned})")


if __name__ == "__main__":
    main()
