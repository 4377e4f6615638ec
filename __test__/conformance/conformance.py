"""Conformance of the emulator to AWS's own service models, read from the installed botocore.

For each operation the emulator serves, this script builds requests from the operation's input
shape in botocore's `bedrock` (2023-04-20) and `bedrock-runtime` (2023-09-30) models:
  - valid requests: the required members only, every member, and one request per member of each
    union reachable from the input;
  - one invalid request per constraint of the model (required, length, pattern, enum, range, list
    and map size, union), each breaking that one constraint of an otherwise valid request;
  - for the runtime operations that run a model, requests carrying fault markers `[[error:NNN]]`
    (and, for the streaming operations, `[[stream-error:NNN]]`); CountTokens runs no model and
    reads markers as text.
botocore serializes and signs them (SigV4, the emulator's credentials, parameter validation off so
that invalid values reach the wire) and sends them to the emulator on 127.0.0.1. Every raw response
is checked against the model: the status of the operation or of the error, the error type among
the operation's modelled errors, required output members, types, enums, patterns and lengths,
timestamps as AWS prints them, and no member the model does not define. The answer of a streaming
operation (ConverseStream, InvokeModelWithResponseStream) is read frame by frame with botocore's own
event-stream decoder (which checks both CRCs of every frame): the content type, each frame's
`:message-type`, `:event-type` or `:exception-type` (a member of the output's event-stream union)
and `:content-type`, and each event's JSON payload against its member's shape.

It prints one line per operation with its counts, then `RESULT <json>`; it exits 1 on any mismatch.
The emulator's endpoints, credentials, region and bucket come as JSON in argv[1].
"""

import base64
import copy
import datetime
import itertools
import json
import os
import re
import sys
import uuid

import botocore
import botocore.eventstream
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

try:
    import re._parser as sre_parse  # Python 3.11+
except ImportError:  # pragma: no cover
    import sre_parse

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
VERBOSE = os.environ.get("CONFORMANCE_VERBOSE") == "1"
FAULT_CODES = [400, 401, 403, 404, 408, 409, 418, 422, 424, 429, 500, 502, 503, 504]
CONTROL = ["CreateModelInvocationJob", "GetModelInvocationJob", "ListModelInvocationJobs", "StopModelInvocationJob"]
RUNTIME = ["InvokeModel", "Converse", "InvokeModelWithResponseStream", "ConverseStream"]
STREAMING = ["InvokeModelWithResponseStream", "ConverseStream"]
COUNT = ["CountTokens"]
EVENT_STREAM_TYPE = "application/vnd.amazon.eventstream"


# ---------------------------------------------------------------------------
# Strings that match (or break) a model pattern


def _gen(tree, k, reps):
    out = []
    for op, av in tree:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(av))
        elif name == "NOT_LITERAL":
            out.append("a" if chr(av) != "a" else "b")
        elif name == "ANY":
            out.append("a")
        elif name == "AT":
            pass
        elif name == "IN":
            out.append(_pick(av))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            lo, hi, sub = av
            n = lo if reps == "min" else max(lo, 1)
            if hi is not sre_parse.MAXREPEAT:
                n = min(n, hi)
            for _ in range(n):
                out.append(_gen(sub, k, reps))
        elif name == "SUBPATTERN":
            out.append(_gen(av[-1], k, reps))
        elif name == "BRANCH":
            alts = av[1]
            out.append(_gen(alts[min(k, len(alts) - 1)], k, reps))
        elif name == "CATEGORY":
            out.append(_category(av))
        else:
            raise ValueError("pattern item %s is not supported" % name)
    return "".join(out)


def _category(av):
    return {"CATEGORY_DIGIT": "0", "CATEGORY_SPACE": " "}.get(str(av), "a")


def _pick(items):
    if items and str(items[0][0]) == "NEGATE":
        excluded = "".join(_pick([it]) for it in items[1:])
        for c in "aA0-_.:/":
            if c not in excluded:
                return c
        return "~"
    op, av = items[0]
    name = str(op)
    if name == "LITERAL":
        return chr(av)
    if name == "RANGE":
        return chr(av[0])
    if name == "CATEGORY":
        return _category(av)
    raise ValueError("class item %s is not supported" % name)


def matching(pattern, lo, hi):
    """A string that matches `pattern` as a whole and has a length within [lo, hi]."""
    tree = sre_parse.parse(pattern)
    for k in range(8):
        for reps in ("one", "min"):
            s = _gen(tree, k, reps)
            if lo is not None and len(s) < lo:
                s = _stretch(pattern, s, lo)
            if s is not None and re.fullmatch(pattern, s) and (lo is None or len(s) >= lo) and (hi is None or len(s) <= hi):
                return s
    raise ValueError("no string found for pattern %s" % pattern)


def _stretch(pattern, s, lo):
    """Grows `s` to `lo` characters while it still matches (repeating a character that keeps it valid)."""
    for c in (s[-1:] or "a", "a", "0", "A"):
        t = s + c * (lo - len(s))
        if re.fullmatch(pattern, t):
            return t
    return None


def breaking(pattern, valid, lo, hi):
    """A string of allowed length that does not match `pattern`, or None when none is found."""
    candidates = [valid + "#", valid + " ", "#" + valid, valid + "\u00e9", " ", "#", "!", "a b", valid[:-1] + "#", "_" + valid, valid.upper() + "_"]
    for s in candidates:
        if (lo is None or len(s) >= lo) and (hi is None or len(s) <= hi) and not re.fullmatch(pattern, s):
            return s
    return None


# ---------------------------------------------------------------------------
# Checking values against shapes (requests we make, responses we get)


def check(shape, value, path, errors, output=False):
    """Appends to `errors` every way `value` breaks `shape` (types, constraints, unknown members)."""
    t = shape.type_name
    meta = shape.metadata
    if t == "structure":
        if getattr(shape, "is_document_type", False):
            return
        if not isinstance(value, dict):
            errors.append("%s: expected an object, got %r" % (path, _short(value)))
            return
        for k in value:
            if k not in shape.members:
                errors.append("%s: member %r is not in the model's %s" % (path, k, shape.name))
        for k in shape.required_members:
            if value.get(k) is None:
                errors.append("%s: required member %r is missing" % (path, k))
        if meta.get("union"):
            n = sum(1 for k in value if k in shape.members and value[k] is not None)
            if n != 1:
                errors.append("%s: union %s has %d members set" % (path, shape.name, n))
        for k, v in value.items():
            if k in shape.members and v is not None:
                check(shape.members[k], v, "%s.%s" % (path, k), errors, output)
    elif t == "list":
        if not isinstance(value, list):
            errors.append("%s: expected a list, got %r" % (path, _short(value)))
            return
        _size(meta, len(value), path, errors)
        for i, v in enumerate(value):
            check(shape.member, v, "%s[%d]" % (path, i), errors, output)
    elif t == "map":
        if not isinstance(value, dict):
            errors.append("%s: expected a map, got %r" % (path, _short(value)))
            return
        _size(meta, len(value), path, errors)
        for k, v in value.items():
            check(shape.key, k, "%s{key}" % path, errors, output)
            check(shape.value, v, "%s{%s}" % (path, k), errors, output)
    elif t == "string":
        if not isinstance(value, str):
            errors.append("%s: expected a string, got %r" % (path, _short(value)))
            return
        if shape.enum and value not in shape.enum:
            errors.append("%s: %r is not in the enum %s" % (path, value, shape.enum))
        _size(meta, len(value), path, errors)
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            errors.append("%s: %r does not match %s" % (path, _short(value), meta["pattern"]))
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append("%s: expected an integer, got %r" % (path, _short(value)))
            return
        _range(meta, value, path, errors)
    elif t in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append("%s: expected a number, got %r" % (path, _short(value)))
            return
        _range(meta, value, path, errors)
    elif t == "boolean":
        if not isinstance(value, bool):
            errors.append("%s: expected a boolean, got %r" % (path, _short(value)))
    elif t == "timestamp":
        if output:
            if not isinstance(value, str) or not TIMESTAMP.match(value):
                errors.append("%s: timestamp %r is not ISO-8601 with milliseconds as AWS prints it" % (path, value))
        elif not isinstance(value, (datetime.datetime, str)):
            errors.append("%s: expected a timestamp" % path)
    elif t == "blob":
        if output:
            try:
                raw = base64.b64decode(value, validate=True)
            except Exception:
                errors.append("%s: blob is not base64" % path)
                return
        else:
            raw = value if isinstance(value, (bytes, bytearray)) else str(value).encode()
        _size(meta, len(raw), path, errors)
    else:
        errors.append("%s: unexpected shape type %s" % (path, t))


def _size(meta, n, path, errors):
    if "min" in meta and n < meta["min"]:
        errors.append("%s: length %d below min %s" % (path, n, meta["min"]))
    if "max" in meta and n > meta["max"]:
        errors.append("%s: length %d above max %s" % (path, n, meta["max"]))


def _range(meta, x, path, errors):
    if "min" in meta and x < meta["min"]:
        errors.append("%s: %s below min %s" % (path, x, meta["min"]))
    if "max" in meta and x > meta["max"]:
        errors.append("%s: %s above max %s" % (path, x, meta["max"]))


def _short(v):
    s = repr(v)
    return s if len(s) < 80 else s[:77] + "..."


# ---------------------------------------------------------------------------
# Valid values from shapes


class Generator:
    """Valid values for shapes. `choices` picks the member of each union (by shape name)."""

    def __init__(self, seeds):
        self.seeds = seeds

    def value(self, shape, path, full, choices, depth=0):
        if path in self.seeds:
            return self.seeds[path]()
        t = shape.type_name
        meta = shape.metadata
        if t == "structure":
            if getattr(shape, "is_document_type", False):
                return {"emulator": "conformance", "n": 1}
            if meta.get("union"):
                names = list(shape.members)
                name = names[choices.get(shape.name, 0) % len(names)]
                return {name: self.value(shape.members[name], path + "." + name, full, choices, depth + 1)}
            out = {}
            for name, member in shape.members.items():
                if name in shape.required_members or (full and depth < 8):
                    out[name] = self.value(member, path + "." + name, full, choices, depth + 1)
            return out
        if t == "list":
            n = max(meta.get("min", 0), 1)
            return [self.value(shape.member, path + "[]", full, choices, depth + 1) for _ in range(n)]
        if t == "map":
            n = max(meta.get("min", 0), 1)
            out = {}
            for i in range(n):
                key = self.value(shape.key, path + "{key}", full, choices, depth + 1)
                out[key if i == 0 else "%s%d" % (key, i)] = self.value(shape.value, path + "{}", full, choices, depth + 1)
            return out
        if t == "string":
            if shape.enum:
                return shape.enum[0]
            lo, hi = meta.get("min"), meta.get("max")
            if "pattern" in meta:
                return matching(meta["pattern"], lo, hi)
            return "x" * max(lo or 0, 1)
        if t in ("integer", "long"):
            lo, hi = meta.get("min"), meta.get("max")
            v = lo if lo is not None and lo > 1 else 1
            return min(v, hi) if hi is not None else v
        if t in ("float", "double"):
            lo, hi = meta.get("min", 0), meta.get("max", 1)
            return (lo + hi) / 2
        if t == "boolean":
            return True
        if t == "blob":
            return b"x" * max(meta.get("min", 0), 1)
        if t == "timestamp":
            return datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        raise ValueError("no value for %s" % t)


def unions(shape, choices=None, seen=None, found=None):
    """Every union reachable from `shape`: (name, member count, the choices of the unions above it
    that lead to it), in the order they are found."""
    choices = {} if choices is None else choices
    seen = set() if seen is None else seen
    found = [] if found is None else found
    if shape.name in seen:
        return found
    seen.add(shape.name)
    t = shape.type_name
    if t == "structure" and not getattr(shape, "is_document_type", False):
        is_union = shape.metadata.get("union")
        if is_union:
            found.append((shape.name, len(shape.members), dict(choices)))
        for i, m in enumerate(shape.members.values()):
            below = dict(choices, **{shape.name: i}) if is_union else choices
            unions(m, below, seen, found)
    elif t == "list":
        unions(shape.member, choices, seen, found)
    elif t == "map":
        unions(shape.value, choices, seen, found)
    return found


# ---------------------------------------------------------------------------
# Invalid requests: one per constraint


def sites(shape, value, aws_path, params_path):
    """Every place in a valid `value` where a constraint of the model can be broken: yields
    (description, aws path of the failing member, mutate(params) function)."""
    t = shape.type_name
    meta = shape.metadata
    if t == "structure":
        if getattr(shape, "is_document_type", False):
            return
        if meta.get("union"):
            yield ("union with no member", aws_path, _setter(params_path, {}))
            names = list(shape.members)
            chosen = next(iter(value))
            others = [n for n in names if n != chosen]
            if others:
                two = dict(value)
                two[others[0]] = GEN.value(shape.members[others[0]], "", False, {})
                yield ("union with two members", aws_path, _setter(params_path, two))
        for name, member in shape.members.items():
            child_aws = name if not aws_path else aws_path + "." + name
            if name in value:
                location = member.serialization.get("location")
                if name in shape.required_members and location != "uri" and not meta.get("union"):
                    yield ("required %s missing" % name, child_aws, _deleter(params_path + [name]))
                yield from sites(member, value[name], child_aws, params_path + [name])
    elif t == "list":
        if meta.get("min", 0) > 0:
            yield ("list below min", aws_path, _setter(params_path, value[: meta["min"] - 1]))
        if "max" in meta:
            yield ("list above max", aws_path, _setter(params_path, (value * (meta["max"] + 1))[: meta["max"] + 1]))
        if value:
            yield from sites(shape.member, value[0], aws_path + ".1.member", params_path + [0])
    elif t == "map":
        if meta.get("min", 0) > 0:
            yield ("map below min", aws_path, _setter(params_path, {}))
        if "max" in meta:
            v = next(iter(value.values()))
            big = {"k%d" % i: v for i in range(meta["max"] + 1)}
            yield ("map above max", aws_path, _setter(params_path, big))
        if value:
            k, v = next(iter(value.items()))
            key_meta = shape.key.metadata
            if "pattern" in key_meta:
                bad = breaking(key_meta["pattern"], k, key_meta.get("min"), key_meta.get("max"))
                if bad is not None:
                    yield ("map key pattern", aws_path, _setter(params_path, {bad: v}))
            if shape.value.type_name == "string":
                for desc, bad in _string_breakers(shape.value, v):
                    yield ("map value " + desc, aws_path, _setter(params_path, {k: bad}))
            else:
                yield from sites(shape.value, v, aws_path + "." + k, params_path + [k])
    elif t == "string":
        for desc, bad in _string_breakers(shape, value):
            yield (desc, aws_path, _setter(params_path, bad))
    elif t in ("integer", "long", "float", "double"):
        step = 1 if t in ("integer", "long") else 0.5
        if "min" in meta:
            yield ("value below min", aws_path, _setter(params_path, meta["min"] - step))
        if "max" in meta:
            yield ("value above max", aws_path, _setter(params_path, meta["max"] + step))
    elif t == "blob":
        if meta.get("min", 0) > 0:
            yield ("blob below min", aws_path, _setter(params_path, b""))
        if "max" in meta:
            yield ("blob above max", aws_path, _setter(params_path, b"x" * (meta["max"] + 1)))


def _string_breakers(shape, value):
    meta = shape.metadata
    lo, hi = meta.get("min"), meta.get("max")
    if shape.enum:
        yield ("enum", "NotAModelledValue")
        return
    if lo:
        yield ("string below min length", value[: lo - 1])
    if hi is not None:
        seed = value or "a"
        yield ("string above max length", (seed * (hi // len(seed) + 2))[: hi + 1])
    if "pattern" in meta:
        bad = breaking(meta["pattern"], value, lo, hi)
        if bad is not None:
            yield ("pattern", bad)


def _setter(path, new):
    def mutate(params):
        target = params
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = copy.deepcopy(new)

    return mutate


def _deleter(path):
    def mutate(params):
        target = params
        for p in path[:-1]:
            target = target[p]
        del target[path[-1]]

    return mutate


# ---------------------------------------------------------------------------
# Sending and checking


class Wire:
    """The raw HTTP response of the last call, captured from botocore's after-call event."""

    def __init__(self):
        self.response = None

    def __call__(self, http_response=None, **kwargs):
        self.response = http_response


class Runner:
    def __init__(self, emu):
        self.emu = emu
        session = botocore.session.get_session()
        self.models = {"bedrock": session.get_service_model("bedrock"), "bedrock-runtime": session.get_service_model("bedrock-runtime")}
        cfg = Config(parameter_validation=False, retries={"total_max_attempts": 1}, read_timeout=120, connect_timeout=10)
        creds = dict(aws_access_key_id=emu["accessKeyId"], aws_secret_access_key=emu["secretAccessKey"], region_name=emu["region"])
        self.clients = {
            "bedrock": session.create_client("bedrock", endpoint_url=emu["bedrock"], config=cfg, **creds),
            "bedrock-runtime": session.create_client("bedrock-runtime", endpoint_url=emu["bedrockRuntime"], config=cfg, **creds),
        }
        self.s3 = session.create_client("s3", endpoint_url=emu["s3"], config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 3}), **creds)
        self.wire = Wire()
        for c in self.clients.values():
            c.meta.events.register("after-call", self.wire)
        self.counts = {}
        self.mismatches = []
        self.frames = []

    def call(self, service, op_name, params):
        """Sends one request; returns (status, error type or None, headers, body bytes)."""
        self.wire.response = None
        client = self.clients[service]
        method = getattr(client, botocore.xform_name(op_name))
        try:
            method(**params)
        except ClientError:
            pass
        r = self.wire.response
        if r is None:
            raise RuntimeError("%s sent no request (botocore refused the parameters)" % op_name)
        error = r.headers.get("x-amzn-errortype")
        if error:
            error = error.split(":")[0].split("#")[-1]
        return r.status_code, error, r.headers, r.content

    def check_response(self, service, op_name, status, error, headers, body):
        """Every way a response breaks the operation's model."""
        model = self.models[service]
        op = model.operation_model(op_name)
        problems = []
        if not headers.get("x-amzn-requestid"):
            problems.append("no x-amzn-requestid header")
        if error is None and 200 <= status < 300:
            if status != op.http.get("responseCode", 200):
                problems.append("status %d, the model says %s" % (status, op.http.get("responseCode", 200)))
            out = op.output_shape
            if out is None:
                return problems
            payload = out.serialization.get("payload")
            body_members = {}
            for name, member in out.members.items():
                loc = member.serialization.get("location")
                if loc == "header":
                    v = headers.get(member.serialization["name"])
                    if v is None:
                        if name in out.required_members:
                            problems.append("required header %s missing" % member.serialization["name"])
                    else:
                        check(member, v, name, problems, output=True)
                elif name == payload:
                    if member.type_name == "blob":
                        if not body and name in out.required_members:
                            problems.append("required payload %s is empty" % name)
                    elif member.serialization.get("eventstream") or member.metadata.get("eventstream"):
                        self.check_stream(op_name, member, headers, body, problems)
                else:
                    body_members[name] = member
            if payload is None:
                try:
                    doc = json.loads(body or b"{}")
                except ValueError:
                    problems.append("body is not JSON")
                    return problems
                if not isinstance(doc, dict):
                    problems.append("body is not a JSON object")
                    return problems
                for k in doc:
                    if k not in body_members:
                        problems.append("body member %r is not in the model's %s" % (k, out.name))
                for k in out.required_members:
                    if k in body_members and doc.get(k) is None:
                        problems.append("required member %r missing" % k)
                for k, v in doc.items():
                    if k in body_members and v is not None:
                        check(body_members[k], v, k, problems, output=True)
            return problems
        modelled = {e.name: e for e in op.error_shapes}
        if error not in modelled:
            problems.append("status %d with error type %r, not one of the operation's errors %s" % (status, error, sorted(modelled)))
            return problems
        shape = modelled[error]
        expected = shape.metadata.get("error", {}).get("httpStatusCode", 400)
        if status != expected:
            problems.append("%s with status %d, the model says %d" % (error, status, expected))
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            problems.append("error body is not JSON")
            return problems
        if not isinstance(doc.get("message"), str):
            problems.append("error body has no message")
        check(shape, {k: v for k, v in doc.items() if k != "__type"}, error, problems, output=True)
        return problems

    def check_stream(self, op_name, union, headers, body, problems):
        """Every way an event-stream answer breaks the model's union `union`; remembers the frames
        read (event or exception type, payload) in self.frames."""
        self.frames = []
        content_type = headers.get("content-type", "")
        if content_type.split(";")[0].strip() != EVENT_STREAM_TYPE:
            problems.append("content-type %r, not %s" % (content_type, EVENT_STREAM_TYPE))
        buf = botocore.eventstream.EventStreamBuffer()
        buf.add_data(body)
        try:
            messages = list(buf)
        except botocore.eventstream.ParserError as e:
            problems.append("the event stream does not decode (%s: %s)" % (type(e).__name__, e))
            return
        if not messages:
            problems.append("the event stream has no message")
        c = self.counts.setdefault(op_name, {"valid": 0, "invalid": 0, "faults": 0, "mismatches": 0, "succeeded": 0})
        for i, m in enumerate(messages):
            c["events"] = c.get("events", 0) + 1
            h = m.headers
            where = "frame %d" % i
            kind = h.get(":message-type")
            if h.get(":content-type") != "application/json":
                problems.append("%s: :content-type %r" % (where, h.get(":content-type")))
            if kind == "event":
                name = h.get(":event-type")
            elif kind == "exception":
                name = h.get(":exception-type")
            else:
                problems.append("%s: :message-type %r is neither event nor exception" % (where, kind))
                continue
            member = union.members.get(name)
            if member is None:
                problems.append("%s: %s type %r is not a member of %s" % (where, kind, name, union.name))
                continue
            is_exception = bool(member.metadata.get("exception"))
            if is_exception != (kind == "exception"):
                problems.append("%s: %r sent as %s, the model says %s" % (where, name, kind, "exception" if is_exception else "event"))
            try:
                doc = json.loads(m.payload or b"{}")
            except ValueError:
                problems.append("%s: payload is not JSON" % where)
                continue
            if is_exception and not isinstance(doc.get("message"), str):
                problems.append("%s: exception %s has no message" % (where, name))
            check(member, doc, "%s.%s" % (where, name), problems, output=True)
            self.frames.append((kind, name, doc))
        for kind, name, _ in self.frames[:-1]:
            if kind == "exception":
                problems.append("exception %s is not the last frame" % name)

    def record(self, op_name, kind, problems, note):
        c = self.counts.setdefault(op_name, {"valid": 0, "invalid": 0, "faults": 0, "mismatches": 0, "succeeded": 0})
        c[kind] += 1
        if VERBOSE:
            print("  %s %s: %s%s" % (op_name, kind, note, " -> MISMATCH" if problems else ""), file=sys.stderr)
        if problems:
            c["mismatches"] += 1
            self.mismatches.append("%s %s (%s): %s" % (op_name, kind, note, "; ".join(problems)))

    def valid(self, service, op_name, params, note, expect_success=False):
        self.frames = []
        status, error, headers, body = self.call(service, op_name, params)
        problems = self.check_response(service, op_name, status, error, headers, body)
        if error is None and any(kind == "exception" for kind, _, _ in self.frames):
            problems.append("a valid request's stream ended with an exception: %s" % [n for k, n, _ in self.frames if k == "exception"])
        if error == "ValidationException" and b"failed to satisfy constraint" in body:
            problems.append("a request that meets every constraint was refused: %s" % body[:300].decode("utf-8", "replace"))
        if expect_success and error is not None:
            problems.append("expected success, got %d %s: %s" % (status, error, body[:200].decode("utf-8", "replace")))
        if error is None:
            self.counts.setdefault(op_name, {"valid": 0, "invalid": 0, "faults": 0, "mismatches": 0, "succeeded": 0})["succeeded"] += 1
        self.record(op_name, "valid", problems, note)
        return status, error, body

    def invalid(self, service, op_name, params, description, aws_path):
        status, error, headers, body = self.call(service, op_name, params)
        problems = self.check_response(service, op_name, status, error, headers, body)
        if error != "ValidationException" or status != 400:
            problems.append("expected ValidationException 400, got %d %s" % (status, error))
        else:
            message = json.loads(body).get("message", "")
            if not re.match(r"^\d+ validation errors? detected: ", message) or ("at '%s'" % aws_path) not in message:
                problems.append("the message does not name %r in AWS's form: %s" % (aws_path, message[:300]))
        self.record(op_name, "invalid", problems, "%s at %s" % (description, aws_path))

    def fault(self, service, op_name, params, code, marker="error"):
        """A request with `[[marker:code]]`: answered with a modelled error, either as HTTP (any
        marker `error`) or, on a streaming operation, as the exception event that ends a 200 stream
        (`[[error:424]]` and every `stream-error`): a member of the union whose status is `code`,
        else modelStreamErrorException carrying `code` as its originalStatusCode."""
        self.frames = []
        status, error, headers, body = self.call(service, op_name, params)
        problems = self.check_response(service, op_name, status, error, headers, body)
        in_stream = op_name in STREAMING and (marker == "stream-error" or code == 424)
        outcome = "%d %s" % (status, error)
        if not in_stream and error is None:
            problems.append("[[%s:%d]] was answered with success" % (marker, code))
        if in_stream:
            exceptions = [(n, d) for k, n, d in self.frames if k == "exception"]
            if error is not None or not exceptions:
                problems.append("[[%s:%d]] should end a 200 stream with an exception event, got %d %s" % (marker, code, status, error))
            else:
                name, doc = exceptions[-1]
                outcome = "200 stream ending in %s" % name
                union = self.models[service].operation_model(op_name).output_shape
                union = union.members[union.serialization["payload"]]
                by_status = [n for n, m in union.members.items() if m.metadata.get("exception") and m.metadata.get("error", {}).get("httpStatusCode") == code]
                expected = by_status[0] if by_status else "modelStreamErrorException"
                if name != expected:
                    problems.append("[[%s:%d]] ended the stream with %s, expected %s" % (marker, code, name, expected))
                if name == "modelStreamErrorException" and doc.get("originalStatusCode") != code:
                    problems.append("modelStreamErrorException.originalStatusCode %r, expected %d" % (doc.get("originalStatusCode"), code))
        self.record(op_name, "faults", problems, "[[%s:%d]] -> %s" % (marker, code, outcome))


# ---------------------------------------------------------------------------
# The run


GEN = Generator({})


def should_succeed(op_name, note):
    """Whether a valid request must be answered with success. The exceptions are requests the model
    allows but that AWS, too, refuses for what they mean: a runtime call without a body or messages,
    and a List whose nextToken (generated from its pattern) is not one the service handed out."""
    if note == "required members only":
        return op_name not in RUNTIME
    return op_name != "ListModelInvocationJobs"


def main():
    emu = json.loads(sys.argv[1])
    run = Runner(emu)
    bucket = emu["bucket"]

    # A job that stays InProgress (for a Stop that succeeds) and one that completes.
    def put(key, records):
        body = "\n".join(json.dumps(r) for r in records) + "\n"
        run.s3.put_object(Bucket=bucket, Key=key, Body=body.encode())

    def claude_record(i, text):
        return {"recordId": "CONF%07d" % i, "modelInput": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 32, "messages": [{"role": "user", "content": text}]}}

    put("conformance/slow/records.jsonl", [claude_record(i, "Slow [[job:slow]]" if i == 0 else "Question %d" % i) for i in range(100)])
    put("conformance/done/records.jsonl", [claude_record(i, "Question %d" % i) for i in range(100)])
    role = "arn:aws:iam::123456789012:role/ConformanceRole"

    def job(prefix, name):
        out = run.clients["bedrock"].create_model_invocation_job(
            jobName=name,
            roleArn=role,
            modelId=CLAUDE,
            inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://%s/conformance/%s/records.jsonl" % (bucket, prefix)}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://%s/conformance/%s/out/" % (bucket, prefix)}},
        )
        return out["jobArn"]

    slow_arns = [job("slow", "conformance-slow-%d" % i) for i in range(3)]
    done_arn = job("done", "conformance-done")

    ops = [("bedrock", o) for o in CONTROL] + [("bedrock-runtime", o) for o in RUNTIME + COUNT]
    for service, op_name in ops:
        model = run.models[service]
        op = model.operation_model(op_name)
        shape = op.input_shape
        seeds = {}
        if op_name == "CreateModelInvocationJob":
            # A fresh token each time, or the emulator would answer every create with its first job.
            seeds[".clientRequestToken"] = lambda: uuid.uuid4().hex
        if op_name == "GetModelInvocationJob":
            seeds[".jobIdentifier"] = lambda: done_arn
        if op_name == "StopModelInvocationJob":
            # Each stop takes the next running job (a job stopped twice would rightly be a conflict).
            running = itertools.cycle(slow_arns)
            seeds[".jobIdentifier"] = lambda: next(running)
        if op_name in ("InvokeModel", "InvokeModelWithResponseStream"):
            seeds[".modelId"] = lambda: CLAUDE
            seeds[".body"] = lambda: json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 32, "messages": [{"role": "user", "content": "Hello"}]}).encode()
            seeds[".contentType"] = lambda: "application/json"
            seeds[".accept"] = lambda: "application/json"
        if op_name in ("Converse", "ConverseStream"):
            seeds[".modelId"] = lambda: CLAUDE
        if op_name == "CountTokens":
            # A model that counts tokens, and a body it can read for the invokeModel member.
            seeds[".modelId"] = lambda: CLAUDE
            seeds[".input.invokeModel.body"] = lambda: json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 32, "messages": [{"role": "user", "content": "Hello"}]}).encode()
        gen = Generator(seeds)
        # The seeds are chosen for meaning (a model the emulator knows, a job that exists); each must
        # still satisfy the model, or the test itself is wrong.
        for path, make in seeds.items():
            member = shape
            for name in path[1:].split("."):
                member = member.members[name]
            errs = []
            check(member, make(), path[1:], errs)
            if errs:
                raise SystemExit("seed %s breaks the model: %s" % (path, errs))

        variants = [("required members only", False, {}), ("every member", True, {})]
        for union_name, n, above in unions(shape):
            for i in range(1, n):
                variants.append(("%s member %d" % (union_name, i), True, dict(above, **{union_name: i})))
        bases = []
        for note, full, choices in variants:
            params = gen.value(shape, "", full, choices)
            errs = []
            check(shape, params, "input", errs)
            if errs:
                raise SystemExit("generated %s request breaks the model: %s" % (op_name, errs))
            run.valid(service, op_name, copy.deepcopy(params), note, expect_success=should_succeed(op_name, note))
            bases.append(params)

        # One invalid request per constraint, each on the first valid request that reaches it.
        done = set()
        for base in bases:
            for description, aws_path, mutate in sites(shape, base, "", []):
                key = (description, re.sub(r"\.\d+\.member", ".N.member", aws_path))
                if key in done:
                    continue
                done.add(key)
                params = copy.deepcopy(base)
                mutate(params)
                run.invalid(service, op_name, params, description, aws_path)

        if op_name in RUNTIME:
            markers = ["error", "stream-error"] if op_name in STREAMING else ["error"]
            for marker, code in itertools.product(markers, FAULT_CODES):
                text = "Fail [[%s:%d]]" % (marker, code)
                if op_name in ("InvokeModel", "InvokeModelWithResponseStream"):
                    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 32, "messages": [{"role": "user", "content": text}]}
                    params = {"modelId": CLAUDE, "body": json.dumps(body).encode(), "contentType": "application/json"}
                else:
                    params = {"modelId": CLAUDE, "messages": [{"role": "user", "content": [{"text": text}]}]}
                run.fault(service, op_name, params, code, marker)

    # The slow jobs are stopped so that the emulator can stop at once.
    for arn in slow_arns:
        try:
            run.clients["bedrock"].stop_model_invocation_job(jobIdentifier=arn)
        except ClientError:
            pass

    for service, op_name in ops:
        c = run.counts.get(op_name, {})
        events = ", %d stream frames" % c["events"] if "events" in c else ""
        print(
            "%s: %d valid (%d answered with success), %d invalid, %d fault markers%s, %d mismatches"
            % (op_name, c.get("valid", 0), c.get("succeeded", 0), c.get("invalid", 0), c.get("faults", 0), events, c.get("mismatches", 0))
        )
    for m in run.mismatches:
        print("MISMATCH " + m)
    print("RESULT " + json.dumps({"botocore": botocore.__version__, "operations": run.counts, "mismatches": run.mismatches}))
    sys.stdout.flush()
    sys.exit(1 if run.mismatches else 0)


if __name__ == "__main__":
    main()
