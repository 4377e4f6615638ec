//! close(), destroy() and stats().

mod common;

use std::time::Duration;

use bedrock_batch_core::backend::{JobInfo, Tokens};
use bedrock_batch_core::{BatchConfig, BelowMinimum, ErrorName, InvokeOptions};
use common::*;
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn close_flushes_queued_requests_waits_for_their_jobs_and_then_rejects_submit() {
    let h = start(config());
    h.fake.on_status(|_| in_progress_then(2, status("Completed")));
    let reqs = h.submit_n("q", 7);
    h.engine.close().await;

    assert_eq!(h.sink.count(), 7, "close() returns once every request has settled");
    h.assert_answered(&reqs);
    let t = h.now();
    assert!(t >= 15.0, "close() waited for the job (3 polls of 5 s), returned at t={t}");
    assert!(t < 60.0, "close() flushed at once instead of waiting for batchTimeout, returned at t={t}");
    assert_eq!(h.fake.uploads()[0].records.len(), 100, "the queue below the minimum was padded");

    let e = h.engine.submit(MODEL, body("late"), InvokeOptions::default()).unwrap_err();
    assert_eq!(e.name, ErrorName::ClientClosedException);
    let s = h.engine.stats();
    assert_eq!((s.queued, s.in_flight), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_submit_after_close_began_is_rejected_while_earlier_requests_still_settle() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    h.fake.on_status(|_| in_progress_then(3, status("Completed")));
    let reqs = h.submit_n("q", 3);
    let engine = h.engine.clone();
    let closing = tokio::spawn(async move { engine.close().await });
    h.idle().await;
    assert!(!closing.is_finished(), "close() waits for the job");

    let e = h.engine.submit(MODEL, body("during-close"), InvokeOptions::default()).unwrap_err();
    assert_eq!(e.name, ErrorName::ClientClosedException);
    closing.await.unwrap();
    h.sink.assert_exactly(&reqs.iter().map(|r| r.0).collect::<Vec<_>>());
    h.assert_answered(&reqs);
}

#[tokio::test(start_paused = true)]
async fn close_waits_for_resubmitted_records_too() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    h.fake.on_status(|job| in_progress_then(1, status(if job == 0 { "PartiallyCompleted" } else { "Completed" })));
    h.fake.on_output(|c| if c.job == 0 && c.prompt.as_deref() == Some("q-3") { Out::Missing } else { Out::Ok });
    let reqs = h.submit_n("q", 5);
    h.engine.close().await;
    assert_eq!(h.sink.count(), 5, "close() returned before the resubmitted record settled");
    h.assert_answered(&reqs);
    assert_eq!(h.fake.jobs().len(), 2);
    assert!(h.now() < 60.0, "while closing, the resubmission is flushed at once (t={})", h.now());
}

#[tokio::test(start_paused = true)]
async fn close_sends_a_queue_below_the_minimum_on_demand_under_direct() {
    let h = start(BatchConfig { below_minimum: BelowMinimum::Direct, ..config() });
    let reqs = h.submit_n("q", 4);
    h.engine.close().await;
    assert_eq!(h.sink.count(), 4);
    assert!(h.fake.uploads().is_empty());
    assert_eq!(h.direct.calls().len(), 4);
    assert!(reqs.iter().all(|(id, _)| h.sink.get(*id).is_ok()));
}

#[tokio::test(start_paused = true)]
async fn close_with_nothing_pending_returns_at_once() {
    let h = start(config());
    tokio::time::timeout(Duration::from_secs(1), h.engine.close())
        .await
        .expect("close() of an idle engine returns at once");
}

#[tokio::test(start_paused = true)]
async fn destroy_settles_queued_requests_with_client_closed_exception() {
    let h = start(config());
    let reqs = h.submit_n("q", 5);
    h.idle().await;
    h.engine.destroy(false);
    h.idle().await;

    for (id, _) in &reqs {
        assert_eq!(err_of(h.sink.get(*id)).name, ErrorName::ClientClosedException);
    }
    assert_eq!(h.engine.stats().queued, 0);
    let e = h.engine.submit(MODEL, body("after"), InvokeOptions::default()).unwrap_err();
    assert_eq!(e.name, ErrorName::ClientClosedException);
    h.until(600.0).await;
    assert!(h.fake.uploads().is_empty(), "destroyed requests are never sent");
    assert_eq!(h.sink.count(), 5);
}

#[tokio::test(start_paused = true)]
async fn destroy_with_stop_jobs_stops_running_jobs_and_without_it_leaves_them_running() {
    for stop in [true, false] {
        let h = start(BatchConfig { min_batch_size: 1, ..config() });
        h.fake.on_status(|_| vec![status("InProgress")]);
        h.submit_n("q", 3);
        h.engine.flush();
        h.until(6.0).await; // created and polled once
        assert_eq!(h.fake.jobs().len(), 1);
        h.engine.destroy(stop);
        h.idle().await;
        let want = if stop { vec![h.fake.jobs()[0].arn.clone()] } else { vec![] };
        assert_eq!(h.fake.stopped(), want, "destroy({{ stopJobs: {stop} }})");
        let polls = h.fake.get_job_calls().len();
        h.until(600.0).await;
        assert_eq!(h.fake.get_job_calls().len(), polls, "a destroyed engine stops polling");
    }
}

#[tokio::test(start_paused = true)]
async fn stats_report_queued_in_flight_jobs_and_tokens_through_a_run() {
    let h = start(BatchConfig { min_batch_size: 1, job_name_prefix: "stats".into(), ..config() });
    h.fake.set_tokens(Some(Tokens { input: 1234, output: 567 }));
    h.fake.on_status(|_| {
        vec![
            JobInfo { status: "InProgress".into(), processed_record_count: Some(4), ..Default::default() },
            JobInfo {
                status: "Completed".into(),
                processed_record_count: Some(10),
                success_record_count: Some(9),
                error_record_count: Some(1),
                ..Default::default()
            },
        ]
    });
    h.fake
        .on_output(|c| if c.prompt.as_deref() == Some("q-9") { Out::Error(json!(400), "bad".into()) } else { Out::Ok });

    h.submit_n("q", 10);
    let s = h.engine.stats();
    assert_eq!((s.queued, s.in_flight, s.padded, s.resubmitted, s.sent_direct), (10, 0, 0, 0, 0));
    assert!(s.jobs.is_empty());

    h.engine.flush();
    h.idle().await;
    let s = h.engine.stats();
    assert_eq!((s.queued, s.in_flight), (0, 10));
    assert_eq!(s.jobs.len(), 1);
    let arn = h.fake.jobs()[0].arn.clone();
    let j = &s.jobs[0];
    assert_eq!(
        (j.job_arn.as_str(), j.model_id.as_str(), j.status.as_str(), j.total_record_count),
        (arn.as_str(), MODEL, "Submitted", 10)
    );
    assert!(j.job_name.starts_with("stats"));
    assert_eq!((s.input_tokens, s.output_tokens), (0, 0));

    h.until(5.5).await;
    let j = &h.engine.stats().jobs[0];
    assert_eq!((j.status.as_str(), j.processed_record_count), ("InProgress", 4));

    h.sink.wait_for(10).await;
    let s = h.engine.stats();
    assert_eq!((s.queued, s.in_flight), (0, 0));
    let j = &s.jobs[0];
    assert_eq!(
        (
            j.status.as_str(),
            j.total_record_count,
            j.processed_record_count,
            j.success_record_count,
            j.error_record_count
        ),
        ("Completed", 10, 10, 9, 1)
    );
    assert_eq!((s.input_tokens, s.output_tokens), (1234, 567), "token totals come from the manifest");

    let statuses: Vec<String> = h.sink.events().into_iter().map(|e| e.status.to_string()).collect();
    assert_eq!(statuses, ["Submitted", "InProgress", "Completed"], "one job event per status change");
}

#[tokio::test(start_paused = true)]
async fn destroy_during_close_lets_close_return() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    h.fake.on_status(|_| vec![status("InProgress")]);
    h.submit_n("q", 2);
    let engine = h.engine.clone();
    let closing = tokio::spawn(async move { engine.close().await });
    h.until(30.0).await;
    assert!(!closing.is_finished(), "close() waits for the running job");
    h.engine.destroy(false);
    tokio::time::timeout(Duration::from_secs(1), closing).await.expect("close() returns once destroyed").unwrap();
}
