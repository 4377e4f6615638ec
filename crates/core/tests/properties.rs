//! Property tests of the engine on its fake back-end, under paused time: random request streams
//! (sizes, keys, aborts) against random fault schedules (per-record errors of each code, missing
//! and malformed lines, Completed / PartiallyCompleted / Failed / Stopped / Expired jobs,
//! throttled and quota-limited creates, failed uploads, polls and reads, `close()` or `destroy()`
//! at a random moment). Invariants checked after every case:
//! - every request settles exactly once, a success with its own prompt's answer, a failure with a
//!   typed error, and nothing settles after `destroy()` has settled what it held;
//! - no record is sent in more jobs than `maxAttempts`, no job is created twice for one token;
//! - the counters return to zero.
//!
//! `PROPTEST_CASES` sets the number of cases (64 by default here); a failure prints the shrunk
//! case, which then becomes a named test below.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bedrock_batch_core::{BatchConfig, EngineError, ErrorName};
use common::*;
use proptest::prelude::*;
use serde_json::json;

/// What a record's output line is.
#[derive(Debug, Clone, Copy)]
enum Line {
    Ok,
    /// An error line with this HTTP status as its `errorCode`.
    Error(u16),
    Missing,
    Malformed,
}

/// How the client ends.
#[derive(Debug, Clone, Copy)]
enum End {
    /// `close()`: everything answered first.
    Close,
    /// `destroy()` after this many virtual seconds.
    Destroy(u32),
}

#[derive(Debug, Clone)]
struct Case {
    /// Requests: (keyed, aborted after this many virtual seconds).
    requests: Vec<(bool, Option<u32>)>,
    min_batch: usize,
    max_batch: usize,
    max_attempts: u32,
    /// Per job (by creation index, cycled): its terminal status.
    statuses: Vec<&'static str>,
    /// Per record and attempt (hashed into this list): its output line.
    lines: Vec<Line>,
    create_faults: Vec<u8>,
    upload_faults: usize,
    poll_faults: usize,
    read_faults: Vec<usize>,
    end: End,
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        6 => Just(Line::Ok),
        1 => prop::sample::select(vec![400u16, 408, 424, 429, 500, 503]).prop_map(Line::Error),
        1 => Just(Line::Missing),
        1 => Just(Line::Malformed),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((any::<bool>(), prop::option::weighted(0.1, 0u32..120)), 1..120),
        1usize..30,
        1usize..60,
        1u32..4,
        prop::collection::vec(
            prop::sample::select(vec!["Completed", "Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"]),
            1..4,
        ),
        prop::collection::vec(line(), 1..8),
        prop::collection::vec(0u8..4, 0..4),
        0usize..3,
        0usize..3,
        prop::collection::vec(0usize..5, 0..3),
        prop_oneof![3 => Just(End::Close), 1 => (0u32..200).prop_map(End::Destroy)],
    )
        .prop_map(
            |(
                requests,
                min_batch,
                max_batch,
                max_attempts,
                statuses,
                lines,
                create_faults,
                upload_faults,
                poll_faults,
                read_faults,
                end,
            )| Case {
                requests,
                min_batch,
                max_batch: max_batch.max(min_batch),
                max_attempts,
                statuses,
                lines,
                create_faults,
                upload_faults,
                poll_faults,
                read_faults,
                end,
            },
        )
}

/// A small stable hash of a record's id and attempt, to pick its line.
fn pick(record_id: &str, attempt: usize, n: usize) -> usize {
    let mut h: u64 = 1469598103934665603;
    for b in record_id.bytes().chain(attempt.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(1099511628211);
    }
    (h % n as u64) as usize
}

fn create_fault(kind: u8) -> CreateFault {
    match kind {
        0 => CreateFault::Before(throttling()),
        1 => CreateFault::Before(quota_exceeded()),
        2 => CreateFault::After(throttling()),
        _ => CreateFault::After(
            EngineError::new(ErrorName::InternalServerException, "lost response").with_status(500).transient(true),
        ),
    }
}

fn transient_s3() -> EngineError {
    EngineError::new(ErrorName::ServiceUnavailableException, "SlowDown").with_status(503).transient(true)
}

/// A current-thread runtime in paused time, for one case.
fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

/// Scripts the fake: each job polls InProgress `polls` times, then ends with its status from
/// `statuses` (by creation index, cycled); each record's line is picked from `lines` by its id and
/// attempt.
fn script(fake: &FakeBatch, polls: usize, statuses: &[&'static str], lines: &[Line]) {
    let statuses = statuses.to_vec();
    fake.on_status(move |job| in_progress_then(polls, status(statuses[job % statuses.len()])));
    let lines = lines.to_vec();
    fake.on_output(move |c| match lines[pick(&c.record_id, c.attempt, lines.len())] {
        Line::Ok => Out::Ok,
        Line::Error(code) => Out::Error(json!(code), format!("emulated {code}")),
        Line::Missing => Out::Missing,
        Line::Malformed => Out::Malformed,
    });
}

/// Runs one case; panics (with what broke) when an invariant does not hold.
fn run(case: &Case) {
    paused().block_on(async {
        let cfg = BatchConfig {
            min_batch_size: case.min_batch,
            max_batch_size: case.max_batch,
            max_attempts: case.max_attempts,
            batch_timeout: Duration::from_secs(5),
            ..config()
        };
        let h = start(cfg);
        script(&h.fake, 2, &case.statuses, &case.lines);
        h.fake.fail_creates(case.create_faults.iter().map(|k| create_fault(*k)));
        h.fake.fail_uploads((0..case.upload_faults).map(|_| transient_s3()));
        h.fake.fail_get_jobs((0..case.poll_faults).map(|_| throttling()));
        h.fake.fail_reads(case.read_faults.iter().map(|n| (*n, transient_s3())));

        let mut prompts: HashMap<u64, String> = HashMap::new();
        let mut aborts: Vec<(u32, u64)> = Vec::new();
        for (i, (keyed, abort)) in case.requests.iter().enumerate() {
            let prompt = format!("p-{i}");
            let id = if *keyed {
                h.engine.submit_keyed(MODEL, body(&prompt), Default::default(), Some(&format!("k-{i}"))).unwrap()
            } else {
                h.submit(&prompt)
            };
            prompts.insert(id, prompt);
            if let Some(at) = abort {
                aborts.push((*at, id));
            }
        }
        aborts.sort_unstable();
        let ids: Vec<u64> = prompts.keys().copied().collect();

        // Aborts (and a destroy) at their virtual times, in order.
        let destroy_at = match case.end {
            End::Destroy(s) => Some(s),
            End::Close => None,
        };
        let mut destroyed = false;
        for (at, id) in &aborts {
            if destroy_at.is_some_and(|d| d <= *at) {
                break;
            }
            h.until(f64::from(*at)).await;
            h.engine.cancel(*id);
        }
        match case.end {
            End::Close => {
                let closed = tokio::time::timeout(Duration::from_secs(30 * 24 * 3600), h.engine.close()).await;
                assert!(closed.is_ok(), "close() did not end within 30 virtual days");
            }
            End::Destroy(s) => {
                h.until(f64::from(s)).await;
                h.engine.destroy(false);
                destroyed = true;
            }
        }
        // An aborted request's caller settles it itself (the engine drops it if it was not sent,
        // else its answer is ignored): at most once from the engine. Every other, exactly once.
        let aborted: HashSet<u64> = aborts.iter().map(|(_, id)| *id).collect();
        let waited = tokio::time::timeout(Duration::from_secs(30 * 24 * 3600), async {
            while !ids.iter().all(|id| aborted.contains(id) || h.sink.has(*id)) {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "some request did not settle within 30 virtual days");
        // What settles in the same instant belongs to that moment.
        h.idle().await;
        let settled_then = h.sink.count();
        // Nothing settles later, however long the jobs run.
        tokio::time::sleep(Duration::from_secs(7 * 24 * 3600)).await;
        if h.sink.count() != settled_then {
            let late: Vec<String> = h.sink.all()[settled_then..]
                .iter()
                .map(|(id, r, at)| {
                    let what = r
                        .as_ref()
                        .map_or_else(|e| format!("{}: {}", e.name.as_str(), e.message), |_| "an answer".into());
                    format!(
                        "request {id} (aborted: {}) at {:.3} s: {what}",
                        aborted.contains(id),
                        secs_since(h.t0, *at)
                    )
                })
                .collect();
            panic!("settled after every request had (destroyed: {destroyed}): {late:?}");
        }
        let mut times: HashMap<u64, usize> = HashMap::new();
        for (id, _, _) in h.sink.all() {
            assert!(prompts.contains_key(&id), "a settlement of an id never submitted: {id}");
            *times.entry(id).or_default() += 1;
        }
        for id in &ids {
            let t = times.get(id).copied().unwrap_or(0);
            if aborted.contains(id) {
                assert!(t <= 1, "aborted request {id} settled {t} times");
            } else {
                assert_eq!(t, 1, "request {id} settled {t} times");
            }
        }

        for (id, result, _) in h.sink.all() {
            match result {
                Ok(s) => assert_eq!(
                    String::from_utf8(s.body.to_vec()).unwrap(),
                    answer_for(&prompts[&id]),
                    "request {id} got another's answer"
                ),
                Err(e) => assert!(
                    !matches!(e.name, ErrorName::InternalServerException) || e.message.contains("emulated"),
                    "request {id} failed with an untyped internal error: {e}"
                ),
            }
        }

        let jobs = h.fake.jobs();
        let tokens: HashSet<&str> = jobs.iter().map(|j| j.spec.client_request_token.as_str()).collect();
        assert_eq!(tokens.len(), jobs.len(), "two jobs for one token");
        for id in &ids {
            let rid = bedrock_batch_core::jsonl::record_id(*id);
            let sent = h.fake.times_sent(&rid);
            assert!(
                sent <= case.max_attempts as usize,
                "record {rid} went in {sent} jobs with maxAttempts {}",
                case.max_attempts
            );
        }
        if !destroyed {
            let s = h.engine.stats();
            assert_eq!((s.queued, s.in_flight), (0, 0), "the counters return to zero");
        }
    });
}

/// A run with the journal killed (destroyed, as a process that dies) at random moments and
/// started again on the same journal until every key is answered.
#[derive(Debug, Clone)]
struct Restarts {
    requests: usize,
    min_batch: usize,
    max_attempts: u32,
    /// Virtual seconds each killed process lives.
    kills: Vec<u32>,
    statuses: Vec<&'static str>,
    lines: Vec<Line>,
    create_faults: Vec<u8>,
}

fn restarts() -> impl Strategy<Value = Restarts> {
    (
        1usize..60,
        1usize..20,
        1u32..4,
        prop::collection::vec(0u32..120, 1..4),
        prop::collection::vec(
            prop::sample::select(vec!["Completed", "Completed", "PartiallyCompleted", "Failed", "Expired"]),
            1..3,
        ),
        prop::collection::vec(line(), 1..6),
        prop::collection::vec(0u8..4, 0..3),
    )
        .prop_map(|(requests, min_batch, max_attempts, kills, statuses, lines, create_faults)| Restarts {
            requests,
            min_batch,
            max_attempts,
            kills,
            statuses,
            lines,
            create_faults,
        })
}

/// Runs one restart case on a fresh journal; panics when an invariant does not hold: every key is
/// answered (its own answer or a typed error) by the last process, a key answered before is
/// answered the same again from the journal, and no job is created twice for one token.
fn run_restarts(case: &Restarts) {
    paused().block_on(async {
        let f = common::stores::Fixture::sqlite(&common::stores::unique("properties-restart")).expect("a journal");
        let cfg = BatchConfig {
            min_batch_size: case.min_batch,
            max_batch_size: 25,
            max_attempts: case.max_attempts,
            batch_timeout: Duration::from_secs(5),
            ..config()
        };
        let fake = Arc::new(FakeBatch::default());
        script(&fake, 3, &case.statuses, &case.lines);
        fake.fail_creates(case.create_faults.iter().map(|k| create_fault(*k)));

        // Key index → its answer's body (or the error's name), as first delivered.
        let mut answered: HashMap<usize, Result<String, ErrorName>> = HashMap::new();
        let lives: Vec<Option<u32>> = case.kills.iter().map(|k| Some(*k)).chain([None]).collect();
        for life in lives {
            // Keys answered with success so far are answered from the journal: never sent again.
            let known: HashSet<String> =
                answered.iter().filter(|(_, a)| a.is_ok()).map(|(i, _)| format!("p-{i}")).collect();
            let jobs_before = fake.jobs().len();
            let h = start_with(f.engine_config(cfg.clone()), fake.clone());
            // Every key, answered or not: an answered one must come back the same, from the journal.
            let ids: Vec<(usize, u64)> = (0..case.requests)
                .map(|i| {
                    let id = h
                        .engine
                        .submit_keyed(MODEL, body(&format!("p-{i}")), Default::default(), Some(&format!("k-{i}")))
                        .unwrap();
                    (i, id)
                })
                .collect();
            match life {
                Some(secs) => {
                    tokio::time::sleep(Duration::from_secs(u64::from(secs))).await;
                    h.engine.destroy(false);
                }
                None => {
                    let closed = tokio::time::timeout(Duration::from_secs(30 * 24 * 3600), h.engine.close()).await;
                    assert!(closed.is_ok(), "the last process's close() did not end within 30 virtual days");
                }
            }
            h.idle().await;
            for j in &fake.jobs()[jobs_before..] {
                for r in &j.records {
                    assert!(
                        !r.prompt.as_ref().is_some_and(|p| known.contains(p)),
                        "{:?}, answered before this process started, was sent again in job {}",
                        r.prompt,
                        j.index
                    );
                }
            }
            for (i, id) in ids {
                let Some((_, result, _)) = h.sink.all().into_iter().find(|s| s.0 == id) else {
                    assert!(life.is_some(), "key k-{i} never settled in the last process");
                    continue;
                };
                let got = match result {
                    Ok(s) => Ok(String::from_utf8(s.body.to_vec()).unwrap()),
                    Err(e) if e.name == ErrorName::ClientClosedException => continue,
                    Err(e) => Err(e.name),
                };
                if let Ok(body) = &got {
                    assert_eq!(body, &answer_for(&format!("p-{i}")), "key k-{i} got another's answer");
                }
                match answered.get(&i) {
                    // A success is kept in the journal: the same answer again.
                    Some(Ok(first)) => assert_eq!(got.as_ref(), Ok(first), "key k-{i} was answered differently"),
                    Some(Err(_)) => {}
                    None => {
                        answered.insert(i, got);
                    }
                }
            }
        }
        assert_eq!(answered.len(), case.requests, "every key answered by the end");
        let jobs = fake.jobs();
        let tokens: HashSet<&str> = jobs.iter().map(|j| j.spec.client_request_token.as_str()).collect();
        assert_eq!(tokens.len(), jobs.len(), "two jobs for one token");
    });
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_request_settles_exactly_once_under_any_fault_schedule(c in case()) {
        run(&c);
    }

    #[test]
    fn killed_and_restarted_on_its_journal_every_key_is_answered_once_and_the_same(c in restarts()) {
        run_restarts(&c);
    }
}

/// Shrunk from a failing case: one request aborted at once, jobs that fail, creates refused
/// for quota, polls throttled, a read failing, and `destroy()` at 45 s.
#[test]
fn named_destroy_after_failed_jobs_and_an_abort() {
    let mut requests = vec![(false, None); 30];
    requests[24] = (false, Some(0));
    run(&Case {
        requests,
        min_batch: 1,
        max_batch: 2,
        max_attempts: 2,
        statuses: vec!["Failed", "Completed", "Failed"],
        lines: vec![Line::Ok, Line::Ok, Line::Missing],
        create_faults: vec![1, 1],
        upload_faults: 0,
        poll_faults: 2,
        read_faults: vec![4],
        end: End::Destroy(45),
    });
}
