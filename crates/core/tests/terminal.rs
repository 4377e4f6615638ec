//! Terminal statuses, record errors, resubmission limits and the output join.

mod common;

use bedrock_batch_core::{BatchConfig, ErrorName};
use common::*;
use serde_json::json;

/// A harness with min 1, so that resubmitted records travel alone.
fn small() -> Harness {
    start(BatchConfig { min_batch_size: 1, ..config() })
}

fn record_id(id: u64) -> String {
    bedrock_batch_core::jsonl::record_id(id)
}

#[tokio::test(start_paused = true)]
async fn a_completed_job_resolves_every_caller_with_its_own_answer() {
    let h = small();
    let reqs = h.submit_n("question", 20);
    h.engine.flush();
    h.sink.wait_for(20).await;
    // The fake writes the output lines in reverse order: the join is on recordId.
    h.assert_answered(&reqs);
    let arn = h.fake.jobs()[0].arn.clone();
    for (id, _) in &reqs {
        let s = h.sink.get(*id).unwrap();
        assert_eq!(s.content_type, "application/json");
        assert_eq!(s.job_arn.as_deref(), Some(arn.as_str()), "a batch answer names its job");
    }
    let s = h.engine.stats();
    assert_eq!((s.resubmitted, s.in_flight, s.queued), (0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn successful_bodies_are_exactly_the_model_output_bytes() {
    let h = small();
    h.fake.on_output(|c| {
        let p = c.prompt.clone().unwrap_or_default();
        Out::Body(format!(
            "{{ \"text\" :  \"h\u{e9}llo \\u00e9 {p}\" , \"n\":[1, 2.50, -0e3], \"nested\": {{\"a\" : null}} }}"
        ))
    });
    let reqs = h.submit_n("q", 3);
    h.engine.flush();
    h.sink.wait_for(3).await;
    for (id, p) in &reqs {
        let want = format!(
            "{{ \"text\" :  \"h\u{e9}llo \\u00e9 {p}\" , \"n\":[1, 2.50, -0e3], \"nested\": {{\"a\" : null}} }}"
        );
        assert_eq!(
            String::from_utf8(h.sink.get(*id).unwrap().body.to_vec()).unwrap(),
            want,
            "modelOutput byte for byte"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn partially_completed_missing_records_are_resubmitted_and_then_settled() {
    let h = small();
    h.fake.on_status(|job| in_progress_then(1, status(if job == 0 { "PartiallyCompleted" } else { "Completed" })));
    let missing = ["q-2", "q-5", "q-7"];
    h.fake.on_output(move |c| {
        if c.attempt == 1 && missing.contains(&c.prompt.as_deref().unwrap_or("")) {
            Out::Missing
        } else {
            Out::Ok
        }
    });
    let reqs = h.submit_n("q", 10);
    h.engine.flush();

    h.sink.wait_for(7).await;
    assert_eq!(h.sink.count(), 7, "the records with output settle at once");
    h.sink.wait_for(10).await;
    h.assert_answered(&reqs);
    assert_eq!(h.engine.stats().resubmitted, 3);
    let jobs = h.fake.jobs();
    assert_eq!(jobs.len(), 2);
    let mut second: Vec<String> = jobs[1].records.iter().filter_map(|r| r.prompt.clone()).collect();
    second.sort();
    assert_eq!(second, missing, "only the missing records are resubmitted");
}

#[tokio::test(start_paused = true)]
async fn a_record_still_missing_after_max_attempts_rejects_with_record_missing_exception() {
    let h = small();
    h.fake.on_status(|_| in_progress_then(1, status("PartiallyCompleted")));
    h.fake.on_output(|c| if c.prompt.as_deref() == Some("q-1") { Out::Missing } else { Out::Ok });
    let reqs = h.submit_n("q", 3);
    h.engine.flush();
    h.sink.wait_for(3).await;
    h.until(h.now() + 600.0).await;

    let id = reqs[1].0;
    let e = err_of(h.sink.get(id));
    assert_eq!(e.name, ErrorName::RecordMissingException, "{e}");
    assert_eq!(e.record_id(), Some(record_id(id).as_str()));
    let jobs = h.fake.jobs();
    assert_eq!(jobs.len(), 2, "maxAttempts 2: one first try, one resubmission");
    assert_eq!(e.job_arn(), Some(jobs[1].arn.as_str()));
    assert_eq!(h.fake.times_sent(&record_id(id)), 2);
    assert_eq!(h.engine.stats().resubmitted, 1);
    h.assert_answered(&[reqs[0].clone(), reqs[2].clone()]);
}

#[tokio::test(start_paused = true)]
async fn with_max_attempts_1_a_missing_record_is_never_resubmitted() {
    let h = start(BatchConfig { min_batch_size: 1, max_attempts: 1, ..config() });
    h.fake.on_status(|_| in_progress_then(1, status("PartiallyCompleted")));
    h.fake.on_output(|_| Out::Missing);
    let reqs = h.submit_n("q", 2);
    h.engine.flush();
    h.sink.wait_for(2).await;
    h.until(h.now() + 600.0).await;
    for (id, _) in &reqs {
        assert_eq!(err_of(h.sink.get(*id)).name, ErrorName::RecordMissingException);
    }
    assert_eq!(h.fake.jobs().len(), 1);
    assert_eq!(h.engine.stats().resubmitted, 0);
}

#[tokio::test(start_paused = true)]
async fn retryable_record_errors_are_resubmitted_while_tries_remain_then_rejected_with_their_name() {
    let h = start(BatchConfig { min_batch_size: 1, max_attempts: 3, ..config() });
    h.fake.on_output(|c| match (c.prompt.as_deref().unwrap_or(""), c.attempt) {
        ("throttled", _) => Out::Error(json!(429), "Too many requests".into()),
        ("broken", _) => Out::Error(json!(500), "Internal error".into()),
        ("slow", _) => Out::Error(json!(408), "Model timeout".into()),
        ("unavailable", _) => Out::Error(json!(503), "Unavailable".into()),
        ("flaky", 1) => Out::Error(json!(429), "Too many requests".into()),
        _ => Out::Ok,
    });
    let names = ["throttled", "broken", "slow", "unavailable", "flaky", "fine"];
    let ids: Vec<u64> = names.iter().map(|n| h.submit(n)).collect();
    h.engine.flush();
    h.sink.wait_for(6).await;
    h.until(h.now() + 600.0).await;

    let want = [
        ErrorName::ThrottlingException,
        ErrorName::InternalServerException,
        ErrorName::ModelTimeoutException,
        ErrorName::ServiceUnavailableException,
    ];
    for (i, name) in want.into_iter().enumerate() {
        let e = err_of(h.sink.get(ids[i]));
        assert_eq!(e.name, name, "{}", names[i]);
        assert_eq!(e.record_id(), Some(record_id(ids[i]).as_str()));
        assert!(e.job_arn().is_some());
        assert_eq!(h.fake.times_sent(&record_id(ids[i])), 3, "{} tried maxAttempts (3) times in all", names[i]);
        assert_eq!(e.attempts, 3, "{}: $metadata.attempts counts the jobs", names[i]);
    }
    let flaky = h.sink.get(ids[4]).unwrap();
    assert_eq!(flaky.body, answer_for("flaky").into_bytes(), "a retryable error that clears resolves");
    assert_eq!(flaky.attempts, 2, "the answer came from the second job");
    assert_eq!(h.sink.get(ids[5]).unwrap().attempts, 1);
    assert_eq!(h.fake.times_sent(&record_id(ids[4])), 2);
    assert_eq!(h.fake.times_sent(&record_id(ids[5])), 1);
    assert_eq!(h.engine.stats().resubmitted, 4 * 2 + 1);
}

#[tokio::test(start_paused = true)]
async fn a_non_retryable_record_error_rejects_at_once_with_job_arn_and_record_id() {
    let h = small();
    h.fake.on_output(|c| {
        if c.prompt.as_deref() == Some("q-0") {
            Out::Error(json!(400), "Malformed input request".into())
        } else {
            Out::Ok
        }
    });
    let reqs = h.submit_n("q", 3);
    h.engine.flush();
    h.sink.wait_for(3).await;
    h.until(h.now() + 600.0).await;

    let (id, _) = reqs[0];
    let e = err_of(h.sink.get(id));
    assert_eq!(e.name, ErrorName::ValidationException);
    assert!(e.message.contains("Malformed input request"), "{}", e.message);
    assert_eq!(e.http_status, Some(400));
    assert_eq!(e.job_arn(), Some(h.fake.jobs()[0].arn.as_str()));
    assert_eq!(e.record_id(), Some(record_id(id).as_str()));
    assert_eq!(h.fake.jobs().len(), 1, "never resubmitted");
    assert_eq!(h.engine.stats().resubmitted, 0);
    h.assert_answered(&reqs[1..]);
}

#[tokio::test(start_paused = true)]
async fn an_error_code_given_as_a_numeric_string_counts_as_its_number() {
    let h = small();
    h.fake.on_output(|c| match c.prompt.as_deref().unwrap_or("") {
        "string-429" => Out::Error(json!("429"), "slow down".into()),
        "string-400" => Out::Error(json!("400"), "bad".into()),
        "string-424" => Out::Error(json!("424"), "model error".into()),
        "named" => Out::Error(json!("ModelStreamError"), "stream broke".into()),
        _ => Out::Ok,
    });
    let names = ["string-429", "string-400", "string-424", "named"];
    let ids: Vec<u64> = names.iter().map(|n| h.submit(n)).collect();
    h.engine.flush();
    h.sink.wait_for(4).await;
    h.until(h.now() + 600.0).await;

    assert_eq!(err_of(h.sink.get(ids[0])).name, ErrorName::ThrottlingException);
    assert_eq!(h.fake.times_sent(&record_id(ids[0])), 2, "\"429\" is retryable like 429");
    assert_eq!(err_of(h.sink.get(ids[1])).name, ErrorName::ValidationException);
    assert_eq!(h.fake.times_sent(&record_id(ids[1])), 1);
    assert_eq!(err_of(h.sink.get(ids[2])).name, ErrorName::ModelErrorException);
    let e = err_of(h.sink.get(ids[3]));
    assert_eq!(e.name, ErrorName::ModelErrorException);
    assert!(e.message.contains("ModelStreamError"), "the code is in the message: {}", e.message);
    assert_eq!(h.fake.times_sent(&record_id(ids[3])), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_job_rejects_its_callers_with_its_message_and_status_and_is_never_resubmitted() {
    let h = small();
    h.fake.on_status(|_| {
        in_progress_then(
            2,
            bedrock_batch_core::backend::JobInfo {
                status: "Failed".into(),
                message: Some("Input file has invalid records".into()),
                ..Default::default()
            },
        )
    });
    // A failed job usually writes no output.
    h.fake.on_output(|_| Out::Missing);
    let reqs = h.submit_n("q", 4);
    h.engine.flush();
    h.sink.wait_for(4).await;
    h.until(h.now() + 3600.0).await;

    let arn = h.fake.jobs()[0].arn.clone();
    for (id, _) in &reqs {
        let e = err_of(h.sink.get(*id));
        assert_eq!(e.name, ErrorName::BatchJobFailedException);
        assert!(e.message.contains("Input file has invalid records"), "{}", e.message);
        assert_eq!(e.job_status(), Some("Failed"));
        assert_eq!(e.job_arn(), Some(arn.as_str()));
    }
    assert_eq!(h.fake.jobs().len(), 1, "never resubmitted");
    assert_eq!(h.engine.stats().resubmitted, 0);
    assert_eq!(h.engine.stats().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_job_still_resolves_the_records_it_answered_and_rejects_the_rest() {
    let h = small();
    h.fake.on_status(|_| {
        in_progress_then(
            1,
            bedrock_batch_core::backend::JobInfo {
                status: "Failed".into(),
                message: Some("Internal failure".into()),
                ..Default::default()
            },
        )
    });
    h.fake.on_output(|c| {
        let n: usize = c.prompt.as_deref().unwrap().trim_start_matches("q-").parse().unwrap();
        if n < 2 {
            Out::Ok
        } else {
            Out::Missing
        }
    });
    let reqs = h.submit_n("q", 4);
    h.engine.flush();
    h.sink.wait_for(4).await;
    for (i, (id, _)) in reqs.iter().enumerate() {
        let s = h.sink.get(*id);
        if i < 2 {
            assert!(s.is_ok(), "record {i} answered before the failure resolves");
        } else {
            let e = err_of(s);
            assert_eq!(e.name, ErrorName::BatchJobFailedException);
            assert_eq!(e.job_status(), Some("Failed"));
            assert!(e.message.contains("Internal failure"));
        }
    }
    assert_eq!(h.fake.jobs().len(), 1, "never resubmitted");
}

#[tokio::test(start_paused = true)]
async fn a_stopped_job_resolves_its_finished_records_and_rejects_the_rest_without_resubmitting() {
    let h = small();
    h.fake.on_status(|_| in_progress_then(1, status("Stopped")));
    h.fake.on_output(|c| {
        let n: usize = c.prompt.as_deref().unwrap().trim_start_matches("q-").parse().unwrap();
        if n < 6 {
            Out::Ok
        } else {
            Out::Missing
        }
    });
    let reqs = h.submit_n("q", 10);
    h.engine.flush();
    h.sink.wait_for(10).await;
    h.until(h.now() + 3600.0).await;

    h.assert_answered(&reqs[..6]);
    let arn = h.fake.jobs()[0].arn.clone();
    for (id, _) in &reqs[6..] {
        let e = err_of(h.sink.get(*id));
        assert_eq!(e.name, ErrorName::BatchJobFailedException);
        assert_eq!(e.job_status(), Some("Stopped"));
        assert_eq!(e.job_arn(), Some(arn.as_str()));
        assert_eq!(e.record_id(), Some(record_id(*id).as_str()));
    }
    assert_eq!(h.fake.jobs().len(), 1, "a stopped job's records are never resubmitted");
    assert_eq!(h.engine.stats().resubmitted, 0);
}

#[tokio::test(start_paused = true)]
async fn an_expired_job_resubmits_its_unfinished_records() {
    let h = small();
    h.fake.on_status(|job| in_progress_then(1, status(if job == 0 { "Expired" } else { "Completed" })));
    h.fake.on_output(|c| {
        let n: usize = c.prompt.as_deref().unwrap().trim_start_matches("q-").parse().unwrap();
        if c.job == 0 && n % 2 == 1 {
            Out::Missing
        } else {
            Out::Ok
        }
    });
    let reqs = h.submit_n("q", 10);
    h.engine.flush();
    h.sink.wait_for(10).await;
    h.assert_answered(&reqs);
    assert_eq!(h.engine.stats().resubmitted, 5);
    let jobs = h.fake.jobs();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1].records.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_output_line_counts_as_missing_while_the_other_lines_resolve() {
    let h = small();
    h.fake.on_status(|job| in_progress_then(1, status(if job == 0 { "PartiallyCompleted" } else { "Completed" })));
    h.fake.on_output(|c| if c.job == 0 && c.prompt.as_deref() == Some("q-2") { Out::Malformed } else { Out::Ok });
    let reqs = h.submit_n("q", 5);
    h.engine.flush();
    h.sink.wait_for(4).await;
    let first_job_done = h.fake.jobs().len();
    assert_eq!(first_job_done, 1, "four settle from the first job");
    assert!(h.sink.all().iter().all(|s| s.0 != reqs[2].0));

    h.sink.wait_for(5).await;
    h.assert_answered(&reqs);
    assert_eq!(h.engine.stats().resubmitted, 1, "the malformed line's record was resubmitted as missing");
    assert_eq!(h.fake.jobs()[1].records.iter().filter_map(|r| r.prompt.clone()).collect::<Vec<_>>(), ["q-2"]);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_output_line_on_the_last_try_rejects_with_record_missing_exception() {
    let h = start(BatchConfig { min_batch_size: 1, max_attempts: 1, ..config() });
    h.fake.on_output(|c| if c.prompt.as_deref() == Some("q-0") { Out::Malformed } else { Out::Ok });
    let reqs = h.submit_n("q", 2);
    h.engine.flush();
    h.sink.wait_for(2).await;
    assert_eq!(err_of(h.sink.get(reqs[0].0)).name, ErrorName::RecordMissingException);
    h.assert_answered(&reqs[1..]);
}

#[tokio::test(start_paused = true)]
async fn resubmitted_records_keep_their_own_answers_when_other_requests_share_the_next_batch() {
    let h = small();
    h.fake.on_status(|job| in_progress_then(1, status(if job == 0 { "PartiallyCompleted" } else { "Completed" })));
    h.fake.on_output(|c| if c.job == 0 && c.prompt.as_deref() == Some("first-1") { Out::Missing } else { Out::Ok });
    let mut reqs = h.submit_n("first", 3);
    h.engine.flush();
    h.sink.wait_for(2).await;
    reqs.extend(h.submit_n("second", 3));
    h.sink.wait_for(6).await;
    h.assert_answered(&reqs);
    let jobs = h.fake.jobs();
    assert_eq!(jobs.len(), 2, "the resubmitted record joins the new requests' batch");
    assert_eq!(jobs[1].records.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn an_output_read_that_fails_midway_is_retried_without_settling_anyone_twice() {
    let h = small();
    h.fake.on_output(
        |c| if c.prompt.as_deref() == Some("q-1") { Out::Error(json!(429), "slow".into()) } else { Out::Ok },
    );
    let slow = bedrock_batch_core::EngineError::new(ErrorName::ServiceUnavailableException, "S3 read reset")
        .with_status(503)
        .transient(true);
    // The fake writes lines in reverse: the first read delivers q-5 .. q-2, then fails.
    h.fake.fail_reads([(4, slow.clone()), (2, slow)]);
    let reqs = h.submit_n("q", 6);
    h.engine.flush();
    h.sink.wait_for(6).await;
    h.until(h.now() + 600.0).await;

    assert_eq!(h.fake.read_calls().len(), 1 + 3, "two failed reads, one good read, then the resubmitted record's job");
    h.sink.assert_exactly(&reqs.iter().map(|r| r.0).collect::<Vec<_>>());
    let q1 = reqs[1].0;
    assert_eq!(err_of(h.sink.get(q1)).name, ErrorName::ThrottlingException, "q-1 kept failing with 429");
    assert_eq!(h.fake.times_sent(&record_id(q1)), 2, "q-1 resubmitted once, not once per read");
    let others: Vec<_> = reqs.iter().filter(|r| r.0 != q1).cloned().collect();
    h.assert_answered(&others);
}

#[tokio::test(start_paused = true)]
async fn an_output_read_that_keeps_failing_rejects_only_the_records_without_an_answer() {
    let h = small();
    let denied = bedrock_batch_core::EngineError::new(ErrorName::AccessDeniedException, "s3:GetObject denied")
        .with_status(403)
        .transient(false);
    h.fake.fail_reads([(2, denied)]);
    let reqs = h.submit_n("q", 5);
    h.engine.flush();
    h.sink.wait_for(5).await;
    h.until(h.now() + 600.0).await;

    // Lines come in reverse: q-4 and q-3 were read before the failure.
    h.assert_answered(&reqs[3..]);
    let arn = h.fake.jobs()[0].arn.clone();
    for (id, _) in &reqs[..3] {
        let e = err_of(h.sink.get(*id));
        assert_eq!(e.name, ErrorName::AccessDeniedException);
        assert_eq!(e.job_arn(), Some(arn.as_str()));
    }
    h.sink.assert_exactly(&reqs.iter().map(|r| r.0).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_stopped_job_never_resubmits_records_even_those_with_retryable_errors() {
    let h = small();
    h.fake.on_status(|_| in_progress_then(1, status("Stopped")));
    h.fake.on_output(|c| match c.prompt.as_deref() {
        Some("q-0") => Out::Error(json!(429), "slow".into()),
        Some("q-1") => Out::Missing,
        _ => Out::Ok,
    });
    let reqs = h.submit_n("q", 3);
    h.engine.flush();
    h.sink.wait_for(3).await;
    h.until(h.now() + 3600.0).await;
    assert!(h.sink.get(reqs[0].0).is_err());
    assert_eq!(err_of(h.sink.get(reqs[1].0)).name, ErrorName::BatchJobFailedException);
    h.assert_answered(&reqs[2..]);
    assert_eq!(h.fake.jobs().len(), 1);
    assert_eq!(h.engine.stats().resubmitted, 0);
}
