//! Jobs: the concurrency cap, idempotent creation with backoff, the shared poll loop, job names.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bedrock_batch_core::{BatchConfig, EngineError, ErrorName};
use common::*;

#[tokio::test(start_paused = true)]
async fn at_most_max_concurrent_jobs_run_at_once_and_all_six_batches_complete_in_order() {
    let h = start(BatchConfig { max_concurrent_jobs: 2, max_batch_size: 10, min_batch_size: 1, ..config() });
    h.fake.on_status(|_| in_progress_then(3, status("Completed")));
    let reqs = h.submit_n("q", 60);
    h.idle().await;
    assert_eq!(h.fake.create_calls().len(), 2, "only two jobs are submitted; the other four wait their turn");
    assert_eq!(h.fake.running(), 2);

    h.sink.wait_for(60).await;
    h.assert_answered(&reqs);
    let jobs = h.fake.jobs();
    assert_eq!(jobs.len(), 6);
    assert!(h.fake.max_running() <= 2, "{} jobs ran at once with maxConcurrentJobs 2", h.fake.max_running());
    assert_eq!(h.fake.max_running(), 2);
    // Waiting batches go in the order they were cut.
    for (i, j) in jobs.iter().enumerate() {
        let want: HashSet<String> = (i * 10..i * 10 + 10).map(|n| format!("q-{n}")).collect();
        let got: HashSet<String> = j.records.iter().filter_map(|r| r.prompt.clone()).collect();
        assert_eq!(got, want, "job {i} holds batch {i}");
    }
    // A job starts only after an earlier one finished.
    for j in &jobs[2..] {
        let finished_before = jobs.iter().filter(|o| o.finished_at.is_some_and(|f| f <= j.created_at)).count();
        assert!(
            finished_before >= j.index - 1,
            "job {} started while {} jobs were running",
            j.index,
            j.index - finished_before
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_throttled_create_is_retried_with_backoff_and_the_same_client_request_token() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    h.fake.fail_creates([
        CreateFault::Before(throttling()),
        CreateFault::Before(quota_exceeded()),
        CreateFault::Before(throttling()),
        CreateFault::Before(quota_exceeded()),
    ]);
    let reqs = h.submit_n("q", 5);
    h.engine.flush();
    h.sink.wait_for(5).await;
    h.assert_answered(&reqs);

    let calls = h.fake.create_calls();
    assert_eq!(calls.len(), 5, "four failures, then success");
    let tokens: HashSet<&str> = calls.iter().map(|c| c.0.client_request_token.as_str()).collect();
    assert_eq!(tokens.len(), 1, "every try carries the same clientRequestToken: {tokens:?}");
    assert!(!calls[0].0.client_request_token.is_empty());
    assert_eq!(h.fake.jobs().len(), 1);
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(gaps[0] >= Duration::from_millis(100), "the first retry waits: {gaps:?}");
    assert!(gaps.windows(2).all(|g| g[1] > g[0]), "the waits grow: {gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn a_create_that_succeeded_but_answered_throttling_does_not_start_a_second_job() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    h.fake.fail_creates([CreateFault::After(throttling())]);
    let reqs = h.submit_n("q", 5);
    h.engine.flush();
    h.sink.wait_for(5).await;
    h.assert_answered(&reqs);
    let calls = h.fake.create_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].0.client_request_token, calls[1].0.client_request_token);
    assert_eq!(h.fake.jobs().len(), 1, "the retried create returned the same job");
    assert_eq!(h.engine.stats().jobs.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_create_error_rejects_only_that_batch_with_its_name_and_is_not_retried() {
    let h = start(BatchConfig { max_batch_size: 5, min_batch_size: 1, max_concurrent_jobs: 1, ..config() });
    h.fake.fail_creates([CreateFault::Before(access_denied())]);
    let reqs = h.submit_n("q", 15);
    h.sink.wait_for(15).await;

    let uploads = h.fake.uploads();
    assert_eq!(uploads.len(), 3);
    let calls = h.fake.create_calls();
    assert_eq!(calls.len(), 3, "the permanent error is not retried");
    assert_eq!(h.fake.jobs().len(), 2);
    let failed_prompts: HashSet<String> = uploads
        .iter()
        .find(|u| u.uri == calls[0].0.input_uri)
        .unwrap()
        .records
        .iter()
        .filter_map(|r| r.prompt.clone())
        .collect();
    assert_eq!(failed_prompts.len(), 5);
    for (id, prompt) in &reqs {
        let r = h.sink.get(*id);
        if failed_prompts.contains(prompt) {
            let e = err_of(r);
            assert_eq!(e.name, ErrorName::AccessDeniedException, "{e}");
        } else {
            assert_eq!(r.expect("other batches are unaffected").body, answer_for(prompt).into_bytes());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_transient_upload_failure_is_retried() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    h.fake.fail_uploads([EngineError::new(ErrorName::ServiceUnavailableException, "SlowDown")
        .with_status(503)
        .transient(true)]);
    let reqs = h.submit_n("q", 3);
    h.engine.flush();
    h.sink.wait_for(3).await;
    h.assert_answered(&reqs);
    assert_eq!(h.fake.uploads().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_s3_outage_of_several_minutes_on_an_upload_is_outlasted_and_a_longer_one_fails_the_batch_typed() {
    let slow = || EngineError::new(ErrorName::ServiceUnavailableException, "SlowDown").with_status(503).transient(true);
    // 20 failed tries: about five minutes of waits between them.
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    h.fake.fail_uploads((0..20).map(|_| slow()));
    let reqs = h.submit_n("q", 3);
    h.engine.flush();
    h.sink.wait_for(3).await;
    h.assert_answered(&reqs);
    assert!(h.now() > 300.0 && h.now() < 900.0, "outlasted in {} s", h.now());
    assert_eq!(h.fake.jobs().len(), 1);

    // Longer than every try: the batch's requests fail with the S3 error, typed; no job.
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    h.fake.fail_uploads((0..40).map(|_| slow()));
    let reqs = h.submit_n("q", 2);
    h.engine.flush();
    h.sink.wait_for(2).await;
    for (id, _) in &reqs {
        assert_eq!(err_of(h.sink.get(*id)).name, ErrorName::ServiceUnavailableException);
    }
    assert!(h.now() < 1200.0, "given up after {} s", h.now());
    assert!(h.fake.jobs().is_empty());
}

#[tokio::test(start_paused = true)]
async fn one_poll_loop_asks_for_every_running_job_once_per_poll_interval() {
    let h = start(BatchConfig { max_batch_size: 10, min_batch_size: 1, ..config() });
    h.fake.on_status(|_| in_progress_then(4, status("Completed")));
    let reqs = h.submit_n("q", 30);
    h.sink.wait_for(30).await;
    h.assert_answered(&reqs);

    let calls = h.fake.get_job_calls();
    let arns: HashSet<String> = h.fake.jobs().iter().map(|j| j.arn.clone()).collect();
    assert_eq!(arns.len(), 3);
    let mut rounds: BTreeMap<Duration, Vec<String>> = BTreeMap::new();
    for (arn, t) in calls {
        rounds.entry(t - h.t0).or_default().push(arn);
    }
    let times: Vec<f64> = rounds.keys().map(|d| d.as_secs_f64()).collect();
    assert_eq!(rounds.len(), 5, "five poll rounds (4 InProgress, then Completed), at {times:?}");
    for (i, (t, polled)) in rounds.iter().enumerate() {
        let want = 5.0 * (i + 1) as f64;
        assert!((t.as_secs_f64() - want).abs() < 0.5, "round {i} at {t:?}, want ~{want}s");
        let set: HashSet<String> = polled.iter().cloned().collect();
        assert_eq!(polled.len(), 3, "each job once per round: {polled:?}");
        assert_eq!(set, arns);
    }
}

#[tokio::test(start_paused = true)]
async fn transient_get_job_errors_back_off_and_never_reject_the_callers_of_a_running_job() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    h.fake.on_status(|_| in_progress_then(1, status("Completed")));
    h.fake.fail_get_jobs([
        throttling(),
        EngineError::new(ErrorName::InternalServerException, "oops").with_status(500).transient(true),
        EngineError::new(ErrorName::ServiceUnavailableException, "unavailable").with_status(503).transient(true),
        throttling(),
    ]);
    let reqs = h.submit_n("q", 4);
    h.engine.flush();
    h.sink.wait_for(4).await;
    h.assert_answered(&reqs);

    let calls = h.fake.get_job_calls();
    assert_eq!(calls.len(), 6, "four failures, InProgress, Completed");
    let gaps: Vec<f64> = calls.windows(2).map(|w| (w[1].1 - w[0].1).as_secs_f64()).collect();
    assert!(
        gaps[0] < gaps[1] && gaps[1] < gaps[2] && gaps[2] < gaps[3],
        "the poll interval grows while errors repeat: {gaps:?}"
    );
    assert!((gaps[4] - 5.0).abs() < 0.5, "and returns to pollInterval after a success: {gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn a_job_that_never_ends_rejects_its_callers_after_its_timeout_and_a_margin() {
    let h = start(BatchConfig { min_batch_size: 1, poll_interval: Duration::from_secs(600), ..config() });
    h.fake.on_status(|_| vec![status("InProgress")]);
    let reqs = h.submit_n("q", 2);
    h.engine.flush();
    h.sink.wait_for(2).await;
    let job = &h.fake.jobs()[0];
    for (id, _) in &reqs {
        let e = err_of(h.sink.get(*id));
        assert_eq!(e.name, ErrorName::BatchJobFailedException);
        assert_eq!(e.job_arn(), Some(job.arn.as_str()));
        let after = (h.sink.settled_at(*id) - job.created_at).as_secs_f64() / 3600.0;
        assert!((24.0..=26.0).contains(&after), "rejected {after:.2} h after creation; jobTimeoutHours is 24");
    }
}

#[tokio::test(start_paused = true)]
async fn job_names_follow_aws_rules_and_each_batch_has_its_own_token() {
    let h =
        start(BatchConfig { max_batch_size: 3, min_batch_size: 1, job_name_prefix: "nightly-run".into(), ..config() });
    h.submit_n("q", 9);
    h.sink.wait_for(9).await;
    let jobs = h.fake.jobs();
    assert_eq!(jobs.len(), 3);
    let mut tokens = HashSet::new();
    let mut names = HashSet::new();
    for j in &jobs {
        let n = &j.spec.job_name;
        assert!(n.starts_with("nightly-run"), "{n}");
        assert!(n.len() <= 63 && !n.contains('_'), "{n}");
        assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '+' || c == '.'), "{n}");
        assert_eq!(j.spec.model_id, MODEL);
        assert_eq!(j.spec.output_uri, "s3://out-bucket/output/");
        assert!(!j.spec.client_request_token.is_empty());
        tokens.insert(j.spec.client_request_token.clone());
        names.insert(n.clone());
        for r in &j.records {
            assert!(r.record_id.chars().all(|c| c.is_ascii_alphanumeric()), "{}", r.record_id);
        }
    }
    assert_eq!(tokens.len(), 3, "one token per batch");
    assert_eq!(names.len(), 3);
    let stats = h.engine.stats();
    for j in &jobs {
        let s = stats.jobs.iter().find(|s| s.job_arn == j.arn).expect("every job is in stats");
        assert_eq!(s.job_name, j.spec.job_name);
    }
}

#[tokio::test(start_paused = true)]
async fn cleanup_deletes_a_job_s_input_and_output_once_its_results_are_delivered() {
    let h = start(BatchConfig { min_batch_size: 1, cleanup: true, ..config() });
    h.submit_n("q", 3);
    h.engine.flush();
    h.sink.wait_for(3).await;
    h.idle().await;
    let job = h.fake.jobs()[0].clone();
    assert_eq!(
        h.fake.cleanups(),
        vec![(job.spec.input_uri.clone(), "s3://out-bucket/output/".to_string(), job.arn.clone())]
    );

    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    h.submit_n("q", 3);
    h.engine.flush();
    h.sink.wait_for(3).await;
    h.idle().await;
    assert!(h.fake.cleanups().is_empty(), "cleanup is off by default");
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_cap_counts_jobs_per_model() {
    let h = start(BatchConfig { max_concurrent_jobs: 1, max_batch_size: 2, min_batch_size: 1, ..config() });
    h.fake.on_status(|_| in_progress_then(2, status("Completed")));
    for i in 0..4 {
        h.engine.submit(MODEL, body(&format!("claude-{i}")), bedrock_batch_core::InvokeOptions::default()).unwrap();
        h.engine
            .submit(OTHER_MODEL, body(&format!("llama-{i}")), bedrock_batch_core::InvokeOptions::default())
            .unwrap();
    }
    h.idle().await;
    let models: HashSet<String> = h.fake.jobs().iter().map(|j| j.spec.model_id.clone()).collect();
    assert_eq!(h.fake.jobs().len(), 2, "one job per model at once");
    assert_eq!(models.len(), 2);
    h.sink.wait_for(8).await;
    assert_eq!(h.fake.max_running(), 2);
    assert_eq!(h.fake.jobs().len(), 4);
}
