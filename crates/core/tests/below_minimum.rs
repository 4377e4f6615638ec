//! `belowMinimum`: pad, direct, wait; `flush()` below the minimum; options batch cannot honour.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use bedrock_batch_core::{BatchConfig, BelowMinimum, InvokeOptions};
use common::*;

fn direct_answer(prompt: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "direct": prompt })).unwrap()
}

#[tokio::test(start_paused = true)]
async fn pad_fills_a_small_batch_with_fillers_that_are_counted_and_never_settled() {
    let h = start(BatchConfig { min_batch_size: 100, ..config() });
    let reqs = h.submit_n("q", 30);
    let ids: Vec<u64> = reqs.iter().map(|r| r.0).collect();
    h.until(60.5).await;

    let uploads = h.fake.uploads();
    assert_eq!(uploads.len(), 1);
    let records = &uploads[0].records;
    assert_eq!(records.len(), 100, "padded up to minBatchSize");
    let real = h.record_ids(&ids);
    let fillers: Vec<_> = records.iter().filter(|r| !real.contains(&r.record_id)).collect();
    assert_eq!(fillers.len(), 70);
    for f in &fillers {
        // The cheapest filler for Claude: one output token.
        assert_eq!(f.model_input["max_tokens"], 1, "filler {f:?}");
        assert!(
            f.record_id.chars().all(|c| c.is_ascii_alphanumeric()),
            "filler record ids are alphanumeric: {}",
            f.record_id
        );
        if let Some(id) = bedrock_batch_core::jsonl::parse_record_id(&f.record_id) {
            assert!(!ids.contains(&id), "filler record {} maps to request {id}", f.record_id);
        }
    }
    assert_eq!(h.engine.stats().padded, 70);

    h.sink.wait_for(30).await;
    // The fake answered the fillers too; still, only the 30 callers settle, once each.
    h.until(1000.0).await;
    h.sink.assert_exactly(&ids);
    h.assert_answered(&reqs);
}

#[tokio::test(start_paused = true)]
async fn direct_sends_a_batch_below_the_minimum_on_demand_instead_of_padding() {
    let h = start(BatchConfig { min_batch_size: 100, below_minimum: BelowMinimum::Direct, ..config() });
    let reqs = h.submit_n("q", 30);
    h.until(59.9).await;
    assert!(h.direct.calls().is_empty(), "nothing goes before batchTimeout");

    h.sink.wait_for(30).await;
    assert!(h.fake.uploads().is_empty(), "no batch job below the minimum");
    assert_eq!(h.direct.calls().len(), 30);
    let s = h.engine.stats();
    assert_eq!((s.sent_direct, s.padded, s.in_flight, s.queued), (30, 0, 0, 0));
    for (id, prompt) in &reqs {
        assert_eq!(h.sink.get(*id).unwrap().body, direct_answer(prompt));
    }
}

#[tokio::test(start_paused = true)]
async fn direct_sends_only_the_remainder_below_the_minimum_on_demand() {
    let h =
        start(BatchConfig { min_batch_size: 50, max_batch_size: 100, below_minimum: BelowMinimum::Direct, ..config() });
    let reqs = h.submit_n("q", 130);
    h.sink.wait_for(130).await;
    let uploads = h.fake.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].records.len(), 100, "a full batch goes as a job, unpadded");
    assert_eq!(h.direct.calls().len(), 30, "the 30 left go on-demand");
    assert_eq!(h.engine.stats().sent_direct, 30);
    let batched: HashSet<String> = uploads[0].records.iter().filter_map(|r| r.prompt.clone()).collect();
    for p in h.direct.prompts() {
        assert!(!batched.contains(&p), "{p} was sent twice");
    }
    assert_eq!(h.sink.all().iter().filter(|s| s.1.is_ok()).count(), 130);
    let _ = reqs;
}

#[tokio::test(start_paused = true)]
async fn wait_holds_a_small_queue_past_batch_timeout_until_enough_requests_arrive() {
    let h = start(BatchConfig { min_batch_size: 10, below_minimum: BelowMinimum::Wait, ..config() });
    let mut reqs = h.submit_n("early", 4);
    h.until(200.0).await;
    assert!(h.fake.uploads().is_empty(), "4 < minBatchSize: held past batchTimeout");
    assert!(h.direct.calls().is_empty());
    assert_eq!(h.engine.stats().queued, 4);

    reqs.extend(h.submit_n("late", 6));
    h.idle().await;
    let uploads = h.fake.uploads();
    assert_eq!(uploads.len(), 1, "10 reached the minimum and the oldest is past batchTimeout: flushed now");
    assert!(h.now() < 200.1, "flushed at t={}", h.now());
    assert_eq!(uploads[0].records.len(), 10, "no fillers needed");
    assert_eq!(h.engine.stats().padded, 0);
    h.sink.wait_for(10).await;
    h.assert_answered(&reqs);
}

#[tokio::test(start_paused = true)]
async fn wait_pads_once_max_wait_has_passed_since_the_oldest_request() {
    let h = start(BatchConfig {
        min_batch_size: 10,
        below_minimum: BelowMinimum::Wait,
        max_wait: Duration::from_secs(600),
        ..config()
    });
    let mut reqs = h.submit_n("a", 3);
    h.until(300.0).await;
    reqs.extend(h.submit_n("b", 2));
    h.until(599.9).await;
    assert!(h.fake.uploads().is_empty(), "held until maxWait after the oldest");

    h.until(600.1).await;
    let uploads = h.fake.uploads();
    assert_eq!(uploads.len(), 1, "padded at maxWait");
    assert_eq!(uploads[0].records.len(), 10);
    assert_eq!(h.engine.stats().padded, 5);
    h.sink.wait_for(5).await;
    h.assert_answered(&reqs);
}

#[tokio::test(start_paused = true)]
async fn flush_below_the_minimum_pads_at_once() {
    let h = start(BatchConfig { min_batch_size: 100, ..config() });
    let reqs = h.submit_n("q", 5);
    h.engine.flush();
    h.idle().await;
    let uploads = h.fake.uploads();
    assert_eq!(uploads.len(), 1, "flush() does not wait for batchTimeout");
    assert_eq!(uploads[0].records.len(), 100);
    assert_eq!(h.engine.stats().padded, 95);
    h.sink.wait_for(5).await;
    h.assert_answered(&reqs);
}

#[tokio::test(start_paused = true)]
async fn flush_below_the_minimum_pads_at_once_even_under_wait() {
    let h = start(BatchConfig { min_batch_size: 100, below_minimum: BelowMinimum::Wait, ..config() });
    let reqs = h.submit_n("q", 5);
    h.engine.flush();
    h.idle().await;
    let uploads = h.fake.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].records.len(), 100);
    assert_eq!(h.engine.stats().padded, 95);
    h.sink.wait_for(5).await;
    h.assert_answered(&reqs);
}

#[tokio::test(start_paused = true)]
async fn flush_below_the_minimum_goes_on_demand_under_direct() {
    let h = start(BatchConfig { min_batch_size: 100, below_minimum: BelowMinimum::Direct, ..config() });
    let reqs = h.submit_n("q", 5);
    h.engine.flush();
    h.sink.wait_for(5).await;
    assert!(h.now() < 1.0, "settled at t={}", h.now());
    assert!(h.fake.uploads().is_empty());
    assert_eq!(h.engine.stats().sent_direct, 5);
    for (id, prompt) in &reqs {
        assert_eq!(h.sink.get(*id).unwrap().body, direct_answer(prompt));
    }
}

#[tokio::test(start_paused = true)]
async fn requests_with_a_guardrail_or_trace_enabled_go_on_demand_and_on_demand_tiers_stay_in_batch() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    let on_demand = [
        (
            "guardrail",
            InvokeOptions {
                guardrail_identifier: Some("gr-1".into()),
                guardrail_version: Some("1".into()),
                ..Default::default()
            },
        ),
        ("trace", InvokeOptions { trace: Some("ENABLED".into()), ..Default::default() }),
        ("trace-full", InvokeOptions { trace: Some("ENABLED_FULL".into()), ..Default::default() }),
    ];
    let batched = [
        ("trace-off", InvokeOptions { trace: Some("DISABLED".into()), ..Default::default() }),
        (
            "tier",
            InvokeOptions {
                performance_config_latency: Some("optimized".into()),
                service_tier: Some("priority".into()),
                ..Default::default()
            },
        ),
    ];
    let mut direct_ids = Vec::new();
    for (p, o) in on_demand {
        direct_ids.push((h.engine.submit(MODEL, body(p), o).unwrap(), p));
    }
    let mut batch_ids = Vec::new();
    for (p, o) in batched {
        batch_ids.push((h.engine.submit(MODEL, body(p), o).unwrap(), p.to_string()));
    }
    h.sink.wait_for(3).await;
    assert!(h.now() < 1.0, "on-demand requests do not wait for a batch");
    let mut prompts = h.direct.prompts();
    prompts.sort();
    assert_eq!(prompts, ["guardrail", "trace", "trace-full"]);
    for (id, p) in &direct_ids {
        assert_eq!(h.sink.get(*id).unwrap().body, direct_answer(p));
    }
    let s = h.engine.stats();
    assert_eq!((s.sent_direct, s.queued), (3, 2));

    h.sink.wait_for(5).await;
    let uploads = h.fake.uploads();
    assert_eq!(uploads.len(), 1);
    let mut in_batch: Vec<String> = uploads[0].records.iter().filter_map(|r| r.prompt.clone()).collect();
    in_batch.sort();
    assert_eq!(in_batch, ["tier", "trace-off"]);
    h.assert_answered(&batch_ids);
}
