"""boto3's side of a serve round of the chaos suite (bench/chaos.mjs): invoke_model and converse
calls from threads against `serve`, which the suite kills with SIGKILL and restarts on the same port
while the calls wait. Retries are botocore's own (standard mode, `maxAttempts` attempts): a reset
connection or a refused one is retried with the same amz-sdk-invocation-id, which serve's journal
keys the call by. Each call has a client of its own: standard mode's retry quota (500 tokens, 5 per
connection error) is per client, and one client shared by a hundred calls that all lose their
connection at a kill would run out of it and give up.

Input: one JSON argument { url, region, modelId, invoke: [{ i, prompt }], converse: [{ i, prompt }],
workers, maxAttempts, readTimeout }. Output: one JSON line per call as soon as it settles:
{ i, kind, text, requestId, retries } or { i, kind, error: { code, status, message } }.
"""

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

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


def run(kind, c, call):
    try:
        r, text = (invoke if kind == "invoke" else converse)(c, call)
        meta = r["ResponseMetadata"]
        emit({"i": call["i"], "kind": kind, "text": text, "requestId": meta["RequestId"], "retries": meta["RetryAttempts"]})
    except Exception as err:  # reported, not raised: the suite counts it as lost
        emit({"i": call["i"], "kind": kind, "error": error_of(err)})


# invoke_model and converse calls in turn, so that both kinds wait in serve from the start.
invokes = [("invoke", c) for c in spec["invoke"]]
converses = [("converse", c) for c in spec["converse"]]
calls = [call for pair in zip(invokes, converses) for call in pair]
calls += invokes[len(converses) :] + converses[len(invokes) :]
# The clients are made here, one after another, before any call is sent (a session is not safe to
# make clients from threads).
clients = [client() for _ in calls]
with ThreadPoolExecutor(max_workers=spec["workers"]) as pool:
    for (kind, call), c in zip(calls, clients):
        pool.submit(run, kind, c, call)
