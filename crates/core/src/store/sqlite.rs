//! The journal: the [`Store`] in an SQLite file (the library is compiled in), for one process.
//!
//! Tables: `batches` (one row per batch: job name, idempotency token, input file, job ARN, state
//! `uploading` → `creating` → `submitted` → `done`, and its members packed in one blob: the
//! requests it carries, by key, record number and tries) and `answers` (one row per key with a
//! final answer: the model's output or a per-record error that would be the same again).
//! A batch is one row write and each answer one more, so a job of 50,000 records costs two
//! transactions, not 100,000 statements. Answers are found by an 8-byte digest of their key (a
//! small index that stays in the cache; the key itself is compared on a hit), and a key answered
//! twice keeps its newest answer.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

use super::{
    pack_members, unpack_members, Answer, BatchRecord, Finished, Key, KnownKeys, Member, Recovered, RecoveredState,
    Store, StoredJob, StoredResult, Write,
};
use crate::config::JournalConfig;
use crate::error::{EngineError, ErrorName};
use crate::request::InvocationType;
use crate::status::JobStatus;

/// The schema version kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS batches (
  id INTEGER PRIMARY KEY,
  token TEXT NOT NULL UNIQUE,
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
  errors INTEGER NOT NULL DEFAULT 0,
  invocation_type TEXT NOT NULL DEFAULT 'InvokeModel',
  members BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
  id INTEGER PRIMARY KEY,
  digest INTEGER NOT NULL,
  key TEXT NOT NULL,
  batch INTEGER,
  record INTEGER,
  output BLOB,
  error_name TEXT,
  error_message TEXT,
  finished_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS spend (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  committed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
  kind TEXT NOT NULL,
  id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  body BLOB NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS answers_digest ON answers(digest);
CREATE INDEX IF NOT EXISTS answers_batch ON answers(batch, record);
";

/// The journal of schema version 1 (one row per request) becomes version 2.
const MIGRATE_FROM_1: &str = "
ALTER TABLE batches RENAME TO batches_v1;
ALTER TABLE requests RENAME TO requests_v1;
DROP INDEX IF EXISTS requests_batch;
DROP INDEX IF EXISTS requests_arn;
";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

struct Open {
    conn: Connection,
    /// Batch ids by token.
    ids: HashMap<String, i64>,
    /// The file opened once more and locked (`flock`) while the journal is open: one process at
    /// a time. Dropped after `conn` (fields drop in order).
    _lock: std::fs::File,
}

/// The journal. One process at a time: the file stays locked while it is open. Other
/// processes may read it meanwhile ([`SqliteStore::reader`]): SQLite's own locks are the
/// usual shared ones, so a reader never stops the owner's writes.
pub struct SqliteStore {
    /// `None` once closed (the lock is released).
    open: Mutex<Option<Open>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the journal, locks it for this process, and prunes old entries.
    /// Another process holding it gives `JournalLockedException`; a file that is not a journal
    /// or cannot be read gives `JournalCorruptedException`; neither is ever replaced.
    pub fn open(config: &JournalConfig) -> Result<SqliteStore, EngineError> {
        let path = config.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| corrupted(&path, &e.to_string()))?;
        }
        let lock = lock_file(&path)?;
        let conn = Connection::open(&path).map_err(|e| open_error(&path, &e))?;
        let setup = || -> rusqlite::Result<i64> {
            conn.busy_timeout(std::time::Duration::ZERO)?;
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // NORMAL: a commit survives the process being killed (it is in the write-ahead log);
            // the writes that decide whether a job may be created again are also flushed to
            // disk before the engine goes on (`Write::is_durable`), so they survive a power loss.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // Room for the pages a 50,000-record job touches (the default is 2 MB).
            conn.pragma_update(None, "cache_size", -65_536)?;
            // Checkpoints every 64 MB of log rather than every 4 MB; the log is cut back to 64 MB.
            conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
            conn.pragma_update(None, "journal_size_limit", 64 << 20)?;
            Ok(version)
        };
        let version = setup().map_err(|e| open_error(&path, &e))?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))
            .map_err(|e| open_error(&path, &e))?;
        let migrate = match (tables, version) {
            (0, _) | (_, SCHEMA_VERSION) => false,
            (_, 1) => true,
            _ => return Err(corrupted(&path, "it is not a bedrock-batch-bridge journal (or one of a newer version)")),
        };
        let init = || -> rusqlite::Result<()> {
            conn.execute_batch("BEGIN EXCLUSIVE")?;
            if migrate {
                conn.execute_batch(MIGRATE_FROM_1)?;
            }
            conn.execute_batch(SCHEMA)?;
            if migrate {
                migrate_from_1(&conn)?;
            }
            conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))?;
            conn.query_row("PRAGMA quick_check(1)", [], |r| r.get::<_, String>(0)).and_then(|s| {
                if s == "ok" {
                    Ok(())
                } else {
                    Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                        Some(s),
                    ))
                }
            })
        };
        init().map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            open_error(&path, &e)
        })?;
        let store = SqliteStore { open: Mutex::new(Some(Open { conn, ids: HashMap::new(), _lock: lock })), path };
        store.prune(config.retention_days)?;
        Ok(store)
    }

    /// A journal to read while the process that owns it keeps it open (or none does): each read
    /// on a read-only connection of its own; nothing locked, migrated or pruned, and writes fail.
    /// For `jobs` and `dashboard`. `ResourceNotFoundException` when there is no such file.
    pub fn reader(path: &Path) -> Result<SqliteStore, EngineError> {
        if !path.is_file() {
            return Err(EngineError::new(
                ErrorName::ResourceNotFoundException,
                format!("There is no journal at {}.", path.display()),
            ));
        }
        Ok(SqliteStore { open: Mutex::new(None), path: path.to_path_buf() })
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

    /// Runs `f` on the open journal; fails once it is closed.
    fn with<T>(&self, f: impl FnOnce(&mut Open) -> rusqlite::Result<T>) -> Result<T, EngineError> {
        let mut guard = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(open) = guard.as_mut() else {
            return Err(EngineError::closed(format!(
                "The journal {} is closed (its client was closed).",
                self.path.display()
            )));
        };
        f(open).map_err(|e| self.write_error(&e))
    }

    /// Runs a query. Once the journal is closed (its client too), it reads the file through a
    /// read-only connection of its own, so a script can still list jobs and read answers.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, EngineError> {
        {
            let guard = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(open) = guard.as_ref() {
                return f(&open.conn).map_err(|e| self.write_error(&e));
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let c = Connection::open_with_flags(&self.path, flags).map_err(|e| open_error(&self.path, &e))?;
        c.busy_timeout(std::time::Duration::ZERO).map_err(|e| open_error(&self.path, &e))?;
        f(&c).map_err(|e| open_error(&self.path, &e))
    }

    /// Drops finished work older than the retention, and batches that never finished uploading.
    fn prune(&self, retention_days: f64) -> Result<(), EngineError> {
        let cutoff = now() - (retention_days.max(0.0) * 86400.0) as i64;
        self.with(|o| {
            let tx = o.conn.transaction()?;
            tx.execute("DELETE FROM answers WHERE finished_at <= ?1", [cutoff])?;
            tx.execute("DELETE FROM batches WHERE state = 'done' AND finished_at <= ?1", [cutoff])?;
            tx.execute("DELETE FROM objects WHERE updated_at <= ?1", [cutoff])?;
            // A batch whose upload never completed was never a job: its requests are sent anew.
            tx.execute("DELETE FROM batches WHERE state = 'uploading'", [])?;
            tx.commit()
        })
    }

    fn write_error(&self, e: &rusqlite::Error) -> EngineError {
        if is_corruption(e) {
            return corrupted(&self.path, &e.to_string());
        }
        EngineError::internal(format!("The journal {} could not be written: {e}", self.path.display()))
    }
}

/// Copies a version-1 journal (one row per request) into the version-2 tables.
fn migrate_from_1(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "INSERT INTO batches (token, job_name, model_id, input_uri, output_uri, state, job_arn, status, created_at, finished_at, total, success, errors, members)
         SELECT token, job_name, model_id, input_uri, output_uri, state, job_arn, status, created_at, finished_at, total, success, errors, x'' FROM batches_v1;
         CREATE TEMP TABLE done_v1 AS SELECT r.key, b.id AS batch, r.record, r.output, r.error_name, r.error_message, coalesce(r.finished_at, 0) AS finished_at
         FROM requests_v1 r LEFT JOIN batches b ON b.job_arn = r.job_arn WHERE r.state = 'done';",
    )?;
    {
        let mut read =
            c.prepare("SELECT key, batch, record, output, error_name, error_message, finished_at FROM done_v1")?;
        let mut write = c.prepare(
            "INSERT INTO answers (digest, key, batch, record, output, error_name, error_message, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            write.execute(params![
                digest_of(&key),
                key,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, i64>(6)?
            ])?;
        }
    }
    c.execute_batch("DROP TABLE done_v1")?;
    let mut members: HashMap<String, Vec<Member>> = HashMap::new();
    {
        let mut st = c.prepare("SELECT key, batch, record, tries FROM requests_v1 WHERE state = 'batched' AND batch IS NOT NULL ORDER BY record")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, u32>(3)?))
        })?;
        for row in rows {
            let (key, batch, record, tries) = row?;
            members.entry(batch).or_default().push(Member {
                key: key.into(),
                record: record as u64,
                tries,
                native: None,
                deadline_ms: None,
            });
        }
    }
    for (token, m) in members {
        c.execute("UPDATE batches SET members = ?2 WHERE token = ?1", params![token, pack_members(&m)])?;
    }
    c.execute_batch("DROP TABLE requests_v1; DROP TABLE batches_v1;")
}

/// The digest column of a key.
fn digest_of(key: &str) -> i64 {
    super::short_digest(&super::key_digest(key)) as i64
}

/// A stored answer: the columns `output, error_name, error_message` from column `i` on.
fn answer_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Answer> {
    let output: Option<Vec<u8>> = r.get(i)?;
    let name: Option<String> = r.get(i + 1)?;
    let message: Option<String> = r.get(i + 2)?;
    Ok(match (output, name) {
        (Some(o), _) => Answer::Output(Bytes::from(o)),
        (None, Some(name)) => Answer::Error { name, message: message.unwrap_or_default() },
        (None, None) => Answer::Output(Bytes::new()),
    })
}

impl Store for SqliteStore {
    fn recover(&self) -> Result<Vec<Recovered>, EngineError> {
        let batches = self.with(|o| -> rusqlite::Result<Vec<Recovered>> {
            let mut st = o.conn.prepare(
                "SELECT token, job_name, model_id, output_uri, state, input_uri, job_arn, members, invocation_type FROM batches
                 WHERE state IN ('creating', 'submitted') ORDER BY id",
            )?;
            let mut answered = o.conn.prepare("SELECT 1 FROM answers WHERE digest = ?1 AND key = ?2")?;
            let rows = st.query_map([], |r| {
                Ok((
                    BatchRecord {
                        token: r.get(0)?,
                        job_name: r.get(1)?,
                        model_id: r.get(2)?,
                        output_uri: r.get(3)?,
                        invocation_type: InvocationType::parse(&r.get::<_, String>(8)?),
                    },
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Vec<u8>>(7)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (batch, state, input_uri, job_arn, members) = row?;
                let members = unpack_members(&members).ok_or_else(|| {
                    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT), Some("a batch's members do not decode".into()))
                })?;
                let state = match (state.as_str(), input_uri, job_arn) {
                    ("submitted", Some(input_uri), Some(job_arn)) => RecoveredState::Submitted { input_uri, job_arn },
                    (_, Some(input_uri), _) => RecoveredState::Creating { input_uri },
                    _ => continue,
                };
                let mut open = Vec::with_capacity(members.len());
                for m in members {
                    if answered.query_row(params![digest_of(&m.key), &*m.key], |_| Ok(())).optional()?.is_none() {
                        open.push(m);
                    }
                }
                out.push(Recovered { batch, state, members: open });
            }
            Ok(out)
        })?;
        let mut batches = batches;
        super::newest_owns_its_keys(&mut batches);
        Ok(batches)
    }

    fn committed_spend(&self) -> Result<f64, EngineError> {
        self.read(|c| c.query_row("SELECT coalesce((SELECT committed FROM spend WHERE id = 1), 0.0)", [], |r| r.get(0)))
    }

    fn put_object(&self, kind: &str, id: &str, body: &[u8]) -> Result<(), EngineError> {
        self.with(|o| {
            o.conn
                .prepare_cached(
                    "INSERT INTO objects (kind, id, seq, body, updated_at)
                     VALUES (?1, ?2, (SELECT coalesce(max(seq), 0) + 1 FROM objects), ?3, ?4)
                     ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                )?
                .execute(params![kind, id, body, now()])
                .map(drop)
        })
    }

    fn get_object(&self, kind: &str, id: &str) -> Result<Option<Vec<u8>>, EngineError> {
        self.read(|c| {
            c.prepare_cached("SELECT body FROM objects WHERE kind = ?1 AND id = ?2")?
                .query_row(params![kind, id], |r| r.get(0))
                .optional()
        })
    }

    fn list_objects(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, EngineError> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT id, body FROM objects WHERE kind = ?1 ORDER BY seq")?;
            let rows = st.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    fn delete_object(&self, kind: &str, id: &str) -> Result<bool, EngineError> {
        self.with(|o| {
            o.conn
                .prepare_cached("DELETE FROM objects WHERE kind = ?1 AND id = ?2")?
                .execute(params![kind, id])
                .map(|n| n > 0)
        })
    }

    fn known_keys(&self) -> Result<KnownKeys, EngineError> {
        self.with(|o| {
            let mut st = o.conn.prepare("SELECT digest FROM answers")?;
            let set = st
                .query_map([], |r| r.get::<_, i64>(0).map(|d| d as u64))?
                .collect::<rusqlite::Result<HashSet<u64>>>()?;
            Ok(KnownKeys::These(set))
        })
    }

    fn write(&self, writes: &[Write]) -> Result<(), EngineError> {
        if writes.is_empty() {
            return Ok(());
        }
        let durable = writes.iter().any(Write::is_durable);
        self.with(|o| {
            if durable {
                o.conn.pragma_update(None, "synchronous", "FULL")?;
            }
            let result = apply(o, writes);
            if durable {
                o.conn.pragma_update(None, "synchronous", "NORMAL")?;
            }
            result
        })
    }

    fn lookup(&self, keys: &[Key]) -> Result<Vec<Option<Finished>>, EngineError> {
        self.with(|o| {
            let mut st = o.conn.prepare_cached(
                "SELECT a.output, a.error_name, a.error_message, b.job_arn, a.record FROM answers a LEFT JOIN batches b ON b.id = a.batch
                 WHERE a.digest = ?1 AND a.key = ?2 ORDER BY a.id DESC LIMIT 1",
            )?;
            keys.iter()
                .map(|k| {
                    st.query_row(params![digest_of(k), &**k], |r| {
                        Ok(Finished { answer: answer_at(r, 0)?, job_arn: r.get(3)?, record: r.get::<_, Option<i64>>(4)?.map(|n| n as u64) })
                    })
                    .optional()
                })
                .collect()
        })
    }

    fn jobs(&self) -> Result<Vec<StoredJob>, EngineError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT job_arn, job_name, model_id, coalesce(status, state), created_at, total, success, errors FROM batches
                 WHERE job_arn IS NOT NULL ORDER BY created_at, id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(StoredJob {
                    job_arn: r.get(0)?,
                    job_name: r.get(1)?,
                    model_id: r.get(2)?,
                    status: JobStatus::parse(&r.get::<_, String>(3)?),
                    created_at: r.get(4)?,
                    total_record_count: r.get::<_, i64>(5)? as u64,
                    success_record_count: r.get::<_, i64>(6)? as u64,
                    error_record_count: r.get::<_, i64>(7)? as u64,
                })
            })?;
            rows.collect()
        })
    }

    fn results(&self, job_arn: &str, after: Option<u64>, limit: usize) -> Result<Vec<StoredResult>, EngineError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT a.record, a.key, a.output, a.error_name, a.error_message FROM answers a
                 WHERE a.batch = (SELECT id FROM batches WHERE job_arn = ?1) AND a.record > ?2 ORDER BY a.record LIMIT ?3",
            )?;
            let rows = st.query_map(params![job_arn, after.map_or(-1, |a| a as i64), limit as i64], |r| {
                Ok(StoredResult { record: r.get::<_, i64>(0)? as u64, key: r.get(1)?, answer: answer_at(r, 2)? })
            })?;
            rows.collect()
        })
    }

    fn location(&self) -> (String, u64) {
        (self.path.display().to_string(), self.bytes())
    }

    fn close(&self) {
        let open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        drop(open);
    }
}

/// Applies a group of writes in one transaction.
fn apply(o: &mut Open, writes: &[Write]) -> rusqlite::Result<()> {
    let t = now();
    let mut formed: Vec<(String, i64)> = Vec::new();
    let Open { conn, ids: known, .. } = o;
    let tx = conn.transaction()?;
    for w in writes {
        match w {
            Write::BatchFormed { batch, members } => {
                tx.execute(
                    "INSERT INTO batches (token, job_name, model_id, output_uri, state, created_at, members, invocation_type) VALUES (?1, ?2, ?3, ?4, 'uploading', ?5, ?6, ?7)",
                    params![batch.token, batch.job_name, batch.model_id, batch.output_uri, t, pack_members(members), batch.invocation_type.as_str()],
                )?;
                formed.push((batch.token.clone(), tx.last_insert_rowid()));
            }
            Write::BatchUploaded { token, input_uri } => {
                tx.execute(
                    "UPDATE batches SET state = 'creating', input_uri = ?2 WHERE token = ?1",
                    params![token, input_uri],
                )?;
            }
            Write::BatchCreated { token, job_arn, total } => {
                tx.execute(
                    "UPDATE batches SET state = 'submitted', job_arn = ?2, status = coalesce(status, 'Submitted'), total = ?3 WHERE token = ?1",
                    params![token, job_arn, *total as i64],
                )?;
            }
            Write::JobStatus { job_arn, status, success, errors } => {
                tx.execute(
                    "UPDATE batches SET status = ?2, success = ?3, errors = ?4 WHERE job_arn = ?1",
                    params![job_arn, status.as_str(), *success as i64, *errors as i64],
                )?;
            }
            Write::Answers(rows) => {
                let mut st = tx.prepare_cached(
                    "INSERT INTO answers (digest, key, batch, record, output, error_name, error_message, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                let mut ids: HashMap<&str, Option<i64>> = HashMap::new();
                for row in rows {
                    let Some(answer) = &row.answer else { continue };
                    let batch = match &row.batch {
                        None => None,
                        Some(token) => match ids.get(&**token) {
                            Some(id) => *id,
                            None => {
                                let id = match formed
                                    .iter()
                                    .find(|(t, _)| t == &**token)
                                    .map(|(_, id)| *id)
                                    .or_else(|| known.get(&**token).copied())
                                {
                                    Some(id) => Some(id),
                                    None => {
                                        let id: Option<i64> = tx
                                            .query_row("SELECT id FROM batches WHERE token = ?1", [&**token], |r| {
                                                r.get(0)
                                            })
                                            .optional()?;
                                        id
                                    }
                                };
                                ids.insert(token, id);
                                id
                            }
                        },
                    };
                    let d = digest_of(&row.key);
                    match answer {
                        Answer::Output(bytes) => st.execute(params![
                            d,
                            &*row.key,
                            batch,
                            row.record as i64,
                            &bytes[..],
                            None::<&str>,
                            None::<&str>,
                            t
                        ])?,
                        Answer::Error { name, message } => st.execute(params![
                            d,
                            &*row.key,
                            batch,
                            row.record as i64,
                            None::<&[u8]>,
                            name,
                            message,
                            t
                        ])?,
                    };
                }
            }
            Write::BatchDone { token } => {
                tx.execute("UPDATE batches SET state = 'done', finished_at = ?2 WHERE token = ?1", params![token, t])?;
            }
            // A journal serves one process: nothing is shared through it.
            Write::Spend(committed) => {
                tx.execute(
                    "INSERT INTO spend (id, committed) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET committed = excluded.committed",
                    params![committed],
                )?;
            }
            Write::Enqueue(_) | Write::Settle { .. } | Write::Release(_) => {}
        }
    }
    tx.commit()?;
    known.extend(formed);
    Ok(())
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase))
}

fn corrupted(path: &Path, why: &str) -> EngineError {
    EngineError::new(
        ErrorName::JournalCorruptedException,
        format!(
            "The journal {} cannot be used: {why}. It was left as it is; move it away or point journal.path elsewhere.",
            path.display()
        ),
    )
}

fn locked(path: &Path) -> EngineError {
    EngineError::new(
        ErrorName::JournalLockedException,
        format!(
            "The journal {} is in use by another client or process (one journal serves one client at a time).",
            path.display()
        ),
    )
}

fn open_error(path: &Path, e: &rusqlite::Error) -> EngineError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => locked(path),
        _ => corrupted(path, &e.to_string()),
    }
}

/// Opens (or creates) the journal's file and locks it for this process (`flock`, released when
/// the file is closed or the process ends); `JournalLockedException` when another holds it.
fn lock_file(path: &Path) -> Result<std::fs::File, EngineError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    // A new journal is its owner's only: it holds request bodies and answers. SQLite gives its
    // write-ahead log and shared-memory files the same permissions.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(|e| corrupted(path, &e.to_string()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(locked(path)),
        Err(std::fs::TryLockError::Error(e)) => Err(corrupted(path, &format!("it could not be locked: {e}"))),
    }
}

#[cfg(test)]
/// What only the journal does; what every store does is in the behaviour suite
/// (`tests/store_behaviour/`), run against this store and PostgreSQL.
mod tests {
    use super::*;

    fn temp(name: &str) -> JournalConfig {
        let dir = std::env::temp_dir().join(format!("bbb-journal-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        JournalConfig { path: dir.join("j.db"), retention_days: 7.0 }
    }

    #[cfg(unix)]
    #[test]
    fn a_new_journal_and_its_log_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let cfg = temp("mode");
        let store = SqliteStore::open(&cfg).unwrap();
        let dir = cfg.path.parent().unwrap();
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            seen.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.metadata().unwrap().permissions().mode() & 0o777,
            ));
        }
        seen.sort();
        assert!(seen.iter().any(|(name, _)| name == "j.db-wal"), "the log exists: {seen:?}");
        assert!(seen.iter().all(|(_, mode)| *mode == 0o600), "{seen:?}");
        drop(store);
    }

    #[test]
    fn garbage_and_foreign_databases_are_corrupted_and_left_alone() {
        let cfg = temp("garbage");
        std::fs::create_dir_all(cfg.path.parent().unwrap()).unwrap();
        std::fs::write(&cfg.path, vec![7u8; 10_000]).unwrap();
        assert_eq!(SqliteStore::open(&cfg).unwrap_err().name, ErrorName::JournalCorruptedException);
        assert_eq!(std::fs::read(&cfg.path).unwrap(), vec![7u8; 10_000]);

        let cfg = temp("foreign");
        std::fs::create_dir_all(cfg.path.parent().unwrap()).unwrap();
        Connection::open(&cfg.path).unwrap().execute_batch("CREATE TABLE other (x)").unwrap();
        let e = SqliteStore::open(&cfg).unwrap_err();
        assert_eq!(e.name, ErrorName::JournalCorruptedException);
        assert!(e.message.contains("not a bedrock-batch-bridge journal"));
    }

    #[test]
    fn a_version_1_journal_is_migrated_with_its_running_batches_and_answers() {
        let cfg = temp("v1");
        std::fs::create_dir_all(cfg.path.parent().unwrap()).unwrap();
        let c = Connection::open(&cfg.path).unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE batches (token TEXT PRIMARY KEY, job_name TEXT NOT NULL, model_id TEXT NOT NULL, input_uri TEXT, output_uri TEXT NOT NULL,
               state TEXT NOT NULL, job_arn TEXT UNIQUE, status TEXT, created_at INTEGER NOT NULL, finished_at INTEGER, total INTEGER NOT NULL DEFAULT 0,
               success INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE requests (key TEXT PRIMARY KEY, batch TEXT, record INTEGER, tries INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL, job_arn TEXT,
               output BLOB, error_name TEXT, error_message TEXT, finished_at INTEGER);
             CREATE INDEX requests_batch ON requests(batch, record);
             INSERT INTO batches VALUES ('t1', 'n1', 'm', 's3://b/in/t1/', 's3://b/out/', 'submitted', 'arn:job/1', 'InProgress', {t}, NULL, 2, 0, 0);
             INSERT INTO requests VALUES ('k:a', 't1', 1, 0, 'batched', NULL, NULL, NULL, NULL, NULL);
             INSERT INTO requests VALUES ('k:b', NULL, 2, 0, 'done', 'arn:job/1', x'7b7d', NULL, NULL, {t});
             PRAGMA user_version = 1;",
            t = now()
        ))
        .unwrap();
        drop(c);
        let j = SqliteStore::open(&cfg).unwrap();
        let rec = j.recover().unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(
            rec[0].members,
            vec![Member { key: "k:a".into(), record: 1, tries: 0, native: None, deadline_ms: None }]
        );
        assert_eq!(j.lookup(&["k:b".into()]).unwrap()[0].as_ref().unwrap().job_arn.as_deref(), Some("arn:job/1"));
    }
}
