#!/usr/bin/env python3
"""Writes crates/emulator/src/model/botocore.rs: the constraints of the AWS service models that the
emulator validates requests against, taken from an installed botocore's `bedrock` (2023-04-20) and
`bedrock-runtime` (2023-09-30) `service-2.json`.

Only what validation needs is kept: for every shape reachable from the input of the operations the
emulator serves (and their streaming twins), its type, length / range limits, pattern, enum values,
required and union members, sensitivity and where each member travels (path, header, query, body),
plus each operation's modelled errors and their HTTP statuses. Documentation is left out.

Run it with a Python that has the pinned botocore (`.ci/test` makes one in .cache/botocore):

    .cache/botocore/bin/python crates/emulator/tools/gen_model.py && cargo fmt -p bedrock-batch-emulator
"""

import os
import sys

import botocore
from botocore.loaders import Loader

# The operations whose input the emulator checks, per service and model version.
SERVICES = [
    (
        "bedrock",
        "2023-04-20",
        "BEDROCK",
        ["CreateModelInvocationJob", "GetModelInvocationJob", "ListModelInvocationJobs", "StopModelInvocationJob"],
    ),
    (
        "bedrock-runtime",
        "2023-09-30",
        "BEDROCK_RUNTIME",
        ["InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream"],
    ),
]

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "model", "botocore.rs")


def rust_str(s):
    """A Rust string literal that holds `s`: a raw one when it has quotes or backslashes (patterns)."""
    if '"' not in s and "\\" not in s:
        return '"' + s + '"'
    hashes = "#"
    while ('"' + hashes) in s:
        hashes += "#"
    return "r" + hashes + '"' + s + '"' + hashes


def opt(v, kind):
    if v is None:
        return "None"
    if kind == "f64":
        return "Some(%s)" % repr(float(v))
    return "Some(%d)" % int(v)


def closure(shapes, roots):
    """Shape names reachable from `roots`, in a stable order (sorted)."""
    seen = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        s = shapes[name]
        for m in s.get("members", {}).values():
            stack.append(m["shape"])
        for k in ("member", "key", "value"):
            if k in s:
                stack.append(s[k]["shape"])
    return sorted(seen)


def location(member):
    loc = member.get("location")
    if loc is None:
        return "Location::Body"
    name = rust_str(member["locationName"])
    return {"uri": "Location::Uri(%s)", "header": "Location::Header(%s)", "querystring": "Location::Query(%s)"}[loc] % name


def kind(shape, index):
    t = shape["type"]
    if t == "structure":
        if shape.get("document"):
            return "Kind::Document"
        required = set(shape.get("required", []))
        members = []
        for name, m in shape.get("members", {}).items():
            members.append(
                "Member { name: %s, target: %d, required: %s, location: %s }"
                % (rust_str(name), index[m["shape"]], "true" if name in required else "false", location(m))
            )
        payload = shape.get("payload")
        return "Kind::Structure { members: &[%s], union: %s, payload: %s }" % (
            ", ".join(members),
            "true" if shape.get("union") else "false",
            "Some(%s)" % rust_str(payload) if payload else "None",
        )
    if t == "list":
        return "Kind::List { member: %d, min: %s, max: %s }" % (index[shape["member"]["shape"]], opt(shape.get("min"), "u"), opt(shape.get("max"), "u"))
    if t == "map":
        return "Kind::Map { key: %d, value: %d, min: %s, max: %s }" % (
            index[shape["key"]["shape"]],
            index[shape["value"]["shape"]],
            opt(shape.get("min"), "u"),
            opt(shape.get("max"), "u"),
        )
    if t == "string":
        return "Kind::String { min: %s, max: %s, pattern: %s, values: &[%s] }" % (
            opt(shape.get("min"), "u"),
            opt(shape.get("max"), "u"),
            "Some(%s)" % rust_str(shape["pattern"]) if "pattern" in shape else "None",
            ", ".join(rust_str(v) for v in shape.get("enum", [])),
        )
    if t in ("integer", "long"):
        return "Kind::Integer { bits: %d, min: %s, max: %s }" % (32 if t == "integer" else 64, opt(shape.get("min"), "i"), opt(shape.get("max"), "i"))
    if t in ("float", "double"):
        return "Kind::Float { min: %s, max: %s }" % (opt(shape.get("min"), "f64"), opt(shape.get("max"), "f64"))
    if t == "boolean":
        return "Kind::Boolean"
    if t == "blob":
        return "Kind::Blob { min: %s, max: %s }" % (opt(shape.get("min"), "u"), opt(shape.get("max"), "u"))
    if t == "timestamp":
        return "Kind::Timestamp"
    raise SystemExit("unsupported shape type %r" % t)


def service(loader, name, version, const, operations):
    model = loader.load_service_model(name, "service-2", version)
    shapes = model["shapes"]
    ops = [model["operations"][o] for o in operations]
    names = closure(shapes, [o["input"]["shape"] for o in ops])
    index = {n: i for i, n in enumerate(names)}
    lines = []
    lines.append("/// `%s` %s: %d shapes, %d operations." % (name, version, len(names), len(ops)))
    lines.append("pub static %s: Service = Service {" % const)
    lines.append("    name: %s," % rust_str(name))
    lines.append("    shapes: &[")
    for n in names:
        s = shapes[n]
        lines.append(
            "        Shape { name: %s, sensitive: %s, kind: %s },"
            % (rust_str(n), "true" if s.get("sensitive") else "false", kind(s, index))
        )
    lines.append("    ],")
    lines.append("    operations: &[")
    for o in ops:
        errors = []
        for e in o.get("errors", []):
            status = shapes[e["shape"]].get("error", {}).get("httpStatusCode", 400)
            errors.append("(%s, %d)" % (rust_str(e["shape"]), status))
        lines.append(
            "        Operation { name: %s, method: %s, uri: %s, input: %d, errors: &[%s] },"
            % (rust_str(o["name"]), rust_str(o["http"]["method"]), rust_str(o["http"]["requestUri"]), index[o["input"]["shape"]], ", ".join(errors))
        )
    lines.append("    ],")
    lines.append("};")
    return "\n".join(lines)


def main():
    loader = Loader()
    parts = [
        "// @generated by crates/emulator/tools/gen_model.py from botocore %s (PyPI), whose service models" % botocore.__version__,
        "// are Apache-2.0: `bedrock` 2023-04-20 and `bedrock-runtime` 2023-09-30. Do not edit; run the script.",
        "//! The constraints of the AWS service models that the emulator enforces (see `gen_model.py`).",
        "",
        "use super::shape::{Kind, Location, Member, Operation, Service, Shape};",
        "",
        "/// The botocore release these tables come from.",
        'pub const BOTOCORE_VERSION: &str = "%s";' % botocore.__version__,
        "",
    ]
    for name, version, const, operations in SERVICES:
        parts.append(service(loader, name, version, const, operations))
        parts.append("")
    with open(OUT, "w") as f:
        f.write("\n".join(parts))
    print("wrote %s from botocore %s" % (os.path.normpath(OUT), botocore.__version__), file=sys.stderr)


if __name__ == "__main__":
    main()
