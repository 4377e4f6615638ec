//! Flush rules: the record cap, the byte cap, the timer of the oldest request, and validation and
//! back-pressure at submit.

mod common;

use std::time::Duration;

use bedrock_batch_core::{Backends, BatchConfig, Engine, ErrorName, InvokeOptions, Request};
use common::*;

#[tokio::test(start_paused = true)]
async fn a_burst_of_250_with_max_100_makes_two_full_jobs_at_once_and_pads_the_last_50_at_the_timeout() {
    let h = start(BatchConfig { max_batch_size: 100, ..config() });
    let reqs = h.submit_n("q", 250);
    h.idle().await;

    let uploads = h.fake.uploads();
    assert_eq!(uploads.len(), 2, "two full batches go at once");
    let prompts = |u: &Upload| {
        u.records.iter().filter_map(|r| r.prompt.clone()).filter(|p| p.starts_with("q-")).collect::<Vec<_>>()
    };
    assert_eq!(prompts(&uploads[0]).len(), 100);
    assert_eq!(prompts(&uploads[1]).len(), 100);
    assert_eq!(uploads[0].records.len(), 100, "a full batch has no fillers");
    assert_eq!(h.engine.stats().queued, 50, "the rest waits for its timer");

    h.until(59.9).await;
    assert_eq!(h.fake.uploads().len(), 2, "the remaining 50 wait for batchTimeout");

    h.until(60.1).await;
    let uploads = h.fake.uploads();
    assert_eq!(uploads.len(), 3);
    assert_eq!(prompts(&uploads[2]).len(), 50, "the last batch has the 50 left");
    assert_eq!(uploads[2].records.len(), 100, "and is padded to minBatchSize");
    assert_eq!(h.engine.stats().padded, 50);

    // Every request was in exactly one batch.
    let mut all: Vec<String> = uploads.iter().flat_map(prompts).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 250);

    h.sink.wait_for(250).await;
    h.assert_answered(&reqs);
    assert_eq!(h.fake.jobs().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn no_job_ever_holds_more_than_max_batch_size_records_across_bursts_flushes_and_timers() {
    let h = start(BatchConfig { max_batch_size: 30, min_batch_size: 1, ..config() });
    let mut reqs = h.submit_n("a", 7);
    h.engine.flush();
    h.idle().await;
    reqs.extend(h.submit_n("b", 95));
    h.idle().await;
    h.until(10.0).await;
    reqs.extend(h.submit_n("c", 64));
    h.engine.flush();
    reqs.extend(h.submit_n("d", 31));
    h.sink.wait_for(reqs.len()).await;

    let uploads = h.fake.uploads();
    for u in &uploads {
        assert!(u.records.len() <= 30, "a job of {} records exceeds maxBatchSize 30", u.records.len());
    }
    // 7 by flush | 30 30 30 (5 wait) | 5+64 -> 30 30, 9 by flush | 30 (1 waits for its timer) | 1
    let sizes: Vec<usize> = uploads.iter().map(|u| u.records.len()).collect();
    assert_eq!(sizes, vec![7, 30, 30, 30, 30, 30, 9, 30, 1]);
    h.assert_answered(&reqs);
}

#[tokio::test(start_paused = true)]
async fn padding_never_pushes_a_job_above_max_batch_size() {
    // maxBatchSize is a hard cap; minBatchSize keeps its default of 100. Either the engine
    // refuses the contradiction, or it must not build a 100-record job.
    let fake = std::sync::Arc::new(FakeBatch::default());
    let sink = std::sync::Arc::new(Collect::default());
    let backends = Backends { batch: Some(fake.clone()), ..Default::default() };
    let Ok(engine) =
        Engine::start(engine_config(BatchConfig { max_batch_size: 10, ..config() }), backends, sink.clone())
    else {
        return; // refusing minBatchSize > maxBatchSize is a valid answer
    };
    for i in 0..10 {
        engine.submit(MODEL, body(&format!("q-{i}")), InvokeOptions::default()).unwrap();
    }
    sink.wait_for(10).await;
    for u in fake.uploads() {
        assert!(
            u.records.len() <= 10,
            "maxBatchSize is 10 but a job was created with {} records ({} of them fillers)",
            u.records.len(),
            u.records.len() - 10
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_byte_cap_cuts_a_batch_before_its_file_would_exceed_max_file_bytes() {
    let line = Request::new(MODEL, body("q-0"), InvokeOptions::default()).unwrap().line_bytes();
    let cap = line * 7 / 2; // room for three lines, not four
    let h = start(BatchConfig { min_batch_size: 1, max_file_bytes: cap, ..config() });
    let reqs = h.submit_n("q", 10);
    h.idle().await;

    let uploads = h.fake.uploads();
    let sizes: Vec<usize> = uploads.iter().map(|u| u.records.len()).collect();
    assert_eq!(sizes, vec![3, 3, 3], "full files go at once, three lines each");
    for u in &uploads {
        assert!(u.bytes <= cap, "an input file of {} bytes exceeds maxFileBytes {cap}", u.bytes);
    }
    assert_eq!(h.engine.stats().queued, 1);
    h.sink.wait_for(10).await;
    h.assert_answered(&reqs);
    assert_eq!(h.fake.uploads().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn after_a_byte_cap_flush_the_leftover_request_waits_a_full_timeout_from_its_own_arrival() {
    let line = Request::new(MODEL, body("q-0"), InvokeOptions::default()).unwrap().line_bytes();
    let h = start(BatchConfig { min_batch_size: 1, max_file_bytes: line * 7 / 2, ..config() });
    for (i, t) in [0.0, 10.0, 20.0, 30.0].into_iter().enumerate() {
        h.until(t).await;
        h.submit(&format!("q-{i}"));
    }
    h.idle().await;
    assert_eq!(h.fake.uploads().len(), 1, "the fourth request filled the file: three go at t=30");
    assert_eq!(h.engine.stats().queued, 1);

    // The oldest waiting request is now q-3, which arrived at t=30: its batch is due at t=90.
    h.until(89.0).await;
    assert_eq!(
        h.fake.uploads().len(),
        1,
        "q-3 (arrived t=30) was flushed at t={:.0}, before batchTimeout after its own arrival; the timer still counted from q-0, which had already gone",
        secs_since(h.t0, h.fake.uploads()[1].at)
    );
    h.until(90.5).await;
    assert_eq!(h.fake.uploads().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_timeout_counts_from_the_oldest_request_not_the_last() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    h.submit("q-0");
    h.until(40.0).await;
    h.submit("q-1");
    h.until(59.0).await;
    h.submit("q-2");
    h.until(59.9).await;
    assert!(h.fake.uploads().is_empty());

    h.until(60.1).await;
    let uploads = h.fake.uploads();
    assert_eq!(uploads.len(), 1, "flushed 60 s after the oldest, although the last came 1 s ago");
    let t = secs_since(h.t0, uploads[0].at);
    assert!((60.0..60.1).contains(&t), "uploaded at t={t}");
    let mut prompts: Vec<_> = uploads[0].records.iter().filter_map(|r| r.prompt.clone()).collect();
    prompts.sort();
    assert_eq!(prompts, ["q-0", "q-1", "q-2"]);
}

#[tokio::test(start_paused = true)]
async fn nothing_is_flushed_before_batch_timeout() {
    let h = start(BatchConfig { batch_timeout: Duration::from_secs(300), ..config() });
    h.submit_n("q", 99);
    h.until(299.99).await;
    assert!(h.fake.uploads().is_empty(), "nothing is uploaded before batchTimeout");
    assert!(h.fake.create_calls().is_empty());
    let s = h.engine.stats();
    assert_eq!((s.queued, s.in_flight, s.padded), (99, 0, 0));

    h.until(300.01).await;
    assert_eq!(h.fake.uploads().len(), 1);
    assert_eq!(h.engine.stats().queued, 0);
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_oldest_request_moves_the_timer_to_the_next_oldest() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    let first = h.submit("q-0");
    h.until(30.0).await;
    h.submit("q-1");
    h.until(40.0).await;
    h.engine.cancel(first);
    h.idle().await;
    assert_eq!(h.engine.stats().queued, 1);

    // q-1, now the oldest waiting request, arrived at t=30: due at t=90.
    h.until(89.0).await;
    assert!(
        h.fake.uploads().is_empty(),
        "q-1 (arrived t=30) was flushed at t={:.0}: the timer kept counting from the cancelled q-0",
        secs_since(h.t0, h.fake.uploads()[0].at)
    );
    h.until(90.5).await;
    let uploads = h.fake.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].records.iter().filter_map(|r| r.prompt.clone()).collect::<Vec<_>>(), ["q-1"]);
}

#[tokio::test(start_paused = true)]
async fn each_model_id_gets_its_own_queue_and_its_own_jobs() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    for i in 0..3 {
        h.engine.submit(MODEL, body(&format!("claude-{i}")), InvokeOptions::default()).unwrap();
        h.engine.submit(OTHER_MODEL, body(&format!("llama-{i}")), InvokeOptions::default()).unwrap();
    }
    h.engine.flush();
    h.sink.wait_for(6).await;
    let jobs = h.fake.jobs();
    assert_eq!(jobs.len(), 2);
    for j in jobs {
        let prefix = if j.spec.model_id == MODEL { "claude-" } else { "llama-" };
        assert!(
            j.records.iter().all(|r| r.prompt.as_deref().unwrap().starts_with(prefix)),
            "job for {} mixes models",
            j.spec.model_id
        );
        assert_eq!(j.records.len(), 3);
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_that_is_not_json_is_rejected_at_submit_and_never_reaches_a_batch() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    let good = h.submit_n("good", 3);
    let mut bad_ids = Vec::new();
    for bad in [&b"not json"[..], b"{\"a\":", b"[1,2,3]", b""] {
        bad_ids.push((h.engine.submit(MODEL, bad.to_vec(), InvokeOptions::default()).unwrap(), bad));
    }
    h.idle().await;
    for (id, bad) in bad_ids {
        let e = err_of(h.sink.get(id));
        assert_eq!(e.name, ErrorName::ValidationException, "{:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(h.engine.stats().queued, 3, "rejected requests are not queued");
    h.engine.flush();
    h.sink.wait_for(7).await;
    let uploads = h.fake.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].records.len(), 3, "the batch holds the good requests only");
    h.assert_answered(&good);
    assert_eq!(h.sink.count(), 7, "three answers and four rejections");
}

#[tokio::test(start_paused = true)]
async fn a_content_type_other_than_json_is_rejected_at_submit() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    let text = InvokeOptions { content_type: Some("text/plain".into()), ..Default::default() };
    let id = h.engine.submit(MODEL, body("q"), text).unwrap();
    h.idle().await;
    let e = err_of(h.sink.get(id));
    assert_eq!(e.name, ErrorName::ValidationException);
    assert!(e.message.contains("text/plain"), "{}", e.message);
    assert_eq!(h.engine.stats().queued, 0);

    // A missing content type means application/json, parameters allowed.
    h.engine.submit(MODEL, body("none"), InvokeOptions::default()).unwrap();
    h.engine
        .submit(
            MODEL,
            body("charset"),
            InvokeOptions { content_type: Some("application/json; charset=utf-8".into()), ..Default::default() },
        )
        .unwrap();
    assert_eq!(h.engine.stats().queued, 2);
}

#[tokio::test(start_paused = true)]
async fn submitting_beyond_max_queued_requests_is_throttled_naming_the_limit() {
    let h = start(BatchConfig { max_queued_requests: 5, min_batch_size: 1, ..config() });
    h.submit_n("q", 5);
    let id = h.engine.submit(MODEL, body("one-too-many"), InvokeOptions::default()).unwrap();
    h.idle().await;
    let e = err_of(h.sink.get(id));
    assert_eq!(e.name, ErrorName::ThrottlingException);
    assert!(e.message.contains("maxQueuedRequests") && e.message.contains('5'), "{}", e.message);
    assert_eq!(h.engine.stats().queued, 5);

    // Once the queue drains, submit works again.
    h.engine.flush();
    h.idle().await;
    assert_eq!(h.engine.stats().queued, 0);
    h.engine.submit(MODEL, body("later"), InvokeOptions::default()).unwrap();
}

#[tokio::test(start_paused = true)]
async fn padding_never_pushes_an_input_file_above_max_file_bytes() {
    // Large real records, small fillers: a cut of 3 real records fills the file, so padding
    // it to minBatchSize 5 overflows. Two real records and three fillers would fit.
    let prompt = |i: usize| format!("q-{i}-{}", "x".repeat(1000));
    let line = Request::new(MODEL, body(&prompt(0)), InvokeOptions::default()).unwrap().line_bytes();
    let cap = 3 * line + 50;
    let h = start(BatchConfig { min_batch_size: 5, max_file_bytes: cap, ..config() });
    for i in 0..6 {
        h.submit(&prompt(i));
    }
    h.sink.wait_for(6).await;
    for u in h.fake.uploads() {
        let real = u.records.iter().filter(|r| r.prompt.as_deref().is_some_and(|p| p.starts_with("q-"))).count();
        assert!(
            u.bytes <= cap,
            "an input file of {} bytes ({real} requests + {} fillers) exceeds maxFileBytes {cap}",
            u.bytes,
            u.records.len() - real
        );
        assert!(u.records.len() >= 5, "each job still has minBatchSize records");
    }
}
