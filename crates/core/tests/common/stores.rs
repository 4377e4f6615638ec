//! The stores the store tests run on: a fresh SQLite journal in a folder of its own, or a fresh
//! group on the PostgreSQL server of `BEDROCK_BATCH_TEST_PG_URL` (`bash .ci/postgres.sh start DIR`
//! starts one and prints it; `.ci/test` does it). Without that URL a PostgreSQL test fails,
//! unless `BEDROCK_BATCH_SKIP_PG=1`, where it says it was skipped. Every fixture has a place of
//! its own (a folder, a group), so tests run side by side.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bedrock_batch_core::config::{JournalConfig, PgUrl, StoreConfig};
use bedrock_batch_core::store::postgres::PgStore;
use bedrock_batch_core::store::sqlite::SqliteStore;
use bedrock_batch_core::store::{Answer, AnswerRow, BatchRecord, Member, Store, Write};
use bedrock_batch_core::{BatchConfig, EngineConfig, EngineError, InvocationType};
use bytes::Bytes;

use super::engine_config;

/// The test server's URL; `None` (after saying so where a person sees it) under
/// `BEDROCK_BATCH_SKIP_PG=1`; a failure otherwise.
pub fn pg_url() -> Option<String> {
    match std::env::var("BEDROCK_BATCH_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("BEDROCK_BATCH_SKIP_PG").as_deref() == Ok("1") => {
            // Written past the test harness's capture, so that it shows.
            let _ = writeln!(std::io::stderr(), "skipped: no PostgreSQL (BEDROCK_BATCH_SKIP_PG=1)");
            None
        }
        _ => panic!(
            "BEDROCK_BATCH_TEST_PG_URL is not set: the PostgreSQL store's tests need a server (`bash .ci/postgres.sh start DIR` starts one and \
             prints its URL; .ci/test does it). Set BEDROCK_BATCH_SKIP_PG=1 to skip them."
        ),
    }
}

/// A name no other test (of this run or another) uses.
pub fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{t}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// A group on the server at `url`, with the defaults of the store tests.
pub fn store_config(url: &str, group: &str) -> StoreConfig {
    StoreConfig {
        url: PgUrl::parse(url).unwrap(),
        group: group.into(),
        connect_timeout: Duration::from_secs(10),
        retention_days: 7.0,
        election_interval: Duration::from_millis(200),
        outage_timeout: Duration::from_secs(60),
    }
}

/// Which store a fixture opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The journal: an SQLite file one process writes.
    Sqlite,
    /// A group on PostgreSQL, which several processes may share.
    Postgres,
}

#[derive(Debug, Clone)]
enum Place {
    Sqlite(JournalConfig),
    Postgres(StoreConfig),
}

/// Removes a SQLite fixture's folder when its last copy goes.
#[derive(Debug)]
struct Folder(PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store of one kind, fresh for one test: opened, opened again after a "restart", and named
/// in an engine's configuration, always at the same place.
#[derive(Debug, Clone)]
pub struct Fixture {
    place: Place,
    _folder: Option<Arc<Folder>>,
}

impl Fixture {
    /// A journal in a new folder (always `Some`; an `Option` as [`Fixture::postgres`] is).
    pub fn sqlite(name: &str) -> Option<Fixture> {
        let dir = std::env::temp_dir().join(unique(&format!("bbb-store-{name}")));
        let journal = JournalConfig { path: dir.join("journal.db"), retention_days: 7.0 };
        Some(Fixture { place: Place::Sqlite(journal), _folder: Some(Arc::new(Folder(dir))) })
    }

    /// A new group on the test server; `None` when PostgreSQL tests are skipped.
    pub fn postgres(name: &str) -> Option<Fixture> {
        let url = pg_url()?;
        Some(Fixture { place: Place::Postgres(store_config(&url, &unique(name))), _folder: None })
    }

    pub fn kind(&self) -> Kind {
        match self.place {
            Place::Sqlite(_) => Kind::Sqlite,
            Place::Postgres(_) => Kind::Postgres,
        }
    }

    /// Opens the store as one client (holding it until closed or dropped).
    pub fn try_open(&self) -> Result<Box<dyn Store>, EngineError> {
        Ok(match &self.place {
            Place::Sqlite(j) => Box::new(SqliteStore::open(j)?),
            Place::Postgres(s) => Box::new(PgStore::open(s)?),
        })
    }

    /// The store opened for reading only, beside a client that holds it (as `jobs` and
    /// `dashboard` read it): nothing locked, writes refused.
    pub fn reader(&self) -> Box<dyn Store> {
        match &self.place {
            Place::Sqlite(j) => Box::new(SqliteStore::reader(&j.path).expect("the journal exists")),
            Place::Postgres(s) => Box::new(PgStore::reader(s)),
        }
    }

    /// [`Fixture::try_open`], which must succeed.
    pub fn open(&self) -> Box<dyn Store> {
        self.try_open().unwrap_or_else(|e| panic!("{:?} store: {e}", self.kind()))
    }

    /// The same store, pruning what finished more than `days` ago when it opens.
    pub fn with_retention(&self, days: f64) -> Fixture {
        let mut f = self.clone();
        match &mut f.place {
            Place::Sqlite(j) => j.retention_days = days,
            Place::Postgres(s) => s.retention_days = days,
        }
        f
    }

    /// The same store, given up on quickly when another client holds it (a journal never waits).
    pub fn impatient(&self) -> Fixture {
        let mut f = self.clone();
        if let Place::Postgres(s) = &mut f.place {
            s.connect_timeout = Duration::from_secs(2);
        }
        f
    }

    /// Where the store says it is (`location().0`, `stats().journal`).
    pub fn location(&self) -> String {
        match &self.place {
            Place::Sqlite(j) => j.path.display().to_string(),
            Place::Postgres(s) => s.location(),
        }
    }

    /// What a `JournalLockedException` names: the journal's file, or the group.
    pub fn lock_names(&self) -> String {
        match &self.place {
            Place::Sqlite(j) => j.path.file_name().unwrap().to_string_lossy().into_owned(),
            Place::Postgres(s) => s.group.clone(),
        }
    }

    /// The secret in its configuration, which nothing it says may contain.
    pub fn secret(&self) -> Option<String> {
        match &self.place {
            Place::Sqlite(_) => None,
            Place::Postgres(s) => s.url.password.clone(),
        }
    }

    /// An engine on this store: the `journal` option for SQLite, the `store` option for
    /// PostgreSQL (a client of the group; paused time must not run out while the server answers).
    pub fn engine_config(&self, batch: BatchConfig) -> EngineConfig {
        match &self.place {
            Place::Sqlite(j) => EngineConfig { journal: Some(j.clone()), ..engine_config(batch) },
            Place::Postgres(s) => EngineConfig {
                store: Some(StoreConfig { connect_timeout: Duration::from_secs(3600), ..s.clone() }),
                ..engine_config(batch)
            },
        }
    }

    /// The PostgreSQL group's configuration (`None` for a journal).
    pub fn store_config(&self) -> Option<&StoreConfig> {
        match &self.place {
            Place::Postgres(s) => Some(s),
            Place::Sqlite(_) => None,
        }
    }
}

// ===== what the tests write =====

/// A batch of model `m` whose token is `token`.
pub fn batch(token: &str) -> BatchRecord {
    BatchRecord {
        token: token.into(),
        job_name: format!("name-{token}"),
        model_id: "m".into(),
        output_uri: "s3://b/out/".into(),
        invocation_type: InvocationType::InvokeModel,
    }
}

/// `BatchFormed` of these keys, records numbered from 1.
pub fn formed(token: &str, keys: &[&str]) -> Write {
    let members = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Member { key: (*k).into(), record: i as u64 + 1, tries: 0, native: None, deadline_ms: None })
        .collect();
    Write::BatchFormed { batch: batch(token), members }
}

/// `BatchUploaded` to `s3://b/in/<token>/`.
pub fn uploaded(token: &str) -> Write {
    Write::BatchUploaded { token: token.into(), input_uri: format!("s3://b/in/{token}/") }
}

/// `BatchCreated`.
pub fn created(token: &str, job_arn: &str, total: u64) -> Write {
    Write::BatchCreated { token: token.into(), job_arn: job_arn.into(), total }
}

/// The model's output `text` for a key, answered by record `record` of batch `token`.
pub fn output(key: &str, token: &str, record: u64, text: &str) -> AnswerRow {
    AnswerRow {
        key: key.into(),
        answer: Some(Answer::Output(Bytes::from(text.to_string()))),
        batch: Some(Arc::from(token)),
        record,
    }
}
