//! What only the store on PostgreSQL does, against a real server: `BEDROCK_BATCH_TEST_PG_URL`
//! (`bash .ci/postgres.sh start DIR` starts one and prints it; `.ci/test` does it). Without it
//! these tests fail, unless `BEDROCK_BATCH_SKIP_PG=1`, where each says it was skipped. Every test
//! works on a group of its own, so they run side by side on one database.
//!
//! What every store does (the `Store` trait's contract, restarts through the engine) is in the
//! behaviour suite, `tests/store_behaviour/`, run against this store and the SQLite journal.
//! Here: connections, TLS, migrations, groups, and a group's members and leader.

mod common;

use std::io::Write as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bedrock_batch_core::config::{PgUrl, StoreConfig};
use bedrock_batch_core::store::postgres::{PgStore, SCHEMA_VERSION};
use bedrock_batch_core::store::{Member, NewRequest, Outcome, RecoveredState, Settled, Store, Write};
use bedrock_batch_core::{BatchConfig, EngineConfig, ErrorName, InvocationType, InvokeOptions, Operation};
use bytes::Bytes;
use common::stores::{batch, formed, output, pg_url, store_config, unique};
use common::*;

/// The test server's URL, or `return` from the test when PostgreSQL tests are skipped.
macro_rules! pg_url {
    () => {
        match pg_url() {
            Some(u) => u,
            None => return,
        }
    };
}

/// A URL with one part changed.
fn with_password(url: &str, password: &str) -> String {
    let u = PgUrl::parse(url).unwrap();
    format!("postgres://{}:{password}@{}/{}?sslmode=disable", u.user, u.host_port(), u.database)
}

#[test]
fn groups_do_not_see_each_other() {
    let url = pg_url!();
    let a = PgStore::open(&store_config(&url, &unique("group-a"))).unwrap();
    let b = PgStore::open(&store_config(&url, &unique("group-b"))).unwrap();
    a.write(&[formed("t", &["k"]), Write::BatchUploaded { token: "t".into(), input_uri: "s3://b/in/".into() }])
        .unwrap();
    a.write(&[
        Write::BatchCreated { token: "t".into(), job_arn: "arn:job/t".into(), total: 1 },
        Write::Answers(vec![output("k", "t", 1, "{}")]),
    ])
    .unwrap();
    // The same token in another group is another batch.
    b.write(&[formed("t", &["k2"])]).unwrap();
    assert!(a.lookup(&["k".into()]).unwrap()[0].is_some());
    assert!(b.lookup(&["k".into()]).unwrap()[0].is_none());
    assert!(b.jobs().unwrap().is_empty());
    assert!(b.results("arn:job/t", None, 10).unwrap().is_empty());
    a.close();
    b.close();
}

#[test]
fn wrong_password_closed_port_or_missing_database_give_store_unavailable_without_the_password() {
    let url = pg_url!();
    let good = PgUrl::parse(&url).unwrap();
    let secret = "not-the-password-4711";
    let mut cfg = store_config(&with_password(&url, secret), &unique("bad"));
    let e = PgStore::open(&cfg).unwrap_err();
    assert_eq!(e.name, ErrorName::StoreUnavailableException, "{e}");
    assert!(e.message.contains(&good.host_port()), "{}", e.message);
    assert!(e.message.contains("password authentication failed"), "{}", e.message);
    assert!(!e.message.contains(secret), "{}", e.message);
    assert!(!format!("{e:?} {cfg:?}").contains(secret));

    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    cfg.url = PgUrl::parse(&format!("postgres://u:{secret}@127.0.0.1:{port}/db?sslmode=disable")).unwrap();
    let t = Instant::now();
    let e = PgStore::open(&cfg).unwrap_err();
    assert_eq!(e.name, ErrorName::StoreUnavailableException);
    assert!(e.message.contains(&format!("127.0.0.1:{port}")), "{}", e.message);
    assert!(!e.message.contains(secret));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    let mut missing = good.clone();
    missing.database = unique("no_such_db");
    cfg.url = missing;
    let e = PgStore::open(&cfg).unwrap_err();
    assert_eq!(e.name, ErrorName::StoreUnavailableException);
    assert!(e.message.contains("does not exist"), "{}", e.message);
}

/// A fresh database on the test server (its user may create databases), dropped afterwards.
struct FreshDb {
    admin: postgres::Client,
    name: String,
    url: String,
}

impl FreshDb {
    fn new(url: &str) -> FreshDb {
        let mut admin = postgres::Client::connect(
            &with_password(url, PgUrl::parse(url).unwrap().password.as_deref().unwrap_or("")),
            postgres::NoTls,
        )
        .expect("the test server accepts its URL");
        let name = unique("bbb_migrate").replace('-', "_");
        admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("the test user may create databases (CREATEDB)");
        let mut u = PgUrl::parse(url).unwrap();
        u.database = name.clone();
        let url = format!(
            "postgres://{}:{}@{}/{name}?sslmode=disable",
            u.user,
            u.password.clone().unwrap_or_default(),
            u.host_port()
        );
        FreshDb { admin, name, url }
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        let _ = self.admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

#[test]
fn migrations_run_once_even_when_clients_start_together_and_a_newer_schema_is_refused() {
    let url = pg_url!();
    let db = FreshDb::new(&url);
    let opened: Vec<_> = (0..6)
        .map(|i| {
            let cfg = store_config(&db.url, &format!("g{i}"));
            std::thread::spawn(move || PgStore::open(&cfg))
        })
        .collect();
    let stores: Vec<PgStore> = opened.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
    let again = PgStore::open(&store_config(&db.url, "g-again")).unwrap();
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let versions: Vec<i32> = c
        .query("SELECT version FROM bedrock_batch_schema ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>(), "each migration applied once");
    for s in stores {
        s.close();
    }
    again.close();

    c.execute("INSERT INTO bedrock_batch_schema (version, description) VALUES (99, 'from the future')", &[]).unwrap();
    let e = PgStore::open(&store_config(&db.url, "g-new")).unwrap_err();
    assert_eq!(e.name, ErrorName::JournalCorruptedException);
    assert!(e.message.contains("newer"), "{}", e.message);
    drop(c);
}

#[test]
fn tls_require_and_verify_full_connect_and_a_wrong_root_is_refused() {
    let url = pg_url!();
    let Ok(ca) = std::env::var("BEDROCK_BATCH_TEST_PG_CA") else {
        let _ = writeln!(
            std::io::stderr(),
            "skipped: the test PostgreSQL server has no TLS (BEDROCK_BATCH_TEST_PG_CA is not set)"
        );
        return;
    };
    let u = PgUrl::parse(&url).unwrap();
    let password = u.password.clone().unwrap_or_default();
    let mut admin = postgres::Client::connect(&with_password(&url, &password), postgres::NoTls).unwrap();
    let base =
        |host: &str, query: &str| format!("postgres://{}:{password}@{host}:{}/{}?{query}", u.user, u.port, u.database);
    for (i, (host, query)) in [
        ("127.0.0.1", "sslmode=require".to_string()),
        ("127.0.0.1", format!("sslmode=verify-full&sslrootcert={ca}")),
        ("localhost", format!("sslmode=verify-full&sslrootcert={ca}")),
        ("127.0.0.1", format!("sslmode=verify-ca&sslrootcert={ca}")),
        ("127.0.0.1", "sslmode=prefer".to_string()),
    ]
    .into_iter()
    .enumerate()
    {
        let app = unique(&format!("tls{i}"));
        let cfg = store_config(&base(host, &format!("{query}&application_name={app}")), &unique("tls"));
        let s = PgStore::open(&cfg).unwrap_or_else(|e| panic!("{host} {query}: {e}"));
        let ssl: bool = admin
            .query_one(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
                &[&app],
            )
            .unwrap()
            .get(0);
        assert!(ssl, "{query}: the session is encrypted");
        s.close();
    }
    // The system's roots do not know the test CA.
    let e = PgStore::open(&store_config(&base("127.0.0.1", "sslmode=verify-full"), &unique("tls"))).unwrap_err();
    assert_eq!(e.name, ErrorName::StoreUnavailableException);
    assert!(!e.message.contains(&password));
}

// ===== the engine on the store =====

fn small() -> BatchConfig {
    BatchConfig { min_batch_size: 1, batch_timeout: Duration::from_secs(1), ..config() }
}

fn with_store(batch: BatchConfig, s: &StoreConfig) -> EngineConfig {
    EngineConfig { store: Some(s.clone()), ..engine_config(batch) }
}

fn keyed(h: &Harness, prompt: &str, key: &str) -> u64 {
    h.engine.submit_keyed(MODEL, body(prompt), InvokeOptions::default(), Some(key)).unwrap()
}

/// Paused time must not run out while the server answers.
fn engine_store(url: &str, name: &str) -> StoreConfig {
    StoreConfig { connect_timeout: Duration::from_secs(3600), ..store_config(url, &unique(name)) }
}

#[tokio::test]
async fn an_unreachable_store_starts_at_once_and_rejects_every_send_within_the_connect_timeout() {
    // Not a PostgreSQL test: nothing listens, or something that never answers.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    for port in [closed_port, silent_port] {
        let s = StoreConfig {
            url: PgUrl::parse(&format!("postgres://bbb:sekrit-pass@127.0.0.1:{port}/db?sslmode=disable")).unwrap(),
            group: "g".into(),
            connect_timeout: Duration::from_secs(1),
            retention_days: 7.0,
            election_interval: Duration::from_secs(1),
            outage_timeout: Duration::from_secs(5),
        };
        let t = Instant::now();
        let h = start_with(with_store(small(), &s), Arc::new(FakeBatch::default()));
        assert!(t.elapsed() < Duration::from_millis(500), "the engine starts at once: {:?}", t.elapsed());
        let a = h.submit("alpha");
        let b = keyed(&h, "beta", "k");
        h.sink.wait_for(2).await;
        assert!(t.elapsed() < Duration::from_secs(4), "within connectTimeout and a margin: {:?}", t.elapsed());
        for id in [a, b] {
            let e = err_of(h.sink.get(id));
            assert_eq!(e.name, ErrorName::StoreUnavailableException, "{e}");
            assert!(e.message.contains(&format!("127.0.0.1:{port}")), "{}", e.message);
            assert!(!e.message.contains("sekrit"), "{}", e.message);
        }
        // Later sends are rejected at once, with the same reason.
        let c = h.submit("gamma");
        h.sink.wait_for(3).await;
        assert_eq!(err_of(h.sink.get(c)).name, ErrorName::StoreUnavailableException);
        assert_eq!(h.engine.stored_jobs().await.unwrap_err().name, ErrorName::StoreUnavailableException);
        h.engine.close().await;
    }
    drop(silent);
}

fn new_request(caller: u64, key: &str, body: &str) -> NewRequest {
    NewRequest {
        caller,
        key: key.into(),
        model_id: Arc::from("m"),
        record_type: InvocationType::InvokeModel,
        operation: Operation::InvokeModel,
        native: None,
        body: Bytes::from(body.to_string()),
        deadline_ms: None,
    }
}

/// The lead of a group whose leader just closed. The server releases the lock when the old
/// session's process ends, a moment after the client let it go: tried until then, for at most 5 s.
fn lead_after_close(cfg: &StoreConfig) -> PgStore {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = PgStore::try_lead(cfg).unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "the old leader's lock was not released within 5 s of its close");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_group_queues_by_member_leads_by_lock_and_settles_each_members_own_requests() {
    let url = pg_url!();
    let cfg = store_config(&url, &unique("group"));
    let a = PgStore::member(&cfg).unwrap();
    let b = PgStore::member(&cfg).unwrap();
    let with_deadline = NewRequest { deadline_ms: Some(1_765_000_000_123), ..new_request(2, "k:a2", "body a2") };
    a.write(&[Write::Enqueue(vec![new_request(1, "k:a1", "body a1"), with_deadline])]).unwrap();
    b.write(&[Write::Enqueue(vec![new_request(1, "k:b1", "body b1")])]).unwrap();
    assert!(a.feed(0, 10).is_err(), "a member does not lead: its feed is the leader's");

    let leader = PgStore::try_lead(&cfg).unwrap().expect("nobody leads yet");
    assert!(PgStore::try_lead(&cfg).unwrap().is_none(), "one leader at a time");
    let queued = leader.feed(0, 10).unwrap();
    assert_eq!(queued.iter().map(|q| &*q.key).collect::<Vec<_>>(), ["k:a1", "k:a2", "k:b1"], "in queue order");
    assert!(queued.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(queued[0].body_len, 7);
    assert_eq!(queued.iter().map(|q| q.deadline_ms).collect::<Vec<_>>(), [None, Some(1_765_000_000_123), None]);
    assert!(leader.feed(0, 10).unwrap().is_empty(), "a leader hands each request out once");
    let ids: Vec<u64> = queued.iter().map(|q| q.id).collect();
    let bodies: std::collections::HashMap<u64, Bytes> = leader.bodies(&ids).unwrap().into_iter().collect();
    assert_eq!(bodies[&ids[2]], Bytes::from_static(b"body b1"));

    // A batch of all three: claimed, uploaded, created; a1 answered, b1 failed, a2 back in the queue.
    let members: Vec<Member> = queued
        .iter()
        .map(|q| Member { key: q.key.clone(), record: q.id, tries: 0, native: None, deadline_ms: None })
        .collect();
    leader.write(&[Write::BatchFormed { batch: batch("g1"), members }]).unwrap();
    leader.write(&[Write::BatchUploaded { token: "g1".into(), input_uri: "s3://b/in/g1/".into() }]).unwrap();
    leader.write(&[Write::BatchCreated { token: "g1".into(), job_arn: "arn:job/g1".into(), total: 3 }]).unwrap();
    leader
        .write(&[
            Write::Settle {
                answers: vec![output("k:a1", "g1", ids[0], "answer a1")],
                settled: vec![
                    Settled {
                        id: ids[0],
                        answer: Some(ids[0]),
                        outcome: Outcome::Output {
                            body: Bytes::from_static(b"answer a1"),
                            job_arn: Some("arn:job/g1".into()),
                            record: Some(ids[0]),
                            attempts: 1,
                            service_tier: Some("flex".into()),
                        },
                    },
                    Settled::whole(
                        ids[2],
                        Outcome::Error {
                            name: "BatchJobFailedException".into(),
                            message: "failed".into(),
                            status: Some(500),
                            job_arn: Some("arn:job/g1".into()),
                            record_id: Some("R1".into()),
                            job_status: Some("Failed".into()),
                            attempts: 1,
                        },
                    ),
                ],
            },
            Write::Release(vec![ids[1]]),
        ])
        .unwrap();
    let got_a = a.take_settled().unwrap();
    assert_eq!(got_a.len(), 1, "a's own settled request only: {got_a:?}");
    assert_eq!(got_a[0].caller, 1);
    assert!(matches!(&got_a[0].outcome, Outcome::Output { body, service_tier, .. }
        if &body[..] == b"answer a1" && service_tier.as_deref() == Some("flex")));
    assert!(a.take_settled().unwrap().is_empty(), "taken once");
    let got_b = b.take_settled().unwrap();
    assert!(
        matches!(&got_b[0].outcome, Outcome::Error { name, status: Some(500), job_status: Some(s), .. } if name == "BatchJobFailedException" && s == "Failed")
    );
    assert!(
        leader.feed(0, 10).unwrap().is_empty(),
        "a released request is batched again by its leader, not read again"
    );

    // b goes before it collects a settlement: nobody will; the next leader drops that row.
    b.write(&[Write::Enqueue(vec![new_request(2, "k:b2", "body b2")])]).unwrap();
    let b2 = leader.feed(ids[2], 10).unwrap();
    assert_eq!(b2.iter().map(|q| &*q.key).collect::<Vec<_>>(), ["k:b2"]);
    leader
        .write(&[settle(vec![Settled::whole(
            b2[0].id,
            Outcome::Output { body: Bytes::new(), job_arn: None, record: None, attempts: 1, service_tier: None },
        )])])
        .unwrap();
    b.close();
    a.write(&[Write::Enqueue(vec![new_request(3, "k:a3", "body a3")])]).unwrap();
    let mut sql = postgres::Client::connect(
        &with_password(&url, PgUrl::parse(&url).unwrap().password.as_deref().unwrap_or("")),
        postgres::NoTls,
    )
    .unwrap();
    let rows = |sql: &mut postgres::Client| -> i64 {
        sql.query_one(
            "SELECT (SELECT count(*) FROM bedrock_batch_requests WHERE group_name = $1)
                  + (SELECT count(*) FROM bedrock_batch_settled WHERE group_name = $1)",
            &[&cfg.group],
        )
        .unwrap()
        .get(0)
    };
    // a2 (queued again), b2 (settled, not collected), a3 (queued).
    assert_eq!(rows(&mut sql), 3);

    // The lead passes on when the leader's session ends; the next leader takes the batch up.
    leader.close();
    let next = lead_after_close(&cfg);
    let recovered = next.recover().unwrap();
    assert_eq!(recovered.len(), 1);
    assert!(matches!(&recovered[0].state, RecoveredState::Submitted { job_arn, .. } if job_arn == "arn:job/g1"));
    assert_eq!(rows(&mut sql), 2, "the settled row of the member that is gone was dropped; a's queued ones stay");
    // a2, released from g1 while g1 is still open, is g1's: its take-up answers or requeues it.
    assert_eq!(next.feed(0, 10).unwrap().iter().map(|q| &*q.key).collect::<Vec<_>>(), ["k:a3"]);
    let tries: i32 = sql
        .query_one("SELECT tries FROM bedrock_batch_requests WHERE group_name = $1 AND key = 'k:a2'", &[&cfg.group])
        .unwrap()
        .get(0);
    assert_eq!(tries, 1, "released with one try more");
    next.close();
    a.close();
}

#[test]
fn a_new_leader_settles_requests_answered_before_the_old_one_settled_them_and_requeues_unuploaded_batches() {
    let url = pg_url!();
    let cfg = store_config(&url, &unique("takeover"));
    let m = PgStore::member(&cfg).unwrap();
    m.write(&[Write::Enqueue(vec![
        new_request(7, "k:x", "x"),
        new_request(8, "k:y", "y"),
        new_request(9, "k:z", "z"),
    ])])
    .unwrap();
    let old = PgStore::try_lead(&cfg).unwrap().unwrap();
    let q = old.feed(0, 10).unwrap();
    let member =
        |i: usize| Member { key: q[i].key.clone(), record: q[i].id, tries: 0, native: None, deadline_ms: None };
    // x and y in an uploaded batch; x answered but its settlement never written; z in a batch never uploaded.
    old.write(&[
        Write::BatchFormed { batch: batch("up"), members: vec![member(0), member(1)] },
        Write::BatchUploaded { token: "up".into(), input_uri: "s3://b/in/up/".into() },
        Write::Answers(vec![output("k:x", "up", q[0].id, "answer x")]),
        Write::BatchFormed { batch: batch("never"), members: vec![member(2)] },
    ])
    .unwrap();
    // x sent again (queued, in no batch) after it was answered.
    m.write(&[Write::Enqueue(vec![new_request(10, "k:x", "x")])]).unwrap();
    old.close();
    let new = lead_after_close(&cfg);
    let settled = m.take_settled().unwrap();
    assert_eq!(settled.iter().map(|s| s.caller).collect::<Vec<_>>(), [7, 10], "x in its batch and x queued again");
    assert!(settled.iter().all(|s| matches!(&s.outcome, Outcome::Output { body, .. } if &body[..] == b"answer x")));
    let recovered = new.recover().unwrap();
    assert_eq!(recovered.len(), 1, "the uploaded batch is taken up");
    assert_eq!(
        recovered[0].members.iter().map(|m| &*m.key).collect::<Vec<_>>(),
        ["k:y"],
        "without its answered member"
    );
    assert_eq!(
        new.feed(0, 10).unwrap().iter().map(|r| &*r.key).collect::<Vec<_>>(),
        ["k:z"],
        "the unuploaded batch's request is queued again"
    );
    new.close();
    m.close();
}

#[tokio::test(start_paused = true)]
async fn a_key_queued_again_after_the_leader_answered_it_is_settled_from_its_answer_not_batched_again() {
    let url = pg_url!();
    let s = engine_store(&url, "engine-relook");
    let fake = Arc::new(FakeBatch::default());
    let h = start_with(with_store(small(), &s), fake.clone());
    let a = keyed(&h, "alpha", "row-1");
    h.sink.wait_for(1).await;
    assert_eq!(fake.jobs().len(), 1);
    // Another member queues the same key without finding its answer first (its lookup ran just
    // before the answer was stored).
    let cfg = s.clone();
    let m = Arc::new(tokio::task::spawn_blocking(move || PgStore::member(&cfg).unwrap()).await.unwrap());
    let again = NewRequest {
        caller: 5,
        key: "k:row-1".into(),
        model_id: Arc::from(MODEL),
        record_type: InvocationType::InvokeModel,
        operation: Operation::InvokeModel,
        native: None,
        body: Bytes::from(body("alpha")),
        deadline_ms: None,
    };
    let writer = m.clone();
    tokio::task::spawn_blocking(move || writer.write(&[Write::Enqueue(vec![again])]).unwrap()).await.unwrap();
    let settled = loop {
        let reader = m.clone();
        let got = tokio::task::spawn_blocking(move || reader.take_settled().unwrap()).await.unwrap();
        if !got.is_empty() {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].caller, 5);
    match &settled[0].outcome {
        Outcome::Output { body, job_arn, .. } => {
            let first = h.sink.get(a).unwrap();
            assert_eq!(body, &first.body, "the stored answer");
            assert_eq!(job_arn.as_deref(), first.job_arn.as_deref());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.jobs().len(), 1, "not batched again");
    m.close();
    h.engine.close().await;
}

/// The reader's view of a group's processes, polled until `ok` (the server releases a closed
/// session's locks a moment after the client lets it go), for at most 5 s.
fn members_until(reader: &PgStore, what: &str, ok: impl Fn(&[bedrock_batch_core::store::GroupMember]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = reader.members().unwrap();
        if ok(&m) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: the group's processes are {m:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_reader_lists_the_groups_live_processes_and_which_one_leads_without_taking_anything() {
    let url = pg_url!();
    let cfg = store_config(&url, &unique("members"));
    let reader = PgStore::reader(&cfg);
    assert_eq!(reader.members().unwrap(), [], "nobody yet");
    let a = PgStore::member(&cfg).unwrap();
    let b = PgStore::member(&cfg).unwrap();
    let other_group = PgStore::member(&store_config(&url, &unique("members-other"))).unwrap();
    let m = reader.members().unwrap();
    assert_eq!(m.len(), 1, "two member sessions of one process are one process: {m:?}");
    assert_eq!(m[0].pid, std::process::id());
    assert!(!m[0].host.is_empty() && !m[0].leads);
    assert!(m[0].since_ms > 1_700_000_000_000, "since is epoch ms: {}", m[0].since_ms);

    let leader = PgStore::try_lead(&cfg).unwrap().expect("nobody leads yet");
    let m = reader.members().unwrap();
    assert!(m.len() == 1 && m[0].leads, "this process leads now: {m:?}");
    assert!(PgStore::try_lead(&cfg).unwrap().is_none(), "the reader took no lead: the leader still holds it");

    leader.close();
    members_until(&reader, "the lead ends with its session", |m| m.len() == 1 && !m[0].leads);
    a.close();
    b.close();
    members_until(&reader, "closed members are gone", |m| m.is_empty());
    other_group.close();
}

/// A plain session on the test server, to look at the tables.
fn sql_session(url: &str) -> postgres::Client {
    postgres::Client::connect(
        &with_password(url, PgUrl::parse(url).unwrap().password.as_deref().unwrap_or("")),
        postgres::NoTls,
    )
    .unwrap()
}

fn settled_output(id: u64, body: &'static [u8]) -> Settled {
    let body = Bytes::from_static(body);
    let outcome =
        Outcome::Output { body, job_arn: Some("arn:job/s".into()), record: Some(id), attempts: 1, service_tier: None };
    Settled::whole(id, outcome)
}

/// Settlements without answers kept in the same write.
fn settle(settled: Vec<Settled>) -> Write {
    Write::Settle { answers: Vec::new(), settled }
}

#[test]
fn a_new_leader_reads_past_what_open_batches_claim_page_by_page_and_hands_each_request_out_once() {
    let url = pg_url!();
    let cfg = store_config(&url, &unique("claims"));
    let m = PgStore::member(&cfg).unwrap();
    let requests: Vec<NewRequest> = (0..30).map(|i| new_request(i, &format!("k:{i}"), "b")).collect();
    m.write(&[Write::Enqueue(requests)]).unwrap();
    let old = PgStore::try_lead(&cfg).unwrap().unwrap();
    let q = old.feed(0, 100).unwrap();
    assert_eq!(q.len(), 30);
    // The first 20 in a job (open: submitted); 20 and 21 in a batch never uploaded (not a job).
    let members = |r: std::ops::Range<usize>| -> Vec<Member> {
        q[r].iter()
            .map(|q| Member { key: q.key.clone(), record: q.id, tries: 0, native: None, deadline_ms: None })
            .collect()
    };
    old.write(&[
        Write::BatchFormed { batch: batch("open"), members: members(0..20) },
        Write::BatchUploaded { token: "open".into(), input_uri: "s3://b/in/open/".into() },
        Write::BatchCreated { token: "open".into(), job_arn: "arn:job/open".into(), total: 20 },
        Write::BatchFormed { batch: batch("never"), members: members(20..22) },
    ])
    .unwrap();
    old.close();
    let new = lead_after_close(&cfg);
    let recovered = new.recover().unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].members.len(), 20);
    // Pages of 5: the 20 claimed ones are read past, not handed out.
    let first = new.feed(0, 5).unwrap();
    assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), q[20..25].iter().map(|r| r.id).collect::<Vec<_>>());
    let rest = new.feed(first[4].id, 5).unwrap();
    assert_eq!(rest.iter().map(|r| r.id).collect::<Vec<_>>(), q[25..30].iter().map(|r| r.id).collect::<Vec<_>>());
    assert!(new.feed(0, 100).unwrap().is_empty(), "each request once, however far back the read starts");
    // Queued later: read on.
    m.write(&[Write::Enqueue(vec![new_request(99, "k:late", "b")])]).unwrap();
    assert_eq!(new.feed(rest[4].id, 5).unwrap().iter().map(|r| &*r.key).collect::<Vec<_>>(), ["k:late"]);
    new.close();
    m.close();
}

#[test]
fn an_output_kept_as_its_keys_answer_is_written_once_and_collected_whole() {
    let url = pg_url!();
    let cfg = store_config(&url, &unique("once"));
    let m = PgStore::member(&cfg).unwrap();
    m.write(&[Write::Enqueue(vec![new_request(1, "k:kept", "b"), new_request(2, "k:other", "b")])]).unwrap();
    let leader = PgStore::try_lead(&cfg).unwrap().unwrap();
    let q = leader.feed(0, 10).unwrap();
    leader
        .write(&[
            // k:kept's answer is kept in the same write: its settled row points at it; k:other's
            // was not kept: its output is written with it.
            Write::Settle {
                answers: vec![output("k:kept", "t", q[0].id, "the answer")],
                settled: vec![
                    Settled { answer: Some(q[0].id), ..settled_output(q[0].id, b"the answer") },
                    settled_output(q[1].id, b"its own"),
                ],
            },
        ])
        .unwrap();
    let mut sql = sql_session(&url);
    let rows = sql
        .query(
            "SELECT caller, answer IS NOT NULL, output FROM bedrock_batch_settled WHERE group_name = $1 ORDER BY caller",
            &[&cfg.group],
        )
        .unwrap();
    let shape: Vec<(i64, bool, Option<Vec<u8>>)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(shape, [(1, true, None), (2, false, Some(b"its own".to_vec()))]);
    let queue: i64 = sql
        .query_one("SELECT count(*) FROM bedrock_batch_requests WHERE group_name = $1", &[&cfg.group])
        .unwrap()
        .get(0);
    assert_eq!(queue, 0, "settled requests leave the queue");
    let got = m.take_settled().unwrap();
    let bodies: Vec<(u64, Vec<u8>)> = got
        .iter()
        .map(|s| match &s.outcome {
            Outcome::Output { body, .. } => (s.caller, body.to_vec()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bodies, [(1, b"the answer".to_vec()), (2, b"its own".to_vec())]);
    // Settled twice (a retried write): the queue row is gone, so nothing is added.
    leader.write(&[settle(vec![settled_output(q[0].id, b"the answer")])]).unwrap();
    assert!(m.take_settled().unwrap().is_empty());
    leader.close();
    m.close();
}

#[test]
fn the_group_vacuums_the_rows_its_settlements_leave_dead() {
    let url = pg_url!();
    let cfg = store_config(&url, &unique("vacuum"));
    let mut sql = sql_session(&url);
    let vacuums = |sql: &mut postgres::Client, table: &str| -> i64 {
        sql.query_one("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = $1", &[&table]).unwrap().get(0)
    };
    let m = PgStore::member(&cfg).unwrap();
    let n = 20_000u64;
    let requests: Vec<NewRequest> = (0..n).map(|i| new_request(i, &format!("k:{i}"), "b")).collect();
    m.write(&[Write::Enqueue(requests)]).unwrap();
    let answers_before = vacuums(&mut sql, "bedrock_batch_answers");
    let leader = PgStore::try_lead(&cfg).unwrap().unwrap();
    let q = leader.feed(0, n as usize).unwrap();
    assert_eq!(q.len() as u64, n);
    // The server's count of vacuums, awaited for at most 10 s; a table another session vacuums
    // is skipped, and vacuumed by the next write or check (the leader's periodic check is one).
    let vacuumed = |sql: &mut postgres::Client, table: &str, than: i64| -> i64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            leader.check_lead().unwrap();
            let n = vacuums(sql, table);
            if n > than || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // A new leader vacuums what its predecessor may have left, the answers last: wait for that.
    assert!(
        vacuumed(&mut sql, "bedrock_batch_answers", answers_before) > answers_before,
        "the new leader vacuumed the answers"
    );
    let before = (vacuums(&mut sql, "bedrock_batch_requests"), vacuums(&mut sql, "bedrock_batch_settled"));
    leader.write(&[settle(q.iter().map(|r| settled_output(r.id, b"a")).collect())]).unwrap();
    let after_settle =
        (vacuumed(&mut sql, "bedrock_batch_requests", before.0), vacuums(&mut sql, "bedrock_batch_settled"));
    assert!(
        after_settle.0 > before.0,
        "the leader vacuumed the queue after {n} settlements: {before:?} {after_settle:?}"
    );
    let mut collected = 0;
    while collected < n {
        let got = m.take_settled().unwrap().len() as u64;
        assert!(got > 0, "every settlement is collected");
        collected += got;
    }
    // The member vacuums the settled rows it deleted as it closes (close waits for that).
    m.close();
    let after_close = vacuums(&mut sql, "bedrock_batch_settled");
    assert!(after_close > after_settle.1, "the member vacuumed the settled rows it deleted as it closed");
    leader.close();
}

#[test]
fn an_answer_a_settled_row_points_at_outlives_the_retention_until_its_member_reads_it() {
    let url = pg_url!();
    let cfg = store_config(&url, &unique("retain"));
    let m = PgStore::member(&cfg).unwrap();
    m.write(&[Write::Enqueue(vec![new_request(1, "k:old", "b")])]).unwrap();
    let leader = PgStore::try_lead(&cfg).unwrap().unwrap();
    let q = leader.feed(0, 10).unwrap();
    leader
        .write(&[Write::Settle {
            answers: vec![output("k:old", "t", q[0].id, "kept answer")],
            settled: vec![Settled { answer: Some(q[0].id), ..settled_output(q[0].id, b"kept answer") }],
        }])
        .unwrap();
    leader.close();
    // The next leader keeps nothing (retention 0) and prunes as it takes the lead.
    let next = lead_after_close(&StoreConfig { retention_days: 0.0, ..cfg.clone() });
    let got = m.take_settled().unwrap();
    assert!(
        matches!(&got[..], [s] if matches!(&s.outcome, Outcome::Output { body, .. } if &body[..] == b"kept answer")),
        "{got:?}"
    );
    next.close();
    m.close();
}
