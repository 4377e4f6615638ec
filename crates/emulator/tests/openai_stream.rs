//! The OpenAI-compatible endpoint's streamed chat completions, read over HTTP/1.1 and h2c by a real
//! client (reqwest) and parsed as server-sent events by `eventsource-stream`, the parser the
//! engine's openai mode uses: the chunks put together give exactly the non-streaming answer.

use bedrock_batch_emulator::{Emulator, EmulatorOptions};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// A streamed answer: status, headers, HTTP version, and the `data` of each event in order.
struct Streamed {
    status: u16,
    headers: reqwest::header::HeaderMap,
    version: reqwest::Version,
    data: Vec<String>,
}

impl Streamed {
    /// The JSON events before `[DONE]`.
    fn chunks(&self) -> Vec<Value> {
        assert_eq!(
            self.data.last().map(String::as_str),
            Some("[DONE]"),
            "the stream ends with [DONE]: {:?}",
            self.data
        );
        assert_eq!(self.data.iter().filter(|d| *d == "[DONE]").count(), 1);
        self.data[..self.data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
            .collect()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().http1_only().build().unwrap()
}

async fn post(client: &reqwest::Client, emu: &Emulator, body: &Value) -> reqwest::Response {
    client
        .post(format!("{}/chat/completions", emu.endpoints.openai))
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-local-test")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .unwrap()
}

async fn whole(emu: &Emulator, body: &Value) -> Value {
    let resp = post(&client(), emu, body).await;
    assert_eq!(resp.status(), 200);
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

async fn streamed_with(client: &reqwest::Client, emu: &Emulator, body: &Value) -> Streamed {
    let resp = post(client, emu, body).await;
    let (status, headers, version) = (resp.status().as_u16(), resp.headers().clone(), resp.version());
    let mut events = resp.bytes_stream().eventsource();
    let mut data = Vec::new();
    while let Some(event) = events.next().await {
        data.push(event.unwrap().data);
    }
    Streamed { status, headers, version, data }
}

async fn streamed(emu: &Emulator, body: &Value) -> Streamed {
    streamed_with(&client(), emu, body).await
}

/// `body` with `"stream": true` (and `stream_options.include_usage` when asked).
fn streaming(body: &Value, include_usage: bool) -> Value {
    let mut b = body.clone();
    b["stream"] = json!(true);
    if include_usage {
        b["stream_options"] = json!({ "include_usage": true });
    }
    b
}

fn ask(text: &str) -> Value {
    json!({ "model": "emulator-chat", "messages": [{ "role": "system", "content": "Be brief." }, { "role": "user", "content": text }] })
}

fn content_of(chunks: &[Value]) -> String {
    chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect()
}

/// Checks what every chunk of one stream shares: object, id, created, model, the choice's shape.
fn check_envelope(chunks: &[Value]) {
    let first = &chunks[0];
    assert!(first["id"].as_str().unwrap().starts_with("chatcmpl-"));
    for c in chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!((&c["id"], &c["created"], &c["model"]), (&first["id"], &first["created"], &first["model"]), "{c}");
        assert!(c["created"].is_i64());
        for choice in c["choices"].as_array().unwrap() {
            assert_eq!(choice["index"], 0);
            assert!(choice["logprobs"].is_null() && choice.get("logprobs").is_some(), "{c}");
            assert!(choice["delta"].is_object(), "{c}");
        }
    }
}

#[tokio::test]
async fn a_streamed_answer_is_the_completion_in_chunks_with_usage_last() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let body = ask("Stream me the answer to question number 42, with a few more words than three.");
    let answer = whole(&emu, &body).await;
    let s = streamed(&emu, &streaming(&body, true)).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.headers["content-type"], "text/event-stream");
    assert!(s.headers.get("content-length").is_none(), "sent without a length");
    assert_eq!(s.headers["transfer-encoding"], "chunked");
    assert_eq!(s.version, reqwest::Version::HTTP_11);
    let chunks = s.chunks();
    check_envelope(&chunks);
    assert_eq!(chunks[0]["model"], "emulator-chat");
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({ "role": "assistant", "content": "" }));
    assert!(chunks[0]["choices"][0]["finish_reason"].is_null());

    let expected = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content_of(&chunks), expected);
    let pieces = chunks
        .iter()
        .filter(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str).is_some_and(|t| !t.is_empty()))
        .count();
    assert!(pieces > 3, "the content comes in several pieces: {pieces}");
    // Only the last chunk with a choice has a finish reason, with an empty delta.
    let (usage_chunk, rest) = chunks.split_last().unwrap();
    let finish = rest.last().unwrap();
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["finish_reason"], answer["choices"][0]["finish_reason"]);
    assert!(rest[..rest.len() - 1].iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
    // include_usage: one more chunk with no choices and the usage; every other chunk has usage null.
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"], answer["usage"], "the same usage as the non-streaming answer");
    assert!(usage_chunk["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(rest.iter().all(|c| c.get("usage") == Some(&Value::Null)), "usage: null before the last chunk");
    emu.stop().await;
}

#[tokio::test]
async fn without_include_usage_there_is_no_usage_chunk() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let body = ask("No usage for me, thanks.");
    let mut told_not_to = streaming(&body, false);
    told_not_to["stream_options"] = json!({ "include_usage": false });
    for b in [streaming(&body, false), told_not_to] {
        let chunks = streamed(&emu, &b).await.chunks();
        check_envelope(&chunks);
        assert!(chunks.iter().all(|c| c.get("usage").is_none()), "no usage field at all");
        assert!(chunks.iter().all(|c| c["choices"].as_array().unwrap().len() == 1));
        assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");
        assert_eq!(content_of(&chunks), whole(&emu, &body).await["choices"][0]["message"]["content"].as_str().unwrap());
    }
    emu.stop().await;
}

#[tokio::test]
async fn a_tool_call_streams_its_name_first_and_its_arguments_in_pieces() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let mut body = ask("What is the weather in Oslo today?");
    body["tools"] = json!([{ "type": "function", "function": { "name": "get_weather", "description": "Weather", "parameters": {
        "type": "object", "properties": { "city": { "type": "string" }, "days": { "type": "integer" } }, "required": ["city", "days"] } } }]);
    body["tool_choice"] = json!({ "type": "function", "function": { "name": "get_weather" } });
    let answer = whole(&emu, &body).await;
    let call = &answer["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let chunks = streamed(&emu, &streaming(&body, true)).await.chunks();
    check_envelope(&chunks);
    assert_eq!(content_of(&chunks), answer["choices"][0]["message"]["content"].as_str().unwrap());
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0")).collect();
    assert!(calls.len() > 2, "the arguments come in several chunks: {calls:?}");
    let first = calls[0];
    assert_eq!(first["index"], 0);
    assert!(first["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(first["type"], "function");
    assert_eq!(first["function"]["name"], "get_weather");
    for later in &calls[1..] {
        let keys: Vec<&String> = later.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["index", "function"], "{later}");
        assert_eq!(later["index"], 0);
        assert_eq!(later["function"].as_object().unwrap().keys().collect::<Vec<_>>(), ["arguments"]);
    }
    let arguments: String = calls.iter().map(|c| c["function"]["arguments"].as_str().unwrap()).collect();
    let parsed: Value = serde_json::from_str(&arguments).expect("the arguments put together are JSON");
    assert_eq!(parsed, serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap());
    assert_eq!(arguments, call["function"]["arguments"].as_str().unwrap());
    let (usage, rest) = chunks.split_last().unwrap();
    assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(rest.last().unwrap()["choices"][0]["delta"], json!({}));
    assert_eq!(usage["usage"], answer["usage"]);
    // Content comes before the tool call.
    let last_content = chunks.iter().rposition(|c| c.pointer("/choices/0/delta/content").is_some()).unwrap();
    let first_call = chunks.iter().position(|c| c.pointer("/choices/0/delta/tool_calls").is_some()).unwrap();
    assert!(last_content < first_call);
    emu.stop().await;
}

#[tokio::test]
async fn length_and_stop_strings_end_the_stream_as_they_end_the_answer() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let mut cut = ask("one two three four five six seven");
    cut["max_tokens"] = json!(3);
    let chunks = streamed(&emu, &streaming(&cut, false)).await.chunks();
    assert_eq!(content_of(&chunks), whole(&emu, &cut).await["choices"][0]["message"]["content"].as_str().unwrap());
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "length");

    let mut stopped = ask("alpha HALT beta");
    stopped["stop"] = json!(["HALT"]);
    let answer = whole(&emu, &stopped).await;
    let chunks = streamed(&emu, &streaming(&stopped, false)).await.chunks();
    assert_eq!(content_of(&chunks), answer["choices"][0]["message"]["content"].as_str().unwrap());
    let last = &chunks.last().unwrap()["choices"][0];
    assert_eq!(last["finish_reason"], "stop");
    assert_eq!(last["stop_reason"], "HALT", "vLLM's stop_reason, as the non-streaming choice has it");
    emu.stop().await;
}

#[tokio::test]
async fn a_stream_error_marker_ends_the_stream_with_an_error_event() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    for (code, ty) in [(503, "server_error"), (429, "rate_limit_error"), (500, "server_error")] {
        let body = ask(&format!("This one breaks halfway through its answer [[stream-error:{code}]]"));
        let s = streamed(&emu, &streaming(&body, true)).await;
        assert_eq!(s.status, 200, "the stream starts");
        assert_eq!(s.headers["content-type"], "text/event-stream");
        let events = s.chunks();
        let (error, before) = events.split_last().unwrap();
        assert!(!before.is_empty(), "a few chunks come first");
        check_envelope(before);
        assert_eq!(before[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(!content_of(before).is_empty(), "some content came before the error");
        assert!(before.iter().all(|c| c["choices"][0]["finish_reason"].is_null()), "no finish reason");
        assert!(before.iter().all(|c| c["usage"].is_null()), "no usage");
        let e = &error["error"];
        assert_eq!(e["code"], code);
        assert_eq!(e["type"], ty);
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(error.get("choices").is_none());
        // The same marker on a request that does not stream is ignored.
        let answer = whole(&emu, &body).await;
        assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    }
    emu.stop().await;
}

#[tokio::test]
async fn errors_before_the_stream_stay_http_errors() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    for (code, ty) in [(429, "rate_limit_error"), (400, "invalid_request_error"), (503, "server_error")] {
        let body = streaming(&ask(&format!("fail [[error:{code}]] [[stream-error:500]]")), true);
        let resp = post(&client(), &emu, &body).await;
        assert_eq!(resp.status().as_u16(), code);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(v["error"]["type"], ty);
    }
    // Retry-After: the first request gets 429, the next one its stream.
    let body = streaming(&ask("again [[retry-after:0.5]]"), true);
    let resp = post(&client(), &emu, &body).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "0.5");
    let chunks = streamed(&emu, &body).await.chunks();
    assert!(content_of(&chunks).contains("again"));
    // A body without messages is refused before any stream.
    let resp = post(&client(), &emu, &json!({ "model": "m", "stream": true })).await;
    assert_eq!(resp.status(), 400);
    emu.stop().await;
}

#[tokio::test]
async fn the_stream_is_the_same_over_cleartext_http2() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let body = ask("Over h2c, please, in several small pieces of text.");
    let s = streamed_with(&h2, &emu, &streaming(&body, true)).await;
    assert_eq!(s.version, reqwest::Version::HTTP_2);
    assert_eq!(s.status, 200);
    assert_eq!(s.headers["content-type"], "text/event-stream");
    let over_h1 = streamed(&emu, &streaming(&body, true)).await;
    let (a, b) = (s.chunks(), over_h1.chunks());
    assert_eq!(a.len(), b.len());
    assert_eq!(content_of(&a), content_of(&b));
    assert_eq!(a.last().unwrap()["usage"], b.last().unwrap()["usage"]);
    // The mid-stream error too.
    let broken = streamed_with(&h2, &emu, &streaming(&ask("h2c breaks [[stream-error:503]]"), false)).await.chunks();
    assert_eq!(broken.last().unwrap()["error"]["code"], 503);
    emu.stop().await;
}
