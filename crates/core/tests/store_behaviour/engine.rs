//! The engine on the store and the fake back-end, in paused time: what a restarted process finds,
//! and that nothing is sent or paid twice. A "restart" is a second engine on the same store
//! after the first closed, or after it was destroyed (as a process that died: its callers are
//! gone with it, its jobs run on).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bedrock_batch_core::{Backends, BatchConfig, Engine, ErrorName, InvokeOptions};

use crate::common::stores::{Fixture, Kind};
use crate::common::*;

fn small() -> BatchConfig {
    BatchConfig { min_batch_size: 1, batch_timeout: Duration::from_secs(1), ..config() }
}

fn start_on(f: &Fixture, fake: &Arc<FakeBatch>) -> Harness {
    start_with(f.engine_config(small()), fake.clone())
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

fn text(h: &Harness, id: u64) -> String {
    String::from_utf8(h.sink.get(id).unwrap().body.to_vec()).unwrap()
}

pub async fn a_finished_key_sent_again_after_a_restart_resolves_from_the_store_without_a_new_job(f: &Fixture) {
    let fake = Arc::new(FakeBatch::default());
    let first = start_on(f, &fake);
    let a = keyed(&first, "alpha", "row-1");
    let b = first.submit("beta");
    first.sink.wait_for(2).await;
    first.engine.close().await;
    assert_eq!(fake.jobs().len(), 1);
    let (location, bytes) = first.engine.stats().journal.unwrap();
    assert_eq!(location, f.location());
    assert!(bytes > 0);

    let second = start_on(f, &fake);
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
    let jobs = second.engine.stored_jobs().await.unwrap().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].job_arn, fake.jobs()[0].arn);
    assert_eq!(second.engine.stored_results(&jobs[0].job_arn, None, 10).await.unwrap().len(), 2);
    second.engine.close().await;
}

pub async fn the_kth_send_of_the_same_content_maps_to_the_kth_answer_and_a_further_one_is_new(f: &Fixture) {
    let fake = Arc::new(FakeBatch::default());
    let first = start_on(f, &fake);
    let ids: Vec<u64> = (0..2).map(|_| first.submit("same")).collect();
    first.sink.wait_for(2).await;
    first.engine.close().await;
    assert_eq!(fake.jobs()[0].records.len(), 2, "two sends of one content are two records");

    let second = start_on(f, &fake);
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

pub async fn a_job_running_when_the_process_died_is_polled_again_and_its_answers_reach_later_senders(f: &Fixture) {
    let fake = Arc::new(FakeBatch::default());
    let release = gated(&fake);
    let first = start_on(f, &fake);
    let _a = keyed(&first, "alpha", "k-a");
    let _b = keyed(&first, "beta", "k-b");
    first.until(30.0).await;
    assert_eq!(fake.jobs().len(), 1, "the job runs");
    // The process dies: its callers are gone with it; the job runs on.
    first.engine.destroy(false);
    first.idle().await;

    let second = start_on(f, &fake);
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
    assert_eq!(text(&second, b), answer_for("beta"));
    assert_eq!(fake.jobs().len(), 1, "nothing was sent again");
    assert_eq!(fake.create_calls().len(), 1);
    second.engine.close().await;
}

pub async fn a_batch_whose_create_was_sent_but_whose_arn_was_not_recorded_is_created_again_with_the_same_token(
    f: &Fixture,
) {
    let fake = Arc::new(FakeBatch::default());
    fake.fail_creates([CreateFault::Hang]);
    let first = start_on(f, &fake);
    let _ = keyed(&first, "alpha", "k-a");
    first.until(30.0).await;
    assert_eq!(fake.create_calls().len(), 1, "the create was sent");
    assert_eq!(fake.jobs().len(), 1, "and AWS made the job");
    first.engine.destroy(false);
    first.idle().await;

    let second = start_on(f, &fake);
    let a = keyed(&second, "alpha", "k-a");
    second.sink.wait_for(1).await;
    let calls = fake.create_calls();
    assert_eq!(calls.len(), 2, "created again after the restart");
    assert_eq!(calls[0].0.client_request_token, calls[1].0.client_request_token, "with the same token");
    assert_eq!(fake.jobs().len(), 1, "so AWS returned the original job");
    assert_eq!(fake.uploads().len(), 1, "the input was not uploaded again");
    assert_eq!(text(&second, a), answer_for("alpha"));
    second.engine.close().await;
}

/// The stores differ in where the body comes from: the journal's engine reads it back from the
/// first input file (the new process never had it in memory); a group keeps the bodies of its
/// requests in the store until they are answered, so nothing is read back.
pub async fn a_record_sent_again_after_a_restart_goes_with_its_own_body(f: &Fixture) {
    let fake = Arc::new(FakeBatch::default());
    let release = gated(&fake);
    let first = start_on(f, &fake);
    let _ = keyed(&first, "alpha", "k-a");
    first.until(30.0).await;
    first.engine.destroy(false);
    first.idle().await;

    // The job ends without a line for the record: it is sent again.
    fake.on_output(|c| if c.job == 0 { Out::Missing } else { Out::Ok });
    release.store(true, Ordering::SeqCst);
    let second = start_on(f, &fake);
    let a = keyed(&second, "alpha", "k-a");
    second.sink.wait_for(1).await;
    assert_eq!(text(&second, a), answer_for("alpha"));
    let jobs = fake.jobs();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1].records.len(), 1);
    assert_eq!(jobs[1].records[0].prompt.as_deref(), Some("alpha"), "its own body");
    match f.kind() {
        Kind::Sqlite => assert_eq!(
            fake.read_input_calls(),
            vec![fake.uploads()[0].uri.clone()],
            "read back from the first input file"
        ),
        Kind::Postgres => assert!(fake.read_input_calls().is_empty(), "kept in the store, not read back"),
    }
    second.engine.close().await;
}

/// The stores differ here on purpose: a journal serves one engine at a time (the second is
/// refused until the first closes); a group on PostgreSQL is shared by every engine that names
/// it, and what one of them answered resolves from the store in another.
pub async fn a_second_engine_is_refused_by_a_journal_and_joins_a_group(f: &Fixture) {
    let fake = Arc::new(FakeBatch::default());
    let first = start_on(f, &fake);
    let a = keyed(&first, "alpha", "row-1");
    first.sink.wait_for(1).await;
    let start_second = || {
        let backends = Backends { batch: Some(fake.clone()), ..Default::default() };
        Engine::start(f.engine_config(small()), backends, Arc::new(Collect::default()))
    };
    match f.kind() {
        Kind::Sqlite => {
            let e = start_second().map(|_| ()).unwrap_err();
            assert_eq!(e.name, ErrorName::JournalLockedException);
            first.engine.close().await;
            let second = start_second();
            assert!(second.is_ok(), "free once the first one closed");
            second.unwrap().close().await;
        }
        Kind::Postgres => {
            let second = start_on(f, &fake);
            let a2 = keyed(&second, "alpha", "row-1");
            let c = keyed(&second, "gamma", "row-2");
            second.sink.wait_for(2).await;
            assert_eq!(text(&second, a2), text(&first, a), "from the store");
            assert_eq!(text(&second, c), answer_for("gamma"), "a new key is batched by the group");
            let jobs = fake.jobs();
            assert_eq!(jobs.len(), 2);
            assert_eq!(
                jobs.iter().flat_map(|j| &j.records).filter(|r| r.prompt.as_deref() == Some("alpha")).count(),
                1,
                "alpha was sent once"
            );
            second.engine.close().await;
            first.engine.close().await;
        }
    }
}
