//! The engine with a store (the SQLite journal) on the fake back-end, in paused time: what a
//! restarted process finds, and that nothing is sent or paid twice.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bedrock_batch_core::config::JournalConfig;
use bedrock_batch_core::{BatchConfig, EngineConfig, ErrorName, InvokeOptions};
use common::*;

fn journal(name: &str) -> JournalConfig {
    let dir = std::env::temp_dir().join(format!("bbb-store-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    JournalConfig { path: dir.join("journal.db"), retention_days: 7.0 }
}

fn with_journal(batch: BatchConfig, j: &JournalConfig) -> EngineConfig {
    EngineConfig { journal: Some(j.clone()), ..engine_config(batch) }
}

fn small() -> BatchConfig {
    BatchConfig { min_batch_size: 1, batch_timeout: Duration::from_secs(1), ..config() }
}

/// Jobs stay InProgress until `release` is set.
fn gated(fake: &FakeBatch) -> Arc<AtomicBool> {
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    fake.on_status(
        move |_| if r.load(Ordering::SeqCst) { vec![status("Completed")] } else { vec![status("InProgress")] },
    );
    release
}

fn keyed(h: &Harness, prompt: &str, key: &str) -> u64 {
    h.engine.submit_keyed(MODEL, body(prompt), InvokeOptions::default(), Some(key)).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_finished_key_sent_again_after_a_restart_resolves_from_the_store_without_a_new_job() {
    let j = journal("resend");
    let fake = Arc::new(FakeBatch::default());
    let first = start_with(with_journal(small(), &j), fake.clone());
    let a = keyed(&first, "alpha", "row-1");
    let b = first.submit("beta");
    first.sink.wait_for(2).await;
    first.engine.close().await;
    assert_eq!(fake.jobs().len(), 1);

    let second = start_with(with_journal(small(), &j), fake.clone());
    let a2 = keyed(&second, "alpha", "row-1");
    let b2 = second.submit("beta");
    second.sink.wait_for(2).await;
    assert_eq!(fake.jobs().len(), 1, "both answers came from the store: no second job");
    for (before, after) in [(a, a2), (b, b2)] {
        let old = first.sink.get(before).unwrap();
        let new = second.sink.get(after).unwrap();
        assert_eq!(old.body, new.body, "the same answer, byte for byte");
        assert_eq!(new.job_arn, old.job_arn);
    }
    second.engine.close().await;
}

#[tokio::test(start_paused = true)]
async fn the_kth_send_of_the_same_content_maps_to_the_kth_answer_and_a_further_one_is_new() {
    let j = journal("kth");
    let fake = Arc::new(FakeBatch::default());
    let first = start_with(with_journal(small(), &j), fake.clone());
    let ids: Vec<u64> = (0..2).map(|_| first.submit("same")).collect();
    first.sink.wait_for(2).await;
    first.engine.close().await;
    assert_eq!(fake.jobs()[0].records.len(), 2, "two sends of one content are two records");

    let second = start_with(with_journal(small(), &j), fake.clone());
    let again: Vec<u64> = (0..3).map(|_| second.submit("same")).collect();
    second.sink.wait_for(3).await;
    let jobs = fake.jobs();
    assert_eq!(jobs.len(), 2, "only the third occurrence is new");
    assert_eq!(jobs[1].records.iter().filter(|r| r.prompt.as_deref() == Some("same")).count(), 1);
    for (old, new) in ids.iter().zip(&again) {
        assert_eq!(
            first.sink.get(*old).unwrap().job_arn,
            second.sink.get(*new).unwrap().job_arn,
            "occurrence by occurrence"
        );
    }
    assert_eq!(second.sink.get(again[2]).unwrap().job_arn.as_deref(), Some(jobs[1].arn.as_str()));
    second.engine.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_running_when_the_process_died_is_polled_again_and_its_answers_reach_later_senders() {
    let j = journal("recover");
    let fake = Arc::new(FakeBatch::default());
    let release = gated(&fake);
    let first = start_with(with_journal(small(), &j), fake.clone());
    let _a = keyed(&first, "alpha", "k-a");
    let _b = keyed(&first, "beta", "k-b");
    first.until(30.0).await;
    assert_eq!(fake.jobs().len(), 1, "the job runs");
    // The process dies: its callers are gone with it; the job runs on.
    first.engine.destroy(false);
    first.idle().await;

    let second = start_with(with_journal(small(), &j), fake.clone());
    // One caller sends its key while the job still runs (it joins the job), one after it ended.
    let a = keyed(&second, "alpha", "k-a");
    second.until(60.0).await;
    assert_eq!(second.sink.count(), 0, "the job is still running");
    release.store(true, Ordering::SeqCst);
    second.sink.wait_for(1).await;
    let got = second.sink.get(a).unwrap();
    assert_eq!(String::from_utf8(got.body.to_vec()).unwrap(), answer_for("alpha"));
    assert_eq!(got.job_arn.as_deref(), Some(fake.jobs()[0].arn.as_str()));
    let b = keyed(&second, "beta", "k-b");
    second.sink.wait_for(2).await;
    assert_eq!(String::from_utf8(second.sink.get(b).unwrap().body.to_vec()).unwrap(), answer_for("beta"));
    assert_eq!(fake.jobs().len(), 1, "nothing was sent again");
    assert_eq!(fake.create_calls().len(), 1);
    second.engine.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_batch_whose_create_was_sent_but_whose_arn_was_not_recorded_is_created_again_with_the_same_token() {
    let j = journal("token");
    let fake = Arc::new(FakeBatch::default());
    fake.fail_creates([CreateFault::Hang]);
    let first = start_with(with_journal(small(), &j), fake.clone());
    let _ = keyed(&first, "alpha", "k-a");
    first.until(30.0).await;
    assert_eq!(fake.create_calls().len(), 1, "the create was sent");
    assert_eq!(fake.jobs().len(), 1, "and AWS made the job");
    first.engine.destroy(false);
    first.idle().await;

    let second = start_with(with_journal(small(), &j), fake.clone());
    let a = keyed(&second, "alpha", "k-a");
    second.sink.wait_for(1).await;
    let calls = fake.create_calls();
    assert_eq!(calls.len(), 2, "created again after the restart");
    assert_eq!(calls[0].0.client_request_token, calls[1].0.client_request_token, "with the same token");
    assert_eq!(fake.jobs().len(), 1, "so AWS returned the original job");
    assert_eq!(fake.uploads().len(), 1, "the input was not uploaded again");
    assert_eq!(String::from_utf8(second.sink.get(a).unwrap().body.to_vec()).unwrap(), answer_for("alpha"));
    second.engine.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_journal_serves_one_engine_at_a_time() {
    let j = journal("lock");
    let fake = Arc::new(FakeBatch::default());
    let first = start_with(with_journal(small(), &j), fake.clone());
    let backends = bedrock_batch_core::Backends { batch: Some(fake.clone()), ..Default::default() };
    let e = bedrock_batch_core::Engine::start(with_journal(small(), &j), backends, Arc::new(Collect::default()))
        .unwrap_err();
    assert_eq!(e.name, ErrorName::JournalLockedException);
    first.engine.close().await;
    let backends = bedrock_batch_core::Backends { batch: Some(fake.clone()), ..Default::default() };
    assert!(
        bedrock_batch_core::Engine::start(with_journal(small(), &j), backends, Arc::new(Collect::default())).is_ok(),
        "free once the first one closed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_record_sent_again_after_a_restart_is_read_back_from_its_input_file() {
    let j = journal("reread");
    let fake = Arc::new(FakeBatch::default());
    let release = gated(&fake);
    let first = start_with(with_journal(small(), &j), fake.clone());
    let _ = keyed(&first, "alpha", "k-a");
    first.until(30.0).await;
    first.engine.destroy(false);
    first.idle().await;

    // The job ends without a line for the record: it is sent again, its body read back from the
    // first input file (the new process never had it in memory).
    fake.on_output(|c| if c.job == 0 { Out::Missing } else { Out::Ok });
    release.store(true, Ordering::SeqCst);
    let second = start_with(with_journal(small(), &j), fake.clone());
    let a = keyed(&second, "alpha", "k-a");
    second.sink.wait_for(1).await;
    assert_eq!(String::from_utf8(second.sink.get(a).unwrap().body.to_vec()).unwrap(), answer_for("alpha"));
    let jobs = fake.jobs();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1].records[0].prompt.as_deref(), Some("alpha"), "the body came back from the first input file");
    assert_eq!(fake.read_input_calls(), vec![fake.uploads()[0].uri.clone()]);
    second.engine.close().await;
}
