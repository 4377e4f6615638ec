"""boto3's side of a serve round of the chaos suite (bench/chaos.mjs): invoke_model, converse,
invoke_model_with_response_stream and converse_stream calls from threads against `serve`, which
the suite kills with SIGKILL and restarts on the same port while the calls wait. Retries are
botocore's own (standard mode, `maxAttempts` attempts): a reset connection or a refused one is
retried with the same amz-sdk-invocation-id, which serve's journal keys the call by. Each call
has a client of its own: standard mode's retry quota (500 tokens, 5 per connection error) is per
client, and one client shared by a hundred calls that all lose their connection at a kill would
run out of it and give up.

A streaming call's retries are botocore's too, and they end where its response begins: serve's
Bedrock wire sends a stream's 200 and headers only when the answer is ready (then all its events at
once), so a kill before that is a connection error botocore retries; a stream cut after its headers
came (the event stream is read after the call returned) is not retried by botocore, and is reported
with `cut: true` (the suite counts it apart from the lost calls: no SDK survives it).

Input: one JSON argument { url, region, modelId, invoke: [{ i, prompt }], converse: [{ i, prompt }],
invokeStream: [{ i, prompt }], converseStream: [{ i, prompt }], workers, maxAttempts, readTimeout }.
Output: one JSON line per call as soon as it settles: { i, kind, text, requestId, retries } or
{ i, kind, error: { code, status, message }, cut? }.
"""

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.exceptions import HTTPClientError, ResponseStreamingError
from urllib3.exceptions import HTTPError as Urllib3Error

spec = json.loads(sys.argv[1])
config = Config(
    connect_timeout=5,
    read_timeout=spec["readTimeout"],
    retries={"max_attempts": spec["maxAttempts"], "mode": "standard"},
)
lock = threading.Lock()


session = boto3.session.Session()


def client():
    return session.client(
        "bedrock-runtime",
        region_name=spec["region"],
        endpoint_url=spec["url"],
        aws_access_key_id="test-dummy-access-key",
        aws_secret_access_key="test-dummy-secret-key",
        config=config,
    )


def emit(value):
    with lock:
        sys.stdout.write(json.dumps(value) + "\n")
        sys.stdout.flush()


def error_of(err):
    response = getattr(err, "response", None)
    if response is not None:
        return {
            "code": response.get("Error", {}).get("Code"),
            "status": response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
            "message": response.get("Error", {}).get("Message"),
        }
    return {"code": type(err).__name__, "status": None, "message": str(err)}


def invoke(c, call):
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": call["prompt"]}],
        }
    )
    r = c.invoke_model(modelId=spec["modelId"], contentType="application/json", accept="application/json", body=body)
    out = json.loads(r["body"].read())
    return r, "".join(b.get("text", "") for b in out["content"] if b.get("type") == "text")


def converse(c, call):
    r = c.converse(
        modelId=spec["modelId"],
        messages=[{"role": "user", "content": [{"text": call["prompt"]}]}],
        inferenceConfig={"maxTokens": 64},
    )
    return r, "".join(b.get("text", "") for b in r["output"]["message"]["content"])


class Cut(Exception):
    """A stream whose response had begun (200 and headers) broke while its events were read."""

    def __init__(self, err):
        super().__init__(str(err))
        self.err = err


def read_events(events):
    """The events of a stream, read to the end; a connection that breaks meanwhile is a Cut."""
    try:
        return list(events)
    # botocore reads an event stream from urllib3 unwrapped: a reset there is urllib3's ProtocolError.
    except (ResponseStreamingError, HTTPClientError, BotocoreConnectionError, Urllib3Error) as err:
        raise Cut(err) from err


def invoke_stream(c, call):
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": call["prompt"]}],
        }
    )
    r = c.invoke_model_with_response_stream(
        modelId=spec["modelId"], contentType="application/json", accept="application/json", body=body
    )
    text = ""
    for event in read_events(r["body"]):
        chunk = json.loads(event["chunk"]["bytes"]) if "chunk" in event else {}
        if chunk.get("type") == "content_block_delta":
            text += chunk["delta"].get("text", "")
    return r, text


def converse_stream(c, call):
    r = c.converse_stream(
        modelId=spec["modelId"],
        messages=[{"role": "user", "content": [{"text": call["prompt"]}]}],
        inferenceConfig={"maxTokens": 64},
    )
    events = read_events(r["stream"])
    return r, "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)


OPERATIONS = {
    "invoke": invoke,
    "converse": converse,
    "invoke-stream": invoke_stream,
    "converse-stream": converse_stream,
}


def run(kind, c, call):
    try:
        r, text = OPERATIONS[kind](c, call)
        meta = r["ResponseMetadata"]
        emit({"i": call["i"], "kind": kind, "text": text, "requestId": meta["RequestId"], "retries": meta["RetryAttempts"]})
    except Cut as cut:  # reported apart: botocore does not retry a stream that has begun
        emit({"i": call["i"], "kind": kind, "error": error_of(cut.err), "cut": True})
    except Exception as err:  # reported, not raised: the suite counts it as lost
        emit({"i": call["i"], "kind": kind, "error": error_of(err)})


# The kinds in turn (invoke_model, converse, the two streams), so that every kind waits in serve from the start.
lists = [
    [("invoke", c) for c in spec["invoke"]],
    [("converse", c) for c in spec["converse"]],
    [("invoke-stream", c) for c in spec.get("invokeStream", [])],
    [("converse-stream", c) for c in spec.get("converseStream", [])],
]
calls = [lst[k] for k in range(max(len(lst) for lst in lists)) for lst in lists if k < len(lst)]
# The clients are made here, one after another, before any call is sent (a session is not safe to
# make clients from threads).
clients = [client() for _ in calls]
with ThreadPoolExecutor(max_workers=spec["workers"]) as pool:
    for (kind, call), c in zip(calls, clients):
        pool.submit(run, kind, c, call)
