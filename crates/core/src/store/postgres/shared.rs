//! What the clients of a group share through PostgreSQL: the queue of requests (bodies as rows of
//! `bedrock_batch_requests`), the leader's reads of it, the settlements the clients collect, and
//! the `LISTEN`/`NOTIFY` channel that wakes them (`q`: requests were queued, for the leader; `s`:
//! requests were settled, for the members).
//!
//! Request numbers are the rows' `bigserial` ids, taken under a transaction-level advisory lock
//! per group, so they become visible in order and the leader can read the queue by number
//! (`id > after`) without missing a row committed late. A request's number is also its record
//! number in its batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Notification, Statement};

use super::{connect, digest_of, prepared, release, Client, PgError, CHUNK, CLIENT_LOCK_CLASS, ENQUEUE_LOCK_CLASS};
use crate::config::StoreConfig;
use crate::convert::Native;
use crate::request::{InvocationType, Operation};
use crate::store::{NewRequest, Outcome, QueuedRequest, Settled, SettledRequest};

/// Most settled requests a member takes in one read.
const SETTLED_PAGE: i64 = 20_000;

/// The server's clock in milliseconds, in SQL.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// What a write needs to know of the session.
pub(super) struct Shared<'a> {
    pub group: &'a str,
    pub channel: &'a str,
    /// A member's client number.
    pub client: Option<i64>,
    /// Whether the session leads the group (its batches are of the group's queue).
    pub leads: bool,
}

/// The group's notification channel (an identifier of at most 63 bytes).
pub(super) fn channel(group: &str) -> String {
    use sha2::Digest;
    format!("bedrock_batch_{}", hex::encode(&sha2::Sha256::digest(group.as_bytes())[..8]))
}

/// Drives a session's connection on its runtime, passing its notifications on.
pub(super) fn drive<S, T>(
    rt: &tokio::runtime::Runtime,
    mut connection: tokio_postgres::Connection<S, T>,
) -> (tokio::task::JoinHandle<()>, mpsc::UnboundedReceiver<Notification>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = rt.spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send(n);
            }
        }
    });
    (handle, rx)
}

/// Takes the lock that says member `client` runs (released with its session).
pub(super) fn hold_client_lock(c: &Client, client: i64) -> Result<(), PgError> {
    c.execute("SELECT pg_advisory_lock($1, $2::integer)", &[&CLIENT_LOCK_CLASS, &(client as i32)]).map(|_| ())
}

/// Records a member's process (host and pid) under its client number.
pub(super) fn register_member(c: &Client, group: &str, client: i64) -> Result<(), PgError> {
    c.execute(
        &format!(
            "INSERT INTO bedrock_batch_members (client, group_name, host, pid, since) VALUES ($1, $2, $3, $4, {NOW_MS})
             ON CONFLICT (client) DO NOTHING"
        ),
        &[&client, &group, &crate::store::host_name(), &i64::from(std::process::id())],
    )
    .map(|_| ())
}

/// Records this process as the group's leader (its session holds the group's lock).
pub(super) fn register_lead(c: &Client, group: &str) -> Result<(), PgError> {
    c.execute(
        &format!(
            "INSERT INTO bedrock_batch_leads (group_name, host, pid, backend_pid, since) VALUES ($1, $2, $3, pg_backend_pid(), {NOW_MS})
             ON CONFLICT (group_name) DO UPDATE SET host = excluded.host, pid = excluded.pid, backend_pid = excluded.backend_pid, since = excluded.since"
        ),
        &[&group, &crate::store::host_name(), &i64::from(std::process::id())],
    )
    .map(|_| ())
}

/// The group's processes whose client lock is held now, oldest first, and which one leads (the
/// recorded leader while its session still holds the group's lock).
pub(super) fn members(c: &Client, group: &str) -> Result<Vec<crate::store::GroupMember>, PgError> {
    let locks = "FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let rows = c.query(
        &format!(
            "SELECT m.host, m.pid, m.since FROM bedrock_batch_members m
             WHERE m.group_name = $1 AND m.client IN (SELECT l.objid::bigint {locks} AND l.classid = $2::integer::bigint::oid)
             ORDER BY m.since, m.client"
        ),
        &[&group, &CLIENT_LOCK_CLASS],
    )?;
    let lead = c.query(
        &format!(
            "SELECT d.host, d.pid, d.since FROM bedrock_batch_leads d WHERE d.group_name = $1 AND d.backend_pid IN
               (SELECT l.pid {locks} AND l.classid = $2::integer::bigint::oid AND l.objid = (hashtext($1)::bigint & 4294967295)::oid)"
        ),
        &[&group, &super::GROUP_LOCK_CLASS],
    )?;
    let lead = lead.first().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)));
    let mut out: Vec<crate::store::GroupMember> = rows
        .iter()
        .map(|r| {
            let (host, pid): (String, i64) = (r.get(0), r.get(1));
            let leads = lead.as_ref().is_some_and(|(h, p, _)| *h == host && *p == pid);
            crate::store::GroupMember { host, pid: pid as u32, since_ms: r.get::<_, i64>(2).max(0) as u64, leads }
        })
        .collect();
    // One process has one member session: the same process seen twice is one.
    out.dedup_by(|a, b| {
        a.host == b.host && a.pid == b.pid && {
            b.leads |= a.leads;
            true
        }
    });
    if let Some((host, pid, since)) = lead {
        if !out.iter().any(|m| m.leads) {
            out.insert(
                0,
                crate::store::GroupMember { host, pid: pid as u32, since_ms: since.max(0) as u64, leads: true },
            );
        }
    }
    Ok(out)
}

fn native_code(n: Option<Native>) -> i16 {
    n.map_or(0, |n| i16::from(n.code()))
}

fn native_of(code: i16) -> Option<Native> {
    u8::try_from(code).ok().and_then(|c| Native::from_code(c).ok().flatten())
}

/// Queues a member's requests (one statement), and wakes the leader.
pub(super) fn enqueue(tx: &Client, s: &Shared<'_>, requests: &[NewRequest]) -> Result<u64, PgError> {
    // `write` lets only a member session queue.
    let client = s.client.unwrap_or_default();
    tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&ENQUEUE_LOCK_CLASS, &s.group])?;
    let mut bytes = 0u64;
    for part in requests.chunks(CHUNK) {
        let callers: Vec<i64> = part.iter().map(|r| r.caller as i64).collect();
        let keys: Vec<&str> = part.iter().map(|r| &*r.key).collect();
        let digests: Vec<i64> = part.iter().map(|r| digest_of(&r.key)).collect();
        let models: Vec<&str> = part.iter().map(|r| &*r.model_id).collect();
        let types: Vec<&str> = part.iter().map(|r| r.record_type.as_str()).collect();
        let operations: Vec<&str> = part.iter().map(|r| r.operation.as_str()).collect();
        let natives: Vec<i16> = part.iter().map(|r| native_code(r.native)).collect();
        let bodies: Vec<&[u8]> = part.iter().map(|r| &r.body[..]).collect();
        let deadlines: Vec<Option<i64>> = part.iter().map(|r| r.deadline_ms.map(|d| d as i64)).collect();
        bytes += part.iter().map(|r| (r.body.len() + r.key.len() + r.model_id.len() + 120) as u64).sum::<u64>();
        tx.execute(
            &format!(
                "INSERT INTO bedrock_batch_requests (group_name, client, caller, key, digest, model_id, record_type, operation, native, body, queued_at, deadline_ms)
                 SELECT $1, $2, u.caller, u.key, u.digest, u.model_id, u.record_type, u.operation, u.native, u.body, {NOW_MS}, u.deadline_ms
                 FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::smallint[], $10::bytea[], $11::bigint[])
                   WITH ORDINALITY AS u(caller, key, digest, model_id, record_type, operation, native, body, deadline_ms, n)
                 ORDER BY u.n"
            ),
            &[&s.group, &client, &callers, &keys, &digests, &models, &types, &operations, &natives, &bodies, &deadlines],
        )?;
    }
    tx.execute("SELECT pg_notify($1, 'q')", &[&s.channel])?;
    Ok(bytes)
}

/// A settlement: the queue's row goes, and a row of the settled table takes its place (one
/// statement, so a request settled twice finds no row the second time). An output kept in the
/// answers table (written in the same transaction) is not written again: the row points at it.
pub(super) const SETTLE: &str = "WITH u AS (
       SELECT * FROM unnest($2::bigint[], $3::bytea[], $4::text[], $5::text[], $6::integer[], $7::text[], $8::text[], $9::text[],
                            $10::bigint[], $11::integer[], $12::text[], $13::bigint[])
         AS u(id, output, error_name, error_message, error_status, job_arn, record_id, job_status, record, attempts, service_tier, answer)
     ), gone AS (
       DELETE FROM bedrock_batch_requests r USING u WHERE r.group_name = $1 AND r.id = u.id
       RETURNING r.id, r.client, r.caller, u.answer, u.output, u.error_name, u.error_message, u.error_status, u.job_arn,
                 u.record_id, u.job_status, u.record, u.attempts, u.service_tier
     )
     INSERT INTO bedrock_batch_settled (group_name, client, caller, answer, output, error_name, error_message, error_status, job_arn,
                                        record_id, job_status, record, attempts, service_tier)
     SELECT $1, g.client, g.caller, g.answer, g.output, g.error_name, g.error_message, g.error_status, g.job_arn, g.record_id,
            g.job_status, g.record, g.attempts, g.service_tier
     FROM gone g ORDER BY g.id";

/// Records how requests ended (their queue rows go), and wakes the members.
/// `statement` is [`SETTLE`], prepared on the session.
pub(super) fn settle(
    tx: &Client,
    settle_statement: &Statement,
    s: &Shared<'_>,
    outcomes: &[Settled],
    answer_ids: &HashMap<u64, i64>,
) -> Result<u64, PgError> {
    let mut bytes = 0u64;
    for part in outcomes.chunks(CHUNK) {
        let mut ids = Vec::with_capacity(part.len());
        let mut answers: Vec<Option<i64>> = Vec::with_capacity(part.len());
        let mut outputs: Vec<Option<&[u8]>> = Vec::with_capacity(part.len());
        let mut names: Vec<Option<&str>> = Vec::with_capacity(part.len());
        let mut messages: Vec<Option<&str>> = Vec::with_capacity(part.len());
        let mut statuses: Vec<Option<i32>> = Vec::with_capacity(part.len());
        let mut arns: Vec<Option<&str>> = Vec::with_capacity(part.len());
        let mut record_ids: Vec<Option<&str>> = Vec::with_capacity(part.len());
        let mut job_statuses: Vec<Option<&str>> = Vec::with_capacity(part.len());
        let mut records: Vec<Option<i64>> = Vec::with_capacity(part.len());
        let mut attempts: Vec<i32> = Vec::with_capacity(part.len());
        let mut tiers: Vec<Option<&str>> = Vec::with_capacity(part.len());
        for Settled { id, outcome: o, answer } in part {
            ids.push(*id as i64);
            let kept = answer.and_then(|r| answer_ids.get(&r).copied());
            answers.push(kept);
            match o {
                Outcome::Output { body, job_arn, record, attempts: a, service_tier } => {
                    tiers.push(service_tier.as_deref());
                    bytes += if kept.is_some() { 80 } else { body.len() as u64 + 80 };
                    outputs.push(kept.is_none().then_some(&body[..]));
                    names.push(None);
                    messages.push(None);
                    statuses.push(None);
                    arns.push(job_arn.as_deref());
                    record_ids.push(None);
                    job_statuses.push(None);
                    records.push(record.map(|r| r as i64));
                    attempts.push(*a as i32);
                }
                Outcome::Error { name, message, status, job_arn, record_id, job_status, attempts: a } => {
                    bytes += (name.len() + message.len()) as u64 + 80;
                    outputs.push(None);
                    names.push(Some(name));
                    messages.push(Some(message));
                    statuses.push(status.map(i32::from));
                    arns.push(job_arn.as_deref());
                    record_ids.push(record_id.as_deref());
                    job_statuses.push(job_status.as_deref());
                    records.push(None);
                    attempts.push(*a as i32);
                    tiers.push(None);
                }
            }
        }
        tx.execute_prepared(
            settle_statement,
            &[
                &s.group,
                &ids,
                &outputs,
                &names,
                &messages,
                &statuses,
                &arns,
                &record_ids,
                &job_statuses,
                &records,
                &attempts,
                &tiers,
                &answers,
            ],
        )?;
    }
    tx.execute("SELECT pg_notify($1, 's')", &[&s.channel])?;
    Ok(bytes)
}

/// Counts another try of requests out of their batch (the leader batches them again itself; a
/// next leader reads them from the queue, as no open batch claims them).
pub(super) fn requeue(tx: &Client, s: &Shared<'_>, ids: &[u64]) -> Result<(), PgError> {
    let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    tx.execute(
        "UPDATE bedrock_batch_requests SET tries = tries + 1 WHERE group_name = $1 AND id = ANY($2)",
        &[&s.group, &ids],
    )?;
    Ok(())
}

const FEED: &str = "SELECT id, key, model_id, record_type, operation, native, tries, coalesce(length(body), 0),
       (extract(epoch from clock_timestamp()) * 1000)::bigint - queued_at, deadline_ms
     FROM bedrock_batch_requests WHERE group_name = $1 AND id > $2 ORDER BY id LIMIT $3";

/// The group's queued requests after number `after` (without their bodies), those of the open
/// batches included: the store leaves out what they claim.
pub(super) fn feed(
    c: &Client,
    st: &mut HashMap<&'static str, Statement>,
    group: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<QueuedRequest>, PgError> {
    let s = prepared(c, st, FEED)?;
    let rows = c.query_prepared(&s, &[&group, &(after as i64), &(limit as i64)])?;
    Ok(rows
        .into_iter()
        .map(|r| QueuedRequest {
            id: r.get::<_, i64>(0) as u64,
            key: r.get::<_, &str>(1).into(),
            model_id: r.get(2),
            record_type: InvocationType::parse(r.get::<_, &str>(3)),
            operation: Operation::parse(r.get::<_, &str>(4)).unwrap_or(Operation::InvokeModel),
            native: native_of(r.get(5)),
            tries: r.get::<_, i32>(6).max(0) as u32,
            body_len: r.get::<_, i32>(7).max(0) as u32,
            age_ms: r.get::<_, i64>(8).max(0) as u64,
            deadline_ms: r.get::<_, Option<i64>>(9).and_then(|d| u64::try_from(d).ok()),
        })
        .collect())
}

const BODIES: &str =
    "SELECT id, body FROM bedrock_batch_requests WHERE group_name = $1 AND id = ANY($2) AND body IS NOT NULL";

/// The bodies of requests, by number.
pub(super) fn bodies(
    c: &Client,
    st: &mut HashMap<&'static str, Statement>,
    group: &str,
    ids: &[u64],
) -> Result<Vec<(u64, Bytes)>, PgError> {
    let s = prepared(c, st, BODIES)?;
    let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let rows = c.query_prepared(&s, &[&group, &ids])?;
    Ok(rows.into_iter().map(|r| (r.get::<_, i64>(0) as u64, Bytes::from(r.get::<_, Vec<u8>>(1)))).collect())
}

const SETTLED: &str = "SELECT s.id, s.caller, coalesce(s.output, a.output), s.error_name, s.error_message, s.error_status, s.job_arn, s.record_id,
       s.job_status, s.record, s.attempts, s.service_tier
     FROM bedrock_batch_settled s LEFT JOIN bedrock_batch_answers a ON a.id = s.answer
     WHERE s.client = $2 AND s.group_name = $1 ORDER BY s.id LIMIT $3";

/// A member's settled requests (row numbers, and how each ended).
pub(super) fn settled(
    c: &Client,
    st: &mut HashMap<&'static str, Statement>,
    group: &str,
    client: i64,
) -> Result<(Vec<i64>, Vec<SettledRequest>), PgError> {
    let s = prepared(c, st, SETTLED)?;
    let rows = c.query_prepared(&s, &[&group, &client, &SETTLED_PAGE])?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        ids.push(r.get::<_, i64>(0));
        let attempts = r.get::<_, Option<i32>>(10).unwrap_or(0).max(0) as u32;
        let output: Option<Vec<u8>> = r.get(2);
        let outcome = match (output, r.get::<_, Option<String>>(3)) {
            (None, Some(name)) => Outcome::Error {
                name,
                message: r.get::<_, Option<String>>(4).unwrap_or_default(),
                status: r.get::<_, Option<i32>>(5).and_then(|s| u16::try_from(s).ok()),
                job_arn: r.get(6),
                record_id: r.get(7),
                job_status: r.get(8),
                attempts,
            },
            (output, _) => Outcome::Output {
                body: Bytes::from(output.unwrap_or_default()),
                job_arn: r.get(6),
                record: r.get::<_, Option<i64>>(9).map(|n| n as u64),
                attempts,
                service_tier: r.get(11),
            },
        };
        out.push(SettledRequest { caller: r.get::<_, i64>(1) as u64, outcome });
    }
    Ok((ids, out))
}

/// Takes a member's collected rows out.
pub(super) fn forget(c: &Client, client: i64, ids: &[i64]) -> Result<(), PgError> {
    c.execute("DELETE FROM bedrock_batch_settled WHERE client = $1 AND id = ANY($2)", &[&client, &ids]).map(|_| ())
}

/// Drops the settled rows of members that no longer run (nobody will collect them).
pub(super) fn drop_orphans(c: &Client, group: &str) -> Result<(), PgError> {
    c.execute(
        // The members that run, read once (an ARRAY subquery is evaluated once, not per row).
        "DELETE FROM bedrock_batch_settled r WHERE r.group_name = $1 AND r.client <> ALL (ARRAY(
           SELECT l.objid::bigint FROM pg_locks l WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND l.classid = $2::integer::bigint::oid AND l.objsubid = 2))",
        &[&group, &CLIENT_LOCK_CLASS],
    )?;
    c.execute(
        "DELETE FROM bedrock_batch_members m WHERE m.group_name = $1 AND m.client <> ALL (ARRAY(
           SELECT l.objid::bigint FROM pg_locks l WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND l.classid = $2::integer::bigint::oid AND l.objsubid = 2))",
        &[&group, &CLIENT_LOCK_CLASS],
    )
    .map(|_| ())
}

/// What a new leader puts right before it reads the group: queued requests whose key has an
/// answer (answered while they were in a batch, or queued again meanwhile) are settled with it;
/// settled rows nobody will collect go. (Requests in batches that ended without settling them
/// are read from the queue again: only open batches claim requests.)
pub(super) fn take_over(c: &Client, group: &str) -> Result<(), PgError> {
    c.transaction(|tx| {
        // LATERAL: one index probe of the answers per waiting request, whatever the planner
        // thinks of the tables' sizes (a plain join can scan every answer per request).
        tx.execute(
            "WITH found AS (
               SELECT w.id, x.id AS answer, x.output, x.error_name, x.error_message, x.record, b.job_arn
               FROM bedrock_batch_requests w
               CROSS JOIN LATERAL (SELECT a.id, a.output, a.error_name, a.error_message, a.record, a.batch FROM bedrock_batch_answers a
                                   WHERE a.group_name = w.group_name AND a.digest = w.digest AND a.key = w.key
                                   ORDER BY a.id DESC LIMIT 1) x
               LEFT JOIN bedrock_batch_batches b ON b.id = x.batch
               WHERE w.group_name = $1
             ), gone AS (
               DELETE FROM bedrock_batch_requests r USING found f WHERE r.group_name = $1 AND r.id = f.id
               RETURNING r.id, r.client, r.caller, f.answer, f.output, f.error_name, f.error_message, f.record, f.job_arn
             )
             INSERT INTO bedrock_batch_settled (group_name, client, caller, answer, error_name, error_message, job_arn, record)
             SELECT $1, g.client, g.caller, CASE WHEN g.output IS NOT NULL THEN g.answer END, g.error_name, g.error_message, g.job_arn, g.record
             FROM gone g ORDER BY g.id",
            &[&group],
        )?;
        drop_orphans(tx, group)?;
        tx.execute("SELECT pg_notify($1, 's')", &[&channel(group)])?;
        Ok(())
    })
}

/// A notification of the group, as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreEvent {
    /// The listener (re)connected: anything may have happened meanwhile.
    Connected,
    /// Requests were queued (for the leader).
    Queued,
    /// Requests were settled (for the members).
    Settled,
    /// A member asked for the group's queue to be sent now (for the leader).
    Flush,
    /// A client recorded batches for the leader to take up (adopted jobs).
    TakeUp,
}

/// A listener of the group's notifications; it stops when dropped.
pub struct Listener {
    stop: Arc<AtomicBool>,
}

impl Listener {
    /// Stops it (its connection ends within a moment).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the listener's thread.
pub(super) fn listen(config: StoreConfig, on: Box<dyn Fn(StoreEvent) + Send + Sync>) -> Listener {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let spawned =
        std::thread::Builder::new().name("bbb-pg-listen".into()).spawn(move || run_listener(&config, &*on, &flag));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the store's listener could not start; the group is read on a timer only");
    }
    Listener { stop }
}

fn run_listener(config: &StoreConfig, on: &(dyn Fn(StoreEvent) + Send + Sync), stop: &AtomicBool) {
    let channel = channel(&config.group);
    let mut attempt = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let mut client = match connect(config) {
            Ok(c) => c,
            Err(e) => {
                attempt += 1;
                tracing::warn!(error = %e, "the store's listener cannot connect; trying again");
                sleep_unless_stopped(crate::backoff::backoff(attempt, Duration::from_secs(5)), stop);
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN \"{channel}\"")) {
            tracing::warn!(error = %e, "the store's listener could not listen; trying again");
            release(client);
            attempt += 1;
            sleep_unless_stopped(crate::backoff::backoff(attempt, Duration::from_secs(5)), stop);
            continue;
        }
        attempt = 0;
        on(StoreEvent::Connected);
        while !stop.load(Ordering::SeqCst) && !client.is_closed() {
            let next = client.rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(250), client.notifications.recv()).await
            });
            match next {
                Ok(Some(n)) => match n.payload() {
                    "q" => on(StoreEvent::Queued),
                    "s" => on(StoreEvent::Settled),
                    "f" => on(StoreEvent::Flush),
                    "a" => on(StoreEvent::TakeUp),
                    _ => {}
                },
                // The connection ended.
                Ok(None) => break,
                Err(_) => {}
            }
        }
        release(client);
    }
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = std::time::Instant::now() + d;
    while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50).min(until - std::time::Instant::now()));
    }
}
