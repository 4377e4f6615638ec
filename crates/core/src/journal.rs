//! The durable journal: an SQLite file (the library is compiled in) in which the engine records
//! each batch and each request before acting on it, and each final answer when a job ends, so a
//! process that dies can be started again without losing answers or paying twice.
//!
//! Tables: `batches` (one row per batch: its job name, idempotency token, input file, job ARN and
//! state `uploading` → `creating` → `submitted` → `done`) and `requests` (one row per request key:
//! its batch and record number while it is in a job, its answer once it is `done`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::error::{EngineError, ErrorName};

/// The schema version kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS batches (
  token TEXT PRIMARY KEY,
  job_name TEXT NOT NULL,
  model_id TEXT NOT NULL,
  input_uri TEXT,
  output_uri TEXT NOT NULL,
  state TEXT NOT NULL,
  job_arn TEXT UNIQUE,
  status TEXT,
  created_at INTEGER NOT NULL,
  finished_at INTEGER,
  total INTEGER NOT NULL DEFAULT 0,
  success INTEGER NOT NULL DEFAULT 0,
  errors INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS requests (
  key TEXT PRIMARY KEY,
  batch TEXT,
  record INTEGER,
  tries INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL,
  job_arn TEXT,
  output BLOB,
  error_name TEXT,
  error_message TEXT,
  finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS requests_batch ON requests(batch, record);
CREATE INDEX IF NOT EXISTS requests_arn ON requests(job_arn, record);
";

/// Where the journal is and how long it keeps finished work.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The SQLite file (its folder is created when missing).
    pub path: PathBuf,
    /// Finished entries older than this many days are pruned when the journal opens.
    pub retention_days: f64,
}

/// A batch as the journal knows it.
#[derive(Debug, Clone)]
pub struct BatchRow {
    pub token: String,
    pub job_name: String,
    pub model_id: String,
    pub input_uri: Option<String>,
    pub output_uri: String,
    pub state: String,
    pub job_arn: Option<String>,
}

/// A request in a batch: its key, its record number in the batch's input file, tries so far.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub key: Box<str>,
    pub record: u64,
    pub tries: u32,
}

/// A request's final answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The model's output.
    Output(Vec<u8>),
    /// A per-record error that would be the same if sent again.
    Error { name: String, message: String },
}

/// An answer to record, borrowed from the settlement that carries it.
#[derive(Debug, Clone, Copy)]
pub enum AnswerRef<'a> {
    Output(&'a [u8]),
    Error { name: &'a str, message: &'a str },
}

/// What the journal knows of a key.
#[derive(Debug, Clone)]
pub struct Finished {
    pub answer: Answer,
    pub job_arn: Option<String>,
    pub record: Option<u64>,
}

/// A job as `jobs()` reports it.
#[derive(Debug, Clone, Default)]
pub struct JournalJob {
    pub job_arn: String,
    pub job_name: String,
    pub model_id: String,
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
    pub total_record_count: u64,
    pub success_record_count: u64,
    pub error_record_count: u64,
}

/// One record of a finished job, as `results()` reports it.
#[derive(Debug, Clone)]
pub struct JournalResult {
    pub record: u64,
    pub key: String,
    pub answer: Answer,
}

/// A batch to take up again after a restart, with the requests in it that have no answer yet.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub batch: BatchRow,
    pub requests: Vec<RequestRow>,
}

/// The open journal. One process at a time: the file stays locked while it is open.
pub struct Journal {
    /// `None` once closed (the lock is released).
    conn: Mutex<Option<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish_non_exhaustive()
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Journal {
    /// Opens (or creates) the journal, locks it for this process, and prunes old entries.
    /// Another process holding it gives `JournalLockedException`; a file that is not a journal
    /// or cannot be read gives `JournalCorruptedException`; neither is ever replaced.
    pub fn open(config: &JournalConfig) -> Result<Journal, EngineError> {
        let path = config.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| corrupted(&path, &e.to_string()))?;
        }
        let conn = Connection::open(&path).map_err(|e| open_error(&path, &e))?;
        let setup = || -> rusqlite::Result<i64> {
            conn.busy_timeout(std::time::Duration::ZERO)?;
            // Exclusive locking: the lock is taken by the first write below and held until the
            // journal closes (also no shared-memory file beside the WAL).
            conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // NORMAL: a commit survives the process being killed (it is in the write-ahead log);
            // the steps that decide whether a job may be created again are also flushed to
            // disk before going on (`durable`), so they survive a power loss too.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // Room for the pages a 50,000-record batch touches (the default is 2 MB).
            conn.pragma_update(None, "cache_size", -65_536)?;
            // Checkpoints (each one flushes the log and the file to disk) every 64 MB of log rather
            // than every 4 MB: a job's answers are written a dozen times less often. The log file
            // is cut back to 64 MB after a checkpoint.
            conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
            conn.pragma_update(None, "journal_size_limit", 64 << 20)?;
            Ok(version)
        };
        let version = setup().map_err(|e| open_error(&path, &e))?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0)).map_err(|e| open_error(&path, &e))?;
        if tables > 0 && version != SCHEMA_VERSION {
            return Err(corrupted(&path, "it is not a bedrock-batch-bridge journal (or one of another version)"));
        }
        let init = || -> rusqlite::Result<()> {
            conn.execute_batch(&format!("BEGIN EXCLUSIVE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))?;
            conn.query_row("PRAGMA quick_check(1)", [], |r| r.get::<_, String>(0)).and_then(|s| {
                if s == "ok" {
                    Ok(())
                } else {
                    Err(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT), Some(s)))
                }
            })
        };
        init().map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            open_error(&path, &e)
        })?;
        let journal = Journal { conn: Mutex::new(Some(conn)), path };
        journal.prune(config.retention_days)?;
        Ok(journal)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The journal's size on disk (the file and its write-ahead log).
    pub fn bytes(&self) -> u64 {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        size(&self.path) + size(Path::new(&wal))
    }

    /// Runs `f` on the connection; fails once the journal is closed.
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, EngineError> {
        let mut guard = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(c) = guard.as_mut() else {
            return Err(EngineError::closed(format!("The journal {} is closed (its client was closed).", self.path.display())));
        };
        f(c).map_err(|e| self.write_error(&e))
    }

    /// Runs a query. Once the journal is closed (its client too), it reads the file through a
    /// read-only connection of its own, so a script can still list jobs and read answers.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, EngineError> {
        {
            let guard = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(c) = guard.as_ref() {
                return f(c).map_err(|e| self.write_error(&e));
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let c = Connection::open_with_flags(&self.path, flags).map_err(|e| open_error(&self.path, &e))?;
        c.busy_timeout(std::time::Duration::ZERO).map_err(|e| open_error(&self.path, &e))?;
        f(&c).map_err(|e| open_error(&self.path, &e))
    }

    /// Closes the file and releases its lock; later writes fail with `ClientClosedException`,
    /// reads (`jobs`, `results`) open the file again, read-only.
    pub fn close(&self) {
        let conn = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        drop(conn);
    }

    /// Drops finished work older than the retention, and what a dead process left unsubmitted.
    fn prune(&self, retention_days: f64) -> Result<(), EngineError> {
        let cutoff = now() - (retention_days.max(0.0) * 86400.0) as i64;
        self.with(|c| {
        let tx = c.transaction()?;
        tx.execute("DELETE FROM requests WHERE state = 'done' AND finished_at <= ?1", [cutoff])?;
        tx.execute("DELETE FROM batches WHERE state = 'done' AND finished_at <= ?1", [cutoff])?;
        // A batch whose upload never completed was never a job: its requests are sent anew.
        tx.execute("DELETE FROM requests WHERE state = 'batched' AND batch IN (SELECT token FROM batches WHERE state = 'uploading')", [])?;
        tx.execute("DELETE FROM batches WHERE state = 'uploading'", [])?;
        // Requests whose job ended without their answer (they were being retried when the process died).
        tx.execute(
            "DELETE FROM requests WHERE state = 'batched' AND (batch IS NULL OR batch NOT IN (SELECT token FROM batches WHERE state IN ('creating', 'submitted')))",
            [],
        )?;
        tx.commit()
        })
    }

    /// Records a new batch and its requests, before anything is uploaded.
    pub fn batch_started(&self, batch: &BatchRow, requests: &[RequestRow]) -> Result<(), EngineError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO batches (token, job_name, model_id, output_uri, state, created_at) VALUES (?1, ?2, ?3, ?4, 'uploading', ?5)",
                params![batch.token, batch.job_name, batch.model_id, batch.output_uri, now()],
            )?;
            {
                let mut st = tx.prepare_cached("INSERT OR REPLACE INTO requests (key, batch, record, tries, state) VALUES (?1, ?2, ?3, ?4, 'batched')")?;
                for r in requests {
                    st.execute(params![&*r.key, batch.token, r.record as i64, r.tries])?;
                }
            }
            tx.commit()
        })
    }

    /// The input file is in S3: the job may be created now (and again, with the same token).
    pub fn batch_uploaded(&self, token: &str, input_uri: &str) -> Result<(), EngineError> {
        self.with(|c| durable(c, |c| c.execute("UPDATE batches SET state = 'creating', input_uri = ?2 WHERE token = ?1", params![token, input_uri]).map(drop)))
    }

    /// The job exists.
    pub fn batch_submitted(&self, token: &str, job_arn: &str, total: u64) -> Result<(), EngineError> {
        self.with(|c| {
            durable(c, |c| {
                c.execute(
                    "UPDATE batches SET state = 'submitted', job_arn = ?2, status = 'Submitted', total = ?3 WHERE token = ?1",
                    params![token, job_arn, total as i64],
                )
                .map(drop)
            })
        })
    }

    /// A job's status or counts changed.
    pub fn job_status(&self, job_arn: &str, status: &str, success: u64, errors: u64) {
        let r = self.with(|c| {
            c.execute("UPDATE batches SET status = ?2, success = ?3, errors = ?4 WHERE job_arn = ?1", params![job_arn, status, success as i64, errors as i64])
        });
        self.log(r);
    }

    /// A batch's job ended and every request in it was answered, retried or let go.
    pub fn batch_done(&self, token: &str) {
        let r = self.with(|c| c.execute("UPDATE batches SET state = 'done', finished_at = ?2 WHERE token = ?1", params![token, now()]));
        self.log(r);
    }

    /// Records final answers (`Some`) and lets go of requests that must be sent again to get one
    /// (`None`: their rows are removed, so a later send of the key is a new request).
    pub fn finish(&self, entries: &[(&str, Option<(AnswerRef<'_>, Option<&str>)>)]) {
        if entries.is_empty() {
            return;
        }
        let r = self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut done = tx.prepare_cached(
                    "INSERT INTO requests (key, state, job_arn, output, error_name, error_message, finished_at) VALUES (?1, 'done', ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(key) DO UPDATE SET state = 'done', job_arn = ?2, output = ?3, error_name = ?4, error_message = ?5, finished_at = ?6",
                )?;
                let mut drop_row = tx.prepare_cached("DELETE FROM requests WHERE key = ?1")?;
                let t = now();
                for (key, answer) in entries {
                    match answer {
                        Some((AnswerRef::Output(bytes), arn)) => done.execute(params![key, arn, bytes, None::<String>, None::<String>, t])?,
                        Some((AnswerRef::Error { name, message }, arn)) => done.execute(params![key, arn, None::<Vec<u8>>, name, message, t])?,
                        None => drop_row.execute([key])?,
                    };
                }
            }
            tx.commit()
        });
        self.log(r);
    }

    /// A key's final answer, when it has one.
    pub fn finished(&self, key: &str) -> Result<Option<Finished>, EngineError> {
        self.with(|c| {
            c.prepare_cached("SELECT output, error_name, error_message, job_arn, record FROM requests WHERE key = ?1 AND state = 'done'").and_then(|mut st| {
                st.query_row([key], |r| Ok(Finished { answer: answer_at(r, 0)?, job_arn: r.get(3)?, record: r.get::<_, Option<i64>>(4)?.map(|n| n as u64) }))
                    .optional()
            })
        })
    }

    /// Batches that were being created or were running when the last process stopped.
    pub fn recoverable(&self) -> Result<Vec<Recovered>, EngineError> {
        self.with(|c| -> rusqlite::Result<Vec<Recovered>> {
            let mut st = c.prepare(
                "SELECT token, job_name, model_id, input_uri, output_uri, state, job_arn FROM batches WHERE state IN ('creating', 'submitted') ORDER BY created_at, token",
            )?;
            let batches: Vec<BatchRow> = st
                .query_map([], |r| {
                    Ok(BatchRow {
                        token: r.get(0)?,
                        job_name: r.get(1)?,
                        model_id: r.get(2)?,
                        input_uri: r.get(3)?,
                        output_uri: r.get(4)?,
                        state: r.get(5)?,
                        job_arn: r.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut rq = c.prepare("SELECT key, record, tries FROM requests WHERE batch = ?1 AND state = 'batched' ORDER BY record")?;
            let mut out = Vec::with_capacity(batches.len());
            for batch in batches {
                let requests = rq
                    .query_map([&batch.token], |r| {
                        Ok(RequestRow { key: r.get::<_, String>(0)?.into(), record: r.get::<_, i64>(1)? as u64, tries: r.get(2)? })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                out.push(Recovered { batch, requests });
            }
            Ok(out)
        })
    }

    /// The jobs the journal holds, oldest first.
    pub fn jobs(&self) -> Result<Vec<JournalJob>, EngineError> {
        self.read(|c| -> rusqlite::Result<Vec<JournalJob>> {
            let mut st = c.prepare(
                "SELECT job_arn, job_name, model_id, coalesce(status, state), created_at, total, success, errors FROM batches WHERE job_arn IS NOT NULL ORDER BY created_at, token",
            )?;
            let rows = st.query_map([], |r| {
                Ok(JournalJob {
                    job_arn: r.get(0)?,
                    job_name: r.get(1)?,
                    model_id: r.get(2)?,
                    status: r.get(3)?,
                    created_at: r.get(4)?,
                    total_record_count: r.get::<_, i64>(5)? as u64,
                    success_record_count: r.get::<_, i64>(6)? as u64,
                    error_record_count: r.get::<_, i64>(7)? as u64,
                })
            })?;
            rows.collect()
        })
    }

    /// Answers of one job, in record order, `limit` at a time after record `after`.
    pub fn results(&self, job_arn: &str, after: Option<u64>, limit: usize) -> Result<Vec<JournalResult>, EngineError> {
        self.read(|c| -> rusqlite::Result<Vec<JournalResult>> {
            let mut st = c.prepare_cached(
                "SELECT record, key, output, error_name, error_message FROM requests
                 WHERE job_arn = ?1 AND state = 'done' AND record > ?2 ORDER BY record LIMIT ?3",
            )?;
            let rows = st.query_map(params![job_arn, after.map_or(-1, |a| a as i64), limit as i64], |r| {
                Ok(JournalResult { record: r.get::<_, i64>(0)? as u64, key: r.get(1)?, answer: answer_at(r, 2)? })
            })?;
            rows.collect()
        })
    }

    fn write_error(&self, e: &rusqlite::Error) -> EngineError {
        if is_corruption(e) {
            return corrupted(&self.path, &e.to_string());
        }
        EngineError::new(ErrorName::InternalServerException, format!("The journal {} could not be written: {e}", self.path.display()))
    }

    fn log<T>(&self, r: Result<T, EngineError>) {
        if let Err(e) = r {
            tracing::error!(journal = %self.path.display(), error = %e, "journal write failed");
        }
    }
}

/// A stored answer: the columns `output, error_name, error_message` from column `i` on. A done
/// row has an output or an error name.
fn answer_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Answer> {
    let output: Option<Vec<u8>> = r.get(i)?;
    let name: Option<String> = r.get(i + 1)?;
    let message: Option<String> = r.get(i + 2)?;
    Ok(match (output, name) {
        (Some(o), _) => Answer::Output(o),
        (None, Some(name)) => Answer::Error { name, message: message.unwrap_or_default() },
        (None, None) => Answer::Output(Vec::new()),
    })
}

/// Runs one write with `synchronous = FULL`: flushed to disk before it returns.
fn durable<T>(c: &mut Connection, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    c.pragma_update(None, "synchronous", "FULL")?;
    let r = f(c);
    c.pragma_update(None, "synchronous", "NORMAL")?;
    r
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase))
}

fn corrupted(path: &Path, why: &str) -> EngineError {
    EngineError::new(
        ErrorName::JournalCorruptedException,
        format!("The journal {} cannot be used: {why}. It was left as it is; move it away or point journal.path elsewhere.", path.display()),
    )
}

fn open_error(path: &Path, e: &rusqlite::Error) -> EngineError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => EngineError::new(
            ErrorName::JournalLockedException,
            format!("The journal {} is in use by another client or process (one journal serves one client at a time).", path.display()),
        ),
        _ => corrupted(path, &e.to_string()),
    }
}

/// The journal key of a request sent without an `idempotencyKey`: a hash of what decides the
/// answer (model, body, accept, trace and guardrail options), and its occurrence in this run.
pub fn content_key(model_id: &str, body: &[u8], options: &crate::request::InvokeOptions, occurrence: u32) -> String {
    format!("h:{}#{occurrence}", hex::encode(content_digest(model_id, body, options)))
}

/// The first 16 bytes of the SHA-256 of what decides a request's answer.
pub fn content_digest(model_id: &str, body: &[u8], options: &crate::request::InvokeOptions) -> [u8; 16] {
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

/// The journal key of a request sent with an `idempotencyKey`.
pub fn explicit_key(key: &str) -> String {
    format!("k:{key}")
}

/// A fixed-size handle for a key, for the in-memory maps.
pub fn key_digest(key: &str) -> [u8; 16] {
    use sha2::Digest;
    let mut out = [0u8; 16];
    out.copy_from_slice(&sha2::Sha256::digest(key.as_bytes())[..16]);
    out
}

/// The key as callers gave it (`idempotencyKey`), or the content key as stored.
pub fn display_key(key: &str) -> &str {
    key.strip_prefix("k:").unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> JournalConfig {
        let dir = std::env::temp_dir().join(format!("bbb-journal-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        JournalConfig { path: dir.join("j.db"), retention_days: 7.0 }
    }

    fn batch(token: &str) -> BatchRow {
        BatchRow {
            token: token.into(),
            job_name: format!("name-{token}"),
            model_id: "m".into(),
            input_uri: None,
            output_uri: "s3://b/out/".into(),
            state: String::new(),
            job_arn: None,
        }
    }

    fn rows(keys: &[&str]) -> Vec<RequestRow> {
        keys.iter().enumerate().map(|(i, k)| RequestRow { key: (*k).into(), record: i as u64 + 1, tries: 0 }).collect()
    }

    #[test]
    fn batches_are_taken_up_by_state_after_a_restart() {
        let cfg = temp("states");
        {
            let j = Journal::open(&cfg).unwrap();
            j.batch_started(&batch("uploading"), &rows(&["u1"])).unwrap();
            j.batch_started(&batch("creating"), &rows(&["c1", "c2"])).unwrap();
            j.batch_uploaded("creating", "s3://b/in/creating/").unwrap();
            j.batch_started(&batch("running"), &rows(&["r1", "r2"])).unwrap();
            j.batch_uploaded("running", "s3://b/in/running/").unwrap();
            j.batch_submitted("running", "arn:job/1", 2).unwrap();
            j.finish(&[("r1", Some((AnswerRef::Output(b"{\"a\":1}"), Some("arn:job/1"))))]);
        }
        let j = Journal::open(&cfg).unwrap();
        let mut rec = j.recoverable().unwrap();
        rec.sort_by(|a, b| a.batch.token.cmp(&b.batch.token));
        assert_eq!(rec.len(), 2, "the batch that never finished uploading is dropped");
        assert_eq!(rec[0].batch.state, "creating");
        assert_eq!(rec[0].batch.input_uri.as_deref(), Some("s3://b/in/creating/"));
        assert_eq!(rec[0].requests.iter().map(|r| &*r.key).collect::<Vec<_>>(), ["c1", "c2"]);
        assert_eq!(rec[1].batch.job_arn.as_deref(), Some("arn:job/1"));
        assert_eq!(rec[1].requests.iter().map(|r| &*r.key).collect::<Vec<_>>(), ["r2"], "r1 has its answer");
        assert!(j.finished("u1").unwrap().is_none());
        let f = j.finished("r1").unwrap().unwrap();
        assert!(matches!(f.answer, Answer::Output(ref o) if o == b"{\"a\":1}"));
        assert_eq!(f.record, Some(1));
        assert_eq!(j.jobs().unwrap().len(), 1);
        assert_eq!(j.results("arn:job/1", None, 10).unwrap().len(), 1);
    }

    #[test]
    fn a_second_open_is_locked_until_the_first_closes() {
        let cfg = temp("lock");
        let first = Journal::open(&cfg).unwrap();
        let e = Journal::open(&cfg).unwrap_err();
        assert_eq!(e.name, ErrorName::JournalLockedException);
        assert!(e.message.contains("j.db"));
        first.close();
        assert!(first.jobs().unwrap().is_empty(), "once closed, it reads the file again, read-only");
        let _second = Journal::open(&cfg).unwrap();
        assert_eq!(first.jobs().unwrap_err().name, ErrorName::JournalLockedException, "the file is another client's now");
    }

    #[test]
    fn garbage_and_foreign_databases_are_corrupted_and_left_alone() {
        let cfg = temp("garbage");
        std::fs::create_dir_all(cfg.path.parent().unwrap()).unwrap();
        std::fs::write(&cfg.path, vec![7u8; 10_000]).unwrap();
        assert_eq!(Journal::open(&cfg).unwrap_err().name, ErrorName::JournalCorruptedException);
        assert_eq!(std::fs::read(&cfg.path).unwrap(), vec![7u8; 10_000]);

        let cfg = temp("foreign");
        std::fs::create_dir_all(cfg.path.parent().unwrap()).unwrap();
        Connection::open(&cfg.path).unwrap().execute_batch("CREATE TABLE other (x)").unwrap();
        let e = Journal::open(&cfg).unwrap_err();
        assert_eq!(e.name, ErrorName::JournalCorruptedException);
        assert!(e.message.contains("not a bedrock-batch-bridge journal"));
    }

    #[test]
    fn content_keys_depend_on_what_decides_the_answer() {
        let o = crate::request::InvokeOptions::default();
        let k = content_key("m", b"{}", &o, 1);
        assert_eq!(k, content_key("m", b"{}", &o, 1));
        assert_ne!(k, content_key("m", b"{}", &o, 2));
        assert_ne!(k, content_key("m2", b"{}", &o, 1));
        assert_ne!(k, content_key("m", b"{ }", &o, 1));
        let accept = crate::request::InvokeOptions { accept: Some("*/*".into()), ..Default::default() };
        assert_ne!(k, content_key("m", b"{}", &accept, 1));
        let meta = crate::request::InvokeOptions { request_metadata: Some("x".into()), ..Default::default() };
        assert_eq!(k, content_key("m", b"{}", &meta, 1));
        assert_eq!(display_key(&explicit_key("row-1")), "row-1");
    }
}
