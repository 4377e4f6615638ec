//! A dry run's plan and the cost cap, on the fake back-ends with paused time.

mod common;

use bedrock_batch_core::config::{BatchConfig, BelowMinimum, EngineConfig, Price};
use bedrock_batch_core::plan::InputCount;
use bedrock_batch_core::{ErrorName, InvokeOptions};
use common::*;

fn small() -> BatchConfig {
    BatchConfig { min_batch_size: 10, max_batch_size: 10, max_concurrent_jobs: 1, ..config() }
}

fn with(batch: BatchConfig, f: impl FnOnce(&mut EngineConfig)) -> EngineConfig {
    let mut c = engine_config(batch);
    f(&mut c);
    c
}

/// The upper-bound batch cost of one request of [`body`]: its text is "bedrock-2023-05-31",
/// "user" and the prompt (one token per 4 bytes), and 64 output tokens, at Claude 3 Haiku's
/// shipped price, half for batch.
fn batch_cost(prompt: &str) -> f64 {
    let input = (18 + 4 + prompt.len()).div_ceil(4) as f64;
    (input / 1000.0 * 0.00025 + 64.0 / 1000.0 * 0.00125) * 0.5
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_forms_the_batches_sends_nothing_and_rejects_every_request_once_the_plan_is_read() {
    let h = start_with(with(small(), |c| c.dry_run = true), std::sync::Arc::new(FakeBatch::default()));
    let reqs = h.submit_n("q", 25);
    h.idle().await;
    assert!(reqs.iter().all(|(id, _)| !h.sink.has(*id)), "nobody waits less than the plan");
    let plan = h.engine.plan().await.expect("a plan");
    assert_eq!(plan.models.len(), 1);
    let m = &plan.models[0];
    // 25 requests in jobs of 10: 10, 10 and 5 padded with 5 fillers.
    assert_eq!((m.jobs, m.records, m.padded_records, m.requests_by_tier), (3, 25, 5, [25, 0, 0]));
    assert_eq!(m.output_tokens_upper_bound, 25 * 64 + 5, "64 per request, 1 per filler");
    // The fake back-end has no CountTokens: the local estimate.
    assert_eq!(m.input_count, InputCount::Estimated);
    assert!(m.cost_usd.unwrap() < m.standard_cost_usd.unwrap());
    h.idle().await;
    for (id, _) in &reqs {
        assert_eq!(err_of(h.sink.get(*id)).name, ErrorName::DryRunException);
    }
    assert!(h.fake.uploads().is_empty() && h.fake.create_calls().is_empty(), "nothing uploaded or created");
    assert!(h.direct.calls().is_empty(), "nothing sent on-demand");
    assert_eq!((h.engine.stats().queued, h.engine.stats().in_flight), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_counts_the_requests_that_would_go_on_demand_at_the_standard_tier() {
    let batch = BatchConfig { below_minimum: BelowMinimum::Direct, ..small() };
    let h = start_with(with(batch, |c| c.dry_run = true), std::sync::Arc::new(FakeBatch::default()));
    let reqs = h.submit_n("q", 13);
    let plan = h.engine.plan().await.expect("a plan");
    assert_eq!(plan.models[0].requests_by_tier, [10, 0, 3], "a full job; the 3 below the minimum on-demand");
    assert_eq!(plan.jobs(), 1);
    h.idle().await;
    assert!(reqs.iter().all(|(id, _)| err_of(h.sink.get(*id)).name == ErrorName::DryRunException));
    assert!(h.direct.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn closing_a_dry_run_rejects_what_it_holds_and_plan_needs_a_dry_run() {
    let h = start_with(with(small(), |c| c.dry_run = true), std::sync::Arc::new(FakeBatch::default()));
    let id = h.submit("one");
    h.engine.close().await;
    assert_eq!(err_of(h.sink.get(id)).name, ErrorName::DryRunException);

    let real = start(small());
    let e = real.engine.plan().await.expect_err("not a dry run");
    assert_eq!(e.name, ErrorName::ValidationException);
    assert!(e.message.contains("dryRun"), "{}", e.message);
}

#[tokio::test(start_paused = true)]
async fn batches_whose_cost_would_cross_the_cap_are_not_sent_and_their_requests_reject() {
    // Three batches of 10 requests; the cap lets two through.
    let one_batch: f64 = (0..10).map(|i| batch_cost(&format!("q-{i}"))).sum();
    let cap = one_batch * 2.5;
    let h = start_with(with(small(), |c| c.max_cost_usd = Some(cap)), std::sync::Arc::new(FakeBatch::default()));
    let reqs = h.submit_n("q", 30);
    h.engine.flush();
    while reqs.iter().any(|(id, _)| !h.sink.has(*id)) {
        h.until(h.now() + 1.0).await;
    }
    assert_eq!(h.fake.create_calls().len(), 2, "the third batch's job was never created");
    let refused: Vec<_> = reqs.iter().filter_map(|(id, _)| h.sink.get(*id).err()).collect();
    assert_eq!(refused.len(), 10);
    let e = &refused[0];
    assert_eq!(e.name, ErrorName::CostLimitExceededException);
    let spend = e.spend().expect("the spend");
    assert!((spend.cap_usd - cap).abs() < 1e-12);
    assert!(spend.committed_usd + spend.estimate_usd > cap && spend.committed_usd <= cap);
    let s = h.engine.stats();
    assert_eq!(s.max_cost_usd, Some(cap));
    assert!((s.committed_usd.unwrap() - spend.committed_usd).abs() < 1e-12);
    assert_eq!((s.queued, s.in_flight), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn under_a_cap_on_demand_calls_commit_their_standard_cost_too() {
    let batch = BatchConfig { below_minimum: BelowMinimum::Direct, min_batch_size: 100, ..small() };
    let cap = batch_cost("q-0") * 2.0 * 1.5; // one and a half on-demand calls
    let h = start_with(with(batch, |c| c.max_cost_usd = Some(cap)), std::sync::Arc::new(FakeBatch::default()));
    let reqs = h.submit_n("q", 3);
    h.engine.flush();
    while reqs.iter().any(|(id, _)| !h.sink.has(*id)) {
        h.until(h.now() + 1.0).await;
    }
    let names: Vec<_> = reqs.iter().map(|(id, _)| h.sink.get(*id).err().map(|e| e.name)).collect();
    assert_eq!(names.iter().filter(|n| n.is_none()).count(), 1, "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == Some(ErrorName::CostLimitExceededException)).count(), 2);
    assert_eq!(h.direct.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn under_a_cap_a_request_without_a_maximum_or_a_price_is_rejected_alone() {
    let pricing =
        vec![("my.model-v1:0".to_string(), Price { input_per_1k_tokens: 0.001, output_per_1k_tokens: 0.002 })];
    let h = start_with(
        with(small(), |c| {
            c.max_cost_usd = Some(1.0);
            c.pricing = pricing;
        }),
        std::sync::Arc::new(FakeBatch::default()),
    );
    let unbounded = h
        .engine
        .submit(
            MODEL,
            br#"{"anthropic_version":"bedrock-2023-05-31","messages":[]}"#.to_vec(),
            InvokeOptions::default(),
        )
        .unwrap();
    let unpriced = h.engine.submit("no.price-v1:0", body("x"), InvokeOptions::default()).unwrap();
    let fine = h.submit("fine");
    h.idle().await;
    let e = err_of(h.sink.get(unbounded));
    assert_eq!(e.name, ErrorName::ValidationException);
    assert!(e.message.contains("max_tokens"), "{}", e.message);
    let e = err_of(h.sink.get(unpriced));
    assert!(e.message.contains("no.price-v1:0") && e.message.contains("pricing"), "{}", e.message);
    assert!(!h.sink.has(fine), "a good request waits for its batch");
}

#[tokio::test(start_paused = true)]
async fn the_journal_keeps_the_committed_spend_so_a_restart_cannot_spend_the_cap_again() {
    let dir = tempfile_dir("spend-journal");
    let journal = bedrock_batch_core::config::JournalConfig { path: dir.join("journal.db"), retention_days: 7.0 };
    let one_batch: f64 = (0..10).map(|i| batch_cost(&format!("q-{i}"))).sum();
    let cap = one_batch * 1.5;
    let config = |j: &bedrock_batch_core::config::JournalConfig| {
        with(small(), |c| {
            c.max_cost_usd = Some(cap);
            c.journal = Some(j.clone());
        })
    };
    let first = start_with(config(&journal), std::sync::Arc::new(FakeBatch::default()));
    let reqs = first.submit_n("q", 10);
    first.engine.flush();
    while reqs.iter().any(|(id, _)| !first.sink.has(*id)) {
        first.until(first.now() + 1.0).await;
    }
    first.assert_answered(&reqs);
    first.engine.close().await;

    // The next process of the same journal starts from what was committed: a second batch
    // would cross the cap.
    let second = start_with(config(&journal), std::sync::Arc::new(FakeBatch::default()));
    assert!((second.engine.stats().committed_usd.unwrap() - one_batch).abs() < 1e-9);
    let more = second.submit_n("r", 10);
    second.engine.flush();
    while more.iter().any(|(id, _)| !second.sink.has(*id)) {
        second.until(second.now() + 1.0).await;
    }
    assert!(more.iter().all(|(id, _)| err_of(second.sink.get(*id)).name == ErrorName::CostLimitExceededException));
    assert!(second.fake.create_calls().is_empty());
    second.engine.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(common::stores::unique(name));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn a_group_shares_one_cap_through_its_store() {
    let Some(url) = common::stores::pg_url() else { return };
    let group = common::stores::unique("spend-group");
    let store = bedrock_batch_core::config::StoreConfig {
        connect_timeout: std::time::Duration::from_secs(30),
        ..common::stores::store_config(&url, &group)
    };
    // Prompts of 3 characters and an index: every batch costs about the same.
    let one_batch: f64 = (0..10).map(|i| batch_cost(&format!("q-{i}"))).sum();
    let cap = one_batch * 2.5;
    let batch = BatchConfig { min_batch_size: 1, batch_timeout: std::time::Duration::from_millis(200), ..small() };
    let fake = std::sync::Arc::new(FakeBatch::default());
    let config = || {
        with(batch.clone(), |c| {
            c.max_cost_usd = Some(cap);
            c.store = Some(store.clone());
        })
    };
    // Two clients of one group, 20 requests each: the group's cap lets two batches through.
    let a = start_with(config(), fake.clone());
    let b = start_with(config(), fake.clone());
    let mut sent = Vec::new();
    // (Distinct prompts: a group shares the answers of identical requests.)
    for (h, prefix) in [(&a, "q"), (&b, "u")] {
        for i in 0..10 {
            let p = format!("{prefix}-{i}");
            sent.push((h, h.engine.submit(MODEL, body(&p), InvokeOptions::default()).unwrap()));
        }
    }
    for (h, prefix) in [(&a, "s"), (&b, "t")] {
        for i in 0..10 {
            let p = format!("{prefix}-{i}");
            sent.push((h, h.engine.submit(MODEL, body(&p), InvokeOptions::default()).unwrap()));
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while sent.iter().any(|(h, id)| !h.sink.has(*id)) {
        assert!(std::time::Instant::now() < deadline, "every request settles");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let refused = sent.iter().filter(|(h, id)| h.sink.get(*id).is_err()).count();
    assert_eq!(fake.create_calls().len(), 2, "the group's jobs stay under its cap");
    assert_eq!(refused, 20, "the other two batches were refused");
    a.engine.close().await;
    b.engine.close().await;
}
