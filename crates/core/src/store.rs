//! What the engine records and looks up, behind one trait: [`Store`]. The SQLite journal
//! ([`sqlite::SqliteStore`]) is the first implementation; the store on PostgreSQL
//! ([`postgres::PgStore`]), the first part of a store shared by several processes, implements the
//! same operations with every row scoped by a group.
//!
//! Every operation is a transaction on batches and keys, never a call per row from the hot
//! path: a [`Write`] group is applied in one transaction, a lookup asks for many keys at once.
//! The engine runs every call off the async runtime's worker threads, through the store writer
//! (`writer.rs`), which groups the writes of one moment (one poll round, one job's answers).
//!
//! Keys: a request sent with an `idempotencyKey` has the key `k:<key>`; one sent without has
//! `h:<hash of what decides its answer>#<its occurrence in the run>` (see [`content_key`]).

pub mod postgres;
pub mod sqlite;
pub(crate) mod writer;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use crate::convert::Native;
use crate::error::EngineError;
use crate::request::{InvocationType, InvokeOptions, Operation};
use crate::status::JobStatus;

/// A request's key.
pub type Key = Box<str>;

/// A batch as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    /// The idempotency token of its job (unique per batch).
    pub token: String,
    /// The name its job is created with.
    pub job_name: String,
    /// The model of every record in it.
    pub model_id: String,
    /// Where Bedrock writes its output.
    pub output_uri: String,
    /// What its records' `modelInput` is.
    pub invocation_type: InvocationType,
}

/// A request in a batch: its key, its record number in the batch's input file, tries so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Its request's key.
    pub key: Key,
    /// Its record number in the batch's input file.
    pub record: u64,
    /// Earlier tries: 0 in its first batch.
    pub tries: u32,
    /// A Converse request sent as the model's native record: its answer is converted back.
    pub native: Option<Native>,
    /// When its caller needs the answer by (milliseconds since the Unix epoch): a process that
    /// takes the batch up after a restart sends it on-demand in time.
    pub deadline_ms: Option<u64>,
}

/// A request's final answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The model's output.
    Output(Bytes),
    /// A per-record error that would be the same if sent again.
    Error {
        /// The exception name, as [`ErrorName::as_str`](crate::error::ErrorName::as_str) spells it.
        name: String,
        /// The error's message.
        message: String,
    },
}

/// What a finished request leaves in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRow {
    /// The finished request's key.
    pub key: Key,
    /// The answer to keep, or `None`: no final answer (a later send of the key is a new request).
    pub answer: Option<Answer>,
    /// The batch whose job answered (its token).
    pub batch: Option<Arc<str>>,
    /// Its record number in that batch.
    pub record: u64,
}

/// How a group's request ended, as its leader records it for its member.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// The request's number.
    pub id: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// An output that is the answer kept in the same write: the `record` of that answer row.
    pub answer: Option<u64>,
}

impl Settled {
    /// An outcome written whole.
    pub fn whole(id: u64, outcome: Outcome) -> Settled {
        Settled { id, outcome, answer: None }
    }
}

/// What the store knows of a key that has its final answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Its final answer.
    pub answer: Answer,
    /// The job that answered, when the answer came from one.
    pub job_arn: Option<String>,
    /// Its record number in that job's batch, when known.
    pub record: Option<u64>,
}

/// A write. A group of them is one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A batch was formed with these requests; nothing is uploaded yet.
    BatchFormed {
        /// What the store keeps of the batch.
        batch: BatchRecord,
        /// Its requests.
        members: Vec<Member>,
    },
    /// Its input file is in S3: from now on its job may be created (again, with the same token).
    BatchUploaded {
        /// The batch's token.
        token: String,
        /// `s3://` URI of the folder that holds its input file.
        input_uri: String,
    },
    /// Its job exists.
    BatchCreated {
        /// The batch's token.
        token: String,
        /// Its job's ARN.
        job_arn: String,
        /// Records in its input file, fillers included.
        total: u64,
    },
    /// A job's status or counts changed.
    JobStatus {
        /// The job's ARN.
        job_arn: String,
        /// Its new status.
        status: JobStatus,
        /// Records answered with an output so far.
        success: u64,
        /// Records answered with an error so far.
        errors: u64,
    },
    /// Requests finished.
    Answers(Vec<AnswerRow>),
    /// A batch's job ended and every request in it was answered, retried or let go.
    BatchDone {
        /// The batch's token.
        token: String,
    },
    /// A shared store: requests of this client for the group's leader to batch.
    Enqueue(Vec<NewRequest>),
    /// A shared store: how requests of the group ended, for their clients to collect, with the
    /// answers kept for their keys (written first, in the same transaction: a settled output that
    /// is one of them points at it rather than being written twice).
    Settle {
        /// The answers kept for their keys (as `Answers`).
        answers: Vec<AnswerRow>,
        /// How each request ended.
        settled: Vec<Settled>,
    },
    /// A shared store: requests (by number) out of their batch, to be batched again.
    Release(Vec<u64>),
    /// What the run has committed to spend under its cost cap, in USD (a journal; a shared store
    /// commits with [`Store::commit_spend`] instead).
    Spend(f64),
}

impl Write {
    /// Whether the write decides if a job may be created again: it must reach the disk before
    /// the engine acts on it.
    pub fn is_durable(&self) -> bool {
        matches!(self, Write::BatchUploaded { .. } | Write::BatchCreated { .. })
    }
}

/// Where a batch stood when the last process stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum RecoveredState {
    /// Uploaded; its job may or may not have been created (create again with the same token).
    Creating {
        /// `s3://` URI of the folder that holds its input file.
        input_uri: String,
    },
    /// Its job exists.
    Submitted {
        /// `s3://` URI of the folder that holds its input file.
        input_uri: String,
        /// Its job's ARN.
        job_arn: String,
    },
}

/// A batch to take up again after a restart, with its requests that have no answer yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// The batch as it was formed.
    pub batch: BatchRecord,
    /// How far it got.
    pub state: RecoveredState,
    /// Its requests that have no answer yet.
    pub members: Vec<Member>,
}

/// A job as `jobs()` reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredJob {
    /// Its ARN.
    pub job_arn: String,
    /// The name the engine created it with.
    pub job_name: String,
    /// The model its records go to.
    pub model_id: String,
    /// The job's status (a batch whose job was not created yet shows its state: `formed`, `uploaded`).
    pub status: JobStatus,
    /// Unix seconds.
    pub created_at: i64,
    /// Records in its input file, then as Bedrock reports.
    pub total_record_count: u64,
    /// Records answered with an output, as last reported.
    pub success_record_count: u64,
    /// Records answered with an error, as last reported.
    pub error_record_count: u64,
}

/// One record of a finished job, as `results()` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResult {
    /// Its record number in the job's input file.
    pub record: u64,
    /// Its request's key as stored (`k:...` or `h:...`; see [`display_key`]).
    pub key: String,
    /// What the job answered for it.
    pub answer: Answer,
}

/// The keys a store has final answers for, as far as the engine can know them up front.
#[derive(Debug, Clone)]
pub enum KnownKeys {
    /// Exactly these (by [`short_digest`]); any other key certainly has no answer. A store only
    /// this engine writes can say so.
    These(HashSet<u64>),
    /// Any key may have one (a store other processes write too): look every key up.
    Any,
}

/// A request a client hands to its group's leader (a shared store).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequest {
    /// The caller's id in this client.
    pub caller: u64,
    /// Its key in the store.
    pub key: Key,
    /// The model it goes to.
    pub model_id: Arc<str>,
    /// The kind of record it goes as.
    pub record_type: InvocationType,
    /// What the caller asked (`InvokeModel`, `Converse`, ...).
    pub operation: Operation,
    /// A Converse request sent as the model's native record.
    pub native: Option<Native>,
    /// The body its record carries (`modelInput`).
    pub body: Bytes,
    /// When its caller needs the answer by (milliseconds since the Unix epoch): the leader sends
    /// it on-demand in time.
    pub deadline_ms: Option<u64>,
}

/// A request of the group waiting for a batch, as the leader reads it (its body stays in the store).
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRequest {
    /// Its number in the group (also its record number in its batch).
    pub id: u64,
    /// Its key in the store.
    pub key: Key,
    /// The model it goes to.
    pub model_id: String,
    /// The kind of record it goes as.
    pub record_type: InvocationType,
    /// What the caller asked (`InvokeModel`, `Converse`, ...).
    pub operation: Operation,
    /// A Converse request sent as the model's native record.
    pub native: Option<Native>,
    /// Earlier tries: 0 before its first batch.
    pub tries: u32,
    /// Its body's length in bytes (the body is read with [`Store::bodies`]).
    pub body_len: u32,
    /// How long ago it was queued, in milliseconds.
    pub age_ms: u64,
    /// When its caller needs the answer by (milliseconds since the Unix epoch).
    pub deadline_ms: Option<u64>,
}

/// How a request of a shared group ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An answer.
    Output {
        /// The model's answer.
        body: Bytes,
        /// The job that answered, if one did.
        job_arn: Option<String>,
        /// The record that answered, in that job's input file.
        record: Option<u64>,
        /// How many times it was sent.
        attempts: u32,
        /// The service tier an on-demand call was served on, as the runtime echoed it.
        service_tier: Option<String>,
    },
    /// An error, with what its exception carries.
    Error {
        /// The exception name.
        name: String,
        /// The error's message.
        message: String,
        /// The HTTP status, where one is known.
        status: Option<u16>,
        /// The job it failed in, if any.
        job_arn: Option<String>,
        /// Its record id in that job, if any.
        record_id: Option<String>,
        /// The job's status, for `BatchJobFailedException`.
        job_status: Option<String>,
        /// How many times it was sent.
        attempts: u32,
    },
}

/// A request of this client that its group settled.
#[derive(Debug, Clone, PartialEq)]
pub struct SettledRequest {
    /// The caller's id in this client.
    pub caller: u64,
    /// How it ended.
    pub outcome: Outcome,
}

fn not_shared() -> EngineError {
    EngineError::internal("this store is not shared by a group of clients")
}

/// The engine's store.
pub trait Store: Send + Sync + 'static {
    /// Batches left being created or running by an earlier process, with their members that
    /// have no answer yet. Batches that never finished uploading are dropped (their requests are
    /// sent again by their callers).
    fn recover(&self) -> Result<Vec<Recovered>, EngineError>;
    /// The keys with final answers, read once when the engine starts.
    fn known_keys(&self) -> Result<KnownKeys, EngineError>;
    /// Applies writes, in order, in one transaction; durable ones reach the disk before it returns.
    fn write(&self, writes: &[Write]) -> Result<(), EngineError>;
    /// The final answers of keys (`None` where there is none).
    fn lookup(&self, keys: &[Key]) -> Result<Vec<Option<Finished>>, EngineError>;
    /// The jobs it holds, oldest first.
    fn jobs(&self) -> Result<Vec<StoredJob>, EngineError>;
    /// Answers of one job, in record order, `limit` at a time after record `after`.
    fn results(&self, job_arn: &str, after: Option<u64>, limit: usize) -> Result<Vec<StoredResult>, EngineError>;
    /// Where it is and its size in bytes, for `stats()`.
    fn location(&self) -> (String, u64);
    /// Releases it (its lock); later writes fail, reads may still work.
    fn close(&self);

    /// A shared store: up to `limit` requests of the group waiting for a batch that the leader
    /// has not read yet (numbers above `after`), oldest first.
    fn feed(&self, _after: u64, _limit: usize) -> Result<Vec<QueuedRequest>, EngineError> {
        Err(not_shared())
    }
    /// A shared store: the bodies of requests, by number.
    fn bodies(&self, _ids: &[u64]) -> Result<Vec<(u64, Bytes)>, EngineError> {
        Err(not_shared())
    }
    /// A shared store: takes the settled requests of this client out of the store.
    fn take_settled(&self) -> Result<Vec<SettledRequest>, EngineError> {
        Err(not_shared())
    }
    /// A shared store: asks the group's leader to send its queue now.
    fn request_flush(&self) -> Result<(), EngineError> {
        Ok(())
    }
    /// A shared store: asks the group's leader to take up the batches recorded since it started
    /// leading (jobs adopted by a client of the group).
    fn request_take_up(&self) -> Result<(), EngineError> {
        Ok(())
    }
    /// A shared store: fails unless this session still holds the group's lead.
    fn check_lead(&self) -> Result<(), EngineError> {
        Ok(())
    }

    /// What the run (a journal) or the group (a shared store) has committed to spend, in USD.
    fn committed_spend(&self) -> Result<f64, EngineError> {
        Ok(0.0)
    }

    /// A shared store: commits `estimate` USD for the group if its committed spend stays within
    /// `cap`, atomically: `Ok(total)` after it, or `Err(total)` (refused) as it stands.
    fn commit_spend(&self, _estimate: f64, _cap: f64) -> Result<Result<f64, f64>, EngineError> {
        Err(not_shared())
    }

    /// Keeps a document of the doors (the wires' files and batches), by kind and id: inserted,
    /// or replaced where it keeps its place in [`Store::list_objects`].
    fn put_object(&self, _kind: &str, _id: &str, _body: &[u8]) -> Result<(), EngineError> {
        Err(no_objects())
    }
    /// A document, if there is one.
    fn get_object(&self, _kind: &str, _id: &str) -> Result<Option<Vec<u8>>, EngineError> {
        Err(no_objects())
    }
    /// The documents of a kind, `(id, body)` in the order they were first put.
    fn list_objects(&self, _kind: &str) -> Result<Vec<(String, Vec<u8>)>, EngineError> {
        Err(no_objects())
    }
    /// Deletes a document: whether there was one.
    fn delete_object(&self, _kind: &str, _id: &str) -> Result<bool, EngineError> {
        Err(no_objects())
    }

    /// A shared store: the processes of the group (alive now) and which one leads.
    fn members(&self) -> Result<Vec<GroupMember>, EngineError> {
        Ok(Vec::new())
    }
}

/// This machine's name, for a group's list of its processes.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

fn no_objects() -> EngineError {
    EngineError::internal("this store keeps no documents")
}

/// A process of a group, as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it joined the group (epoch ms).
    pub since_ms: u64,
    /// Whether it leads the group now.
    pub leads: bool,
}

/// Packs members: per member, record (8 bytes), tries (4), a flags byte (its answer's conversion
/// in the low bits, [`Native::code`]; [`HAS_DEADLINE`]: a deadline follows the
/// key), key length (4), the key, and the deadline (8) when there is one, little-endian.
pub(crate) fn pack_members(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::with_capacity(members.iter().map(|m| 25 + m.key.len()).sum());
    for m in members {
        out.extend_from_slice(&m.record.to_le_bytes());
        out.extend_from_slice(&m.tries.to_le_bytes());
        let native = m.native.map_or(0, Native::code);
        out.push(if m.deadline_ms.is_some() { native | HAS_DEADLINE } else { native });
        out.extend_from_slice(&(m.key.len() as u32).to_le_bytes());
        out.extend_from_slice(m.key.as_bytes());
        if let Some(d) = m.deadline_ms {
            out.extend_from_slice(&d.to_le_bytes());
        }
    }
    out
}

/// The flag of a packed member that has a deadline (stores written before deadlines have none).
const HAS_DEADLINE: u8 = 0x80;

pub(crate) fn unpack_members(mut b: &[u8]) -> Option<Vec<Member>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 17 {
            return None;
        }
        let record = u64::from_le_bytes(b[..8].try_into().ok()?);
        let tries = u32::from_le_bytes(b[8..12].try_into().ok()?);
        let native = Native::from_code(b[12] & !HAS_DEADLINE).ok()?;
        let n = u32::from_le_bytes(b[13..17].try_into().ok()?) as usize;
        let key = std::str::from_utf8(b.get(17..17 + n)?).ok()?;
        let mut end = 17 + n;
        let deadline_ms = if b[12] & HAS_DEADLINE != 0 {
            end += 8;
            Some(u64::from_le_bytes(b.get(end - 8..end)?.try_into().ok()?))
        } else {
            None
        };
        out.push(Member { key: key.into(), record, tries, native, deadline_ms });
        b = &b[end..];
    }
    Some(out)
}

/// A key in more than one unfinished batch (sent again after its batch let it go) belongs to
/// the newest: it is taken out of the older ones (`batches` oldest first).
pub(crate) fn newest_owns_its_keys(batches: &mut [Recovered]) {
    let mut seen: HashSet<Key> = HashSet::new();
    for b in batches.iter_mut().rev() {
        b.members.retain(|m| seen.insert(m.key.clone()));
    }
}

/// The key of a request sent without an `idempotencyKey`: a hash of what decides the answer
/// (model, body, accept, trace and guardrail options) and its occurrence in this run.
pub fn content_key(digest: &[u8; 16], occurrence: u32) -> Key {
    format!("h:{}#{occurrence}", hex::encode(digest)).into()
}

/// The first 16 bytes of the SHA-256 of what decides a request's answer.
pub fn content_digest(model_id: &str, body: &[u8], options: &InvokeOptions) -> [u8; 16] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for part in [
        Some(model_id.as_bytes()),
        Some(body),
        options.accept.as_deref().map(str::as_bytes),
        options.trace.as_deref().map(str::as_bytes),
        options.guardrail_identifier.as_deref().map(str::as_bytes),
        options.guardrail_version.as_deref().map(str::as_bytes),
    ] {
        let p = part.unwrap_or_default();
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// The key of a request sent with an `idempotencyKey`.
pub fn explicit_key(key: &str) -> Key {
    format!("k:{key}").into()
}

/// A fixed-size handle for a key, for the in-memory maps.
pub fn key_digest(key: &str) -> [u8; 16] {
    use sha2::Digest;
    let mut out = [0u8; 16];
    out.copy_from_slice(&sha2::Sha256::digest(key.as_bytes())[..16]);
    out
}

/// The 8-byte form of a key digest, for [`KnownKeys`].
pub fn short_digest(digest: &[u8; 16]) -> u64 {
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The key as callers gave it (`idempotencyKey`), or the content key as stored.
pub fn display_key(key: &str) -> &str {
    key.strip_prefix("k:").unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::ModelFamily;

    #[test]
    fn content_keys_depend_on_what_decides_the_answer() {
        let o = InvokeOptions::default();
        let d = content_digest("m", b"{}", &o);
        assert_eq!(content_key(&d, 1), content_key(&content_digest("m", b"{}", &o), 1));
        assert_ne!(content_key(&d, 1), content_key(&d, 2));
        assert_ne!(d, content_digest("m2", b"{}", &o));
        assert_ne!(d, content_digest("m", b"{ }", &o));
        let accept = InvokeOptions { accept: Some("*/*".into()), ..Default::default() };
        assert_ne!(d, content_digest("m", b"{}", &accept));
        let meta = InvokeOptions { request_metadata: Some("x".into()), ..Default::default() };
        assert_eq!(d, content_digest("m", b"{}", &meta));
        assert_eq!(display_key(&explicit_key("row-1")), "row-1");
    }

    #[test]
    fn members_pack_with_their_deadlines_and_members_packed_before_deadlines_still_read() {
        let members = vec![
            Member { key: "k:a".into(), record: 1, tries: 0, native: None, deadline_ms: Some(1_765_000_000_000) },
            Member {
                key: "h:b".into(),
                record: 7,
                tries: 2,
                native: Some(Native::of(ModelFamily::Nova)),
                deadline_ms: None,
            },
            Member {
                key: "k:c".into(),
                record: 9,
                tries: 1,
                native: Some(Native { family: ModelFamily::Claude, delta_stop_sequence: true }),
                deadline_ms: Some(5),
            },
        ];
        assert_eq!(unpack_members(&pack_members(&members)), Some(members.clone()));
        // The format of earlier versions: no flag, no deadline after the key.
        let mut old = Vec::new();
        old.extend_from_slice(&7u64.to_le_bytes());
        old.extend_from_slice(&2u32.to_le_bytes());
        old.push(2);
        old.extend_from_slice(&3u32.to_le_bytes());
        old.extend_from_slice(b"h:b");
        assert_eq!(unpack_members(&old), Some(vec![members[1].clone()]));
        let packed = pack_members(&members[..1]);
        assert_eq!(unpack_members(&packed[..packed.len() - 1]), None, "a cut deadline is no member");
    }
}
