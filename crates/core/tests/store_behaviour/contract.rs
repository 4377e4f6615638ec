//! The `Store` trait's contract, called directly: write groups, batches by state, lookups, jobs and
//! their results, retention and one client at a time. A "restart" drops the store without
//! `close()` (as a process that died) and opens it again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bedrock_batch_core::store::{key_digest, short_digest, Answer, AnswerRow, KnownKeys, RecoveredState, Write};
use bedrock_batch_core::ErrorName;
use bytes::Bytes;

use crate::common::stores::{batch, created, formed, output, uploaded, Fixture, Kind};

fn keys_of(members: &[bedrock_batch_core::store::Member]) -> Vec<&str> {
    members.iter().map(|m| &*m.key).collect()
}

pub fn batches_are_taken_up_by_state_after_a_restart_and_answers_are_found(f: &Fixture) {
    {
        let s = f.open();
        s.write(&[formed("uploading", &["u1"]), formed("creating", &["c1", "c2"])]).unwrap();
        s.write(&[uploaded("creating")]).unwrap();
        // r2's caller needs its answer by a time: a process taking the batch up must know it.
        let Write::BatchFormed { batch, mut members } = formed("running", &["r1", "r2"]) else { unreachable!() };
        members[1].deadline_ms = Some(1_765_000_000_000);
        s.write(&[
            Write::BatchFormed { batch, members },
            uploaded("running"),
            created("running", "arn:job/1", 2),
            Write::JobStatus { job_arn: "arn:job/1".into(), status: "InProgress".into(), success: 1, errors: 0 },
        ])
        .unwrap();
        s.write(&[Write::Answers(vec![output("r1", "running", 1, "{\"a\":1}")])]).unwrap();
        let (location, bytes) = s.location();
        assert_eq!(location, f.location());
        if let Some(secret) = f.secret() {
            assert!(!location.contains(&secret), "{location}");
        }
        assert!(bytes > 0);
        // Dropped without close(): as a process that died.
    }
    let s = f.open();
    let rec = s.recover().unwrap();
    assert_eq!(rec.len(), 2, "the batch that never finished uploading is dropped");
    assert_eq!(rec[0].batch, batch("creating"));
    assert_eq!(rec[0].state, RecoveredState::Creating { input_uri: "s3://b/in/creating/".into() });
    assert_eq!(keys_of(&rec[0].members), ["c1", "c2"]);
    assert_eq!(rec[1].batch, batch("running"));
    assert_eq!(
        rec[1].state,
        RecoveredState::Submitted { input_uri: "s3://b/in/running/".into(), job_arn: "arn:job/1".into() }
    );
    assert_eq!(keys_of(&rec[1].members), ["r2"], "r1 has its answer");
    assert_eq!(rec[1].members[0].deadline_ms, Some(1_765_000_000_000), "its deadline survived the restart");
    assert!(rec[0].members.iter().all(|m| m.deadline_ms.is_none()));

    let found = s.lookup(&["u1".into(), "r1".into()]).unwrap();
    assert!(found[0].is_none());
    let f1 = found[1].clone().unwrap();
    assert_eq!(f1.answer, Answer::Output(Bytes::from_static(b"{\"a\":1}")));
    assert_eq!((f1.record, f1.job_arn.as_deref()), (Some(1), Some("arn:job/1")));

    let jobs = s.jobs().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].job_arn.as_str(), jobs[0].status.as_str(), jobs[0].total_record_count, jobs[0].success_record_count),
        ("arn:job/1", "InProgress", 2, 1)
    );
    assert!(jobs[0].created_at > 1_600_000_000);
    let results = s.results("arn:job/1", None, 10).unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!((results[0].record, results[0].key.as_str()), (1, "r1"));

    // The stores differ here on purpose: a journal only this process writes knows every key
    // with an answer (the engine looks up no other), a group others write may gain any.
    match (f.kind(), s.known_keys().unwrap()) {
        (Kind::Sqlite, KnownKeys::These(set)) => {
            assert_eq!(set, HashSet::from([short_digest(&key_digest("r1"))]), "exactly the answered key")
        }
        (Kind::Postgres, KnownKeys::Any) => {}
        (kind, other) => panic!("{kind:?} store: known keys {other:?}"),
    }
    s.close();
}

pub fn lookups_take_many_keys_at_once_and_a_key_answered_twice_keeps_its_newest_answer(f: &Fixture) {
    let s = f.open();
    s.write(&[formed("b", &["k"]), uploaded("b")]).unwrap();
    s.write(&[created("b", "arn:job/b", 12_001)]).unwrap();
    s.write(&[Write::Answers(vec![output("k", "b", 1, "{\"v\":1}")])]).unwrap();
    s.write(&[Write::Answers(vec![output("k", "b", 1, "{\"v\":2}")])]).unwrap();
    assert_eq!(
        s.lookup(&["k".into()]).unwrap()[0].as_ref().unwrap().answer,
        Answer::Output(Bytes::from_static(b"{\"v\":2}"))
    );
    assert!(s.lookup(&["other".into()]).unwrap()[0].is_none());

    // More keys than one statement carries, answered in one write, and an error kept as one.
    let rows: Vec<AnswerRow> =
        (0..12_000).map(|i| output(&format!("k:row-{i}"), "b", i + 2, &format!("{{\"n\":{i}}}"))).collect();
    let error = AnswerRow {
        key: "k:bad".into(),
        answer: Some(Answer::Error { name: "ValidationException".into(), message: "no".into() }),
        batch: Some(Arc::from("b")),
        record: 20_000,
    };
    let none = AnswerRow { key: "k:none".into(), answer: None, batch: Some(Arc::from("b")), record: 20_001 };
    s.write(&[Write::Answers(rows), Write::Answers(vec![error, none])]).unwrap();
    let mut keys: Vec<Box<str>> = (0..12_000).rev().map(|i| format!("k:row-{i}").into()).collect();
    keys.push("k:bad".into());
    keys.push("k:none".into());
    keys.push("k:never".into());
    let t = Instant::now();
    let found = s.lookup(&keys).unwrap();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(found.len(), keys.len());
    for (i, f) in found[..12_000].iter().enumerate() {
        let n = 11_999 - i;
        assert_eq!(
            f.as_ref().unwrap().answer,
            Answer::Output(Bytes::from(format!("{{\"n\":{n}}}"))),
            "in the order asked"
        );
    }
    assert_eq!(
        found[12_000].as_ref().unwrap().answer,
        Answer::Error { name: "ValidationException".into(), message: "no".into() }
    );
    assert!(found[12_001].is_none(), "no final answer is not kept");
    assert!(found[12_002].is_none());
    let page = s.results("arn:job/b", Some(100), 50).unwrap();
    assert_eq!(page.len(), 50);
    assert_eq!(page[0].record, 101);
    s.close();
}

pub fn a_key_in_two_unfinished_batches_belongs_to_the_newest(f: &Fixture) {
    {
        let s = f.open();
        for t in ["old", "new"] {
            s.write(&[formed(t, &["k"]), uploaded(t)]).unwrap();
        }
        s.close();
    }
    let s = f.open();
    let rec = s.recover().unwrap();
    assert_eq!(rec.iter().map(|r| r.batch.token.as_str()).collect::<Vec<_>>(), ["old", "new"]);
    assert!(rec[0].members.is_empty());
    assert_eq!(keys_of(&rec[1].members), ["k"]);
    s.close();
}

pub fn jobs_are_listed_oldest_first_and_a_jobs_results_page_in_record_order(f: &Fixture) {
    {
        let s = f.open();
        s.write(&[formed("one", &["a", "b", "c"]), uploaded("one"), created("one", "arn:job/one", 3)]).unwrap();
        s.write(&[formed("two", &["d", "e"]), uploaded("two"), created("two", "arn:job/two", 2)]).unwrap();
        s.write(&[formed("three", &["x"])]).unwrap();
        let bad = AnswerRow {
            key: "b".into(),
            answer: Some(Answer::Error { name: "ValidationException".into(), message: "bad input".into() }),
            batch: Some(Arc::from("one")),
            record: 2,
        };
        s.write(&[
            Write::JobStatus { job_arn: "arn:job/one".into(), status: "Completed".into(), success: 2, errors: 1 },
            Write::Answers(vec![output("c", "one", 3, "{\"c\":3}"), bad, output("a", "one", 1, "{\"a\":1}")]),
            Write::BatchDone { token: "one".into() },
        ])
        .unwrap();
        s.write(&[Write::Answers(vec![output("e", "two", 2, "{\"e\":2}")])]).unwrap();
    }
    let s = f.open();
    let jobs = s.jobs().unwrap();
    let listed: Vec<_> = jobs
        .iter()
        .map(|j| {
            (
                j.job_arn.as_str(),
                j.job_name.as_str(),
                j.model_id.as_str(),
                j.status.as_str(),
                (j.total_record_count, j.success_record_count, j.error_record_count),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("arn:job/one", "name-one", "m", "Completed", (3, 2, 1)),
            ("arn:job/two", "name-two", "m", "Submitted", (2, 0, 0)),
        ],
        "oldest first; a batch that never became a job is not one"
    );
    assert!(jobs[0].created_at <= jobs[1].created_at);

    let all = s.results("arn:job/one", None, 10).unwrap();
    assert_eq!(
        all.iter().map(|r| (r.record, r.key.as_str())).collect::<Vec<_>>(),
        [(1, "a"), (2, "b"), (3, "c")],
        "in record order, not in the order written"
    );
    assert_eq!(all[0].answer, Answer::Output(Bytes::from_static(b"{\"a\":1}")));
    assert_eq!(all[1].answer, Answer::Error { name: "ValidationException".into(), message: "bad input".into() });
    let records = |after: Option<u64>| -> Vec<u64> {
        s.results("arn:job/one", after, 2).unwrap().iter().map(|r| r.record).collect()
    };
    assert_eq!(records(None), [1, 2]);
    assert_eq!(records(Some(2)), [3]);
    assert!(records(Some(3)).is_empty());
    let two = s.results("arn:job/two", None, 10).unwrap();
    assert_eq!(two.iter().map(|r| (r.record, r.key.as_str())).collect::<Vec<_>>(), [(2, "e")]);
    assert!(s.results("arn:job/none", None, 10).unwrap().is_empty());

    let rec = s.recover().unwrap();
    assert_eq!(rec.len(), 1, "a finished batch is not taken up again");
    assert_eq!(rec[0].batch, batch("two"));
    assert_eq!(keys_of(&rec[0].members), ["d"], "e has its answer");
    s.close();
}

pub fn a_write_group_is_applied_whole_or_not_at_all(f: &Fixture) {
    let s = f.open();
    s.write(&[formed("a", &["k1"]), uploaded("a")]).unwrap();
    // The last write of the group fails (a batch's token is unique): none of it is applied.
    let group = [
        formed("b", &["k2"]),
        uploaded("b"),
        created("a", "arn:job/a", 1),
        Write::Answers(vec![output("k1", "a", 1, "{}")]),
        formed("a", &["k3"]),
    ];
    assert!(s.write(&group).is_err());
    assert!(s.jobs().unwrap().is_empty(), "a's job was not recorded");
    assert!(s.lookup(&["k1".into()]).unwrap()[0].is_none(), "nor k1's answer");
    // And the store goes on.
    s.write(&[formed("b", &["k2"]), uploaded("b")]).unwrap();
    drop(s);
    let s = f.open();
    let rec = s.recover().unwrap();
    assert_eq!(rec.iter().map(|r| r.batch.token.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(rec[0].state, RecoveredState::Creating { input_uri: "s3://b/in/a/".into() });
    assert_eq!(keys_of(&rec[0].members), ["k1"]);
    assert_eq!(keys_of(&rec[1].members), ["k2"]);
    s.close();
}

pub fn retention_prunes_finished_work_when_the_store_opens(f: &Fixture) {
    {
        let s = f.open();
        s.write(&[formed("t", &["k"]), uploaded("t")]).unwrap();
        s.write(&[
            created("t", "arn:job/p", 1),
            Write::Answers(vec![output("k", "t", 1, "{}")]),
            Write::BatchDone { token: "t".into() },
        ])
        .unwrap();
        // A batch still running is not finished work, however old.
        s.write(&[formed("r", &["k2"]), uploaded("r"), created("r", "arn:job/r", 1)]).unwrap();
        s.close();
    }
    {
        let s = f.open();
        assert_eq!(s.jobs().unwrap().len(), 2, "kept for 7 days");
        assert!(s.lookup(&["k".into()]).unwrap()[0].is_some());
        s.close();
    }
    let s = f.with_retention(0.0).open();
    assert_eq!(
        s.jobs().unwrap().iter().map(|j| j.job_arn.as_str()).collect::<Vec<_>>(),
        ["arn:job/r"],
        "the finished job is gone"
    );
    assert!(s.lookup(&["k".into()]).unwrap()[0].is_none(), "and its answers");
    assert_eq!(s.recover().unwrap().len(), 1);
    s.close();
}

pub fn one_client_holds_a_store_at_a_time_and_reads_still_work_after_close(f: &Fixture) {
    let f = f.impatient();
    let first = f.open();
    first.write(&[formed("t", &["k"]), uploaded("t")]).unwrap();
    first.write(&[created("t", "arn:job/l", 1)]).unwrap();
    let e = f.try_open().map(|_| ()).unwrap_err();
    assert_eq!(e.name, ErrorName::JournalLockedException, "{e}");
    assert!(e.message.contains(&f.lock_names()), "{}", e.message);
    first.close();
    assert_eq!(first.jobs().unwrap().len(), 1, "once closed, it still reads");
    assert_eq!(first.results("arn:job/l", None, 10).unwrap().len(), 0);
    assert_eq!(
        first.write(&[Write::BatchDone { token: "t".into() }]).unwrap_err().name,
        ErrorName::ClientClosedException
    );
    let second = f.open();
    assert_eq!(second.recover().unwrap().len(), 1, "the batch is the next client's, unchanged");
    // Reads go on without the lock that the next client holds.
    assert_eq!(first.jobs().unwrap().len(), 1);
    second.close();
}

pub fn a_reader_beside_the_client_sees_its_writes_and_takes_nothing_from_it(f: &Fixture) {
    let owner = f.open();
    owner.write(&[formed("t", &["k1", "k2"]), uploaded("t"), created("t", "arn:job/r", 2)]).unwrap();
    let reader = f.reader();
    assert_eq!(reader.jobs().unwrap().len(), 1);
    // The owner writes on while the reader reads: it sees each commit, and never blocks it.
    owner
        .write(&[
            Write::Answers(vec![output("k1", "t", 1, "{\"a\":1}")]),
            Write::JobStatus {
                job_arn: "arn:job/r".into(),
                status: bedrock_batch_core::status::JobStatus::InProgress,
                success: 1,
                errors: 0,
            },
        ])
        .unwrap();
    let jobs = reader.jobs().unwrap();
    assert_eq!((jobs[0].success_record_count, jobs[0].total_record_count), (1, 2));
    assert_eq!(reader.results("arn:job/r", None, 10).unwrap().len(), 1);
    assert_eq!(reader.committed_spend().unwrap(), 0.0);
    let e = reader.write(&[Write::BatchDone { token: "t".into() }]).unwrap_err();
    assert_eq!(e.name, ErrorName::ClientClosedException, "a reader writes nothing: {e}");
    // The owner still holds it: another client is refused, and the owner's writes go on.
    assert_eq!(f.impatient().try_open().map(|_| ()).unwrap_err().name, ErrorName::JournalLockedException);
    owner.write(&[Write::BatchDone { token: "t".into() }]).unwrap();
    owner.close();
}

pub fn documents_are_kept_by_kind_and_id_in_the_order_first_put_and_survive_a_restart(f: &Fixture) {
    {
        let s = f.open();
        s.put_object("file", "b", b"second").unwrap();
        s.put_object("file", "a", b"first?").unwrap();
        s.put_object("batch", "a", b"{}").unwrap();
        s.put_object("file", "b", b"second, replaced").unwrap();
        assert_eq!(s.get_object("file", "a").unwrap().as_deref(), Some(&b"first?"[..]));
        assert_eq!(s.get_object("file", "zz").unwrap(), None);
        // Dropped without close(): a process that died.
    }
    let s = f.open();
    let listed = s.list_objects("file").unwrap();
    assert_eq!(
        listed.iter().map(|(id, body)| (id.as_str(), body.as_slice())).collect::<Vec<_>>(),
        [("b", &b"second, replaced"[..]), ("a", &b"first?"[..])],
        "in the order first put; a replaced one keeps its place"
    );
    assert_eq!(s.list_objects("batch").unwrap().len(), 1, "kinds are apart");
    assert!(s.delete_object("file", "b").unwrap());
    assert!(!s.delete_object("file", "b").unwrap(), "deleted once");
    assert_eq!(f.reader().get_object("file", "a").unwrap().as_deref(), Some(&b"first?"[..]), "a reader sees them");
    assert_eq!(f.reader().list_objects("file").unwrap().len(), 1);
    s.close();
}
