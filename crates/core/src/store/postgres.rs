//! The [`Store`] on PostgreSQL: [`PgStore`], shared by every client of a group (`group_name`
//! scopes every row). Each client opens a *member* session ([`PgStore::member`]): it queues its
//! requests as rows (`bedrock_batch_requests`, bodies included), and collects the ones its group
//! settled. One client at a time *leads* the group ([`PgStore::try_lead`]: the session holding
//! the group's advisory lock): it reads the queue, forms the batches, runs the jobs and settles
//! the rows; `shared.rs` has those statements and the `LISTEN`/`NOTIFY` listener.
//!
//! Tables (created and migrated by the package, see [`SCHEMA_VERSION`]):
//! `bedrock_batch_schema` (one row per applied migration), `bedrock_batch_batches` (one row per
//! batch: job name, idempotency token, input file, job ARN, state `uploading` → `creating` →
//! `submitted` → `done`, its members packed in one `bytea` as in the journal) and
//! `bedrock_batch_answers` (one row per final answer, found by an 8-byte digest of its key; a
//! key answered twice keeps its newest answer); `bedrock_batch_requests` (a group's queue),
//! `bedrock_batch_spend` (the committed spend under the cost cap), `bedrock_batch_objects` (the
//! doors' documents: the wires' files and batches), `bedrock_batch_members` and
//! `bedrock_batch_leads` (the host and pid of each member and of the leader, alive while its
//! advisory lock is held: what the dashboard lists). Migrations run in one transaction under
//! `pg_advisory_xact_lock(MIGRATION_LOCK)`, so clients starting at once are safe.
//!
//! The client is `tokio-postgres` on a small runtime of the store's own (one thread, driven by the
//! calling thread): the [`Store`] trait is synchronous and the store writer already runs every
//! call, in order, on a blocking thread, so one session per role suffices and a pool (deadpool,
//! bb8) would add nothing but a dependency. Unlike the synchronous `postgres` crate, it lets the
//! whole connection (TCP, TLS, authentication) be bounded by `connectTimeout`: a server that
//! accepts and never answers cannot hold a thread for ever. The lead is the session-level
//! advisory lock `(GROUP_LOCK_CLASS, hashtext(group))`. A member's lost connection is opened again
//! with backoff, for at most `store.outageTimeout`, the operation then tried again; a leader's is
//! not (its lead is gone: another client takes it). [`PgStore::open`] (tests, tools) waits for
//! the lock and keeps the group to itself.
//!
//! TLS (`sslmode`): `disable` is plain TCP; `prefer` tries TLS and falls back to plain, and
//! `require` insists on TLS, neither checking the certificate (as libpq); `verify-ca` checks the
//! chain, `verify-full` the chain and the host name, against `sslrootcert` (a PEM file) or the
//! system's roots. rustls with the aws-lc-rs provider the AWS SDK already uses.
//!
//! Passwords never reach a message: errors name `postgres://host:port/database` and the group.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Statement};

use super::{
    pack_members, unpack_members, Answer, AnswerRow, BatchRecord, Finished, GroupMember, Key, KnownKeys, QueuedRequest,
    Recovered, RecoveredState, SettledRequest, Store, StoredJob, StoredResult, Write,
};
use crate::config::{SslMode, StoreConfig};
use crate::error::{EngineError, ErrorName};
use crate::request::InvocationType;
use crate::status::JobStatus;

mod shared;

pub use shared::{Listener, StoreEvent};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = 6;

/// The key of the transaction-level advisory lock the migrations run under ("bbbschem").
pub const MIGRATION_LOCK: i64 = 0x6262_6273_6368_656d;

/// The first key of the session-level advisory lock a client holds on its group ("bbbg"); the
/// second is `hashtext(group)`.
pub const GROUP_LOCK_CLASS: i32 = 0x6262_6267;

/// The first key of the session-level advisory lock each member holds while it runs ("bbbc");
/// the second is its client number. The leader drops the settled rows of members that hold none.
pub const CLIENT_LOCK_CLASS: i32 = 0x6262_6263;

/// The first key of the transaction-level lock under which requests are queued ("bbbq"), so
/// that request numbers become visible in order (the leader reads the queue by number).
pub const ENQUEUE_LOCK_CLASS: i32 = 0x6262_6271;

/// The migrations, in order: (version, what it does, SQL).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "batches and answers, scoped by group",
        "
CREATE TABLE bedrock_batch_batches (
  id bigserial PRIMARY KEY,
  group_name text NOT NULL,
  token text NOT NULL,
  job_name text NOT NULL,
  model_id text NOT NULL,
  invocation_type text NOT NULL DEFAULT 'InvokeModel',
  input_uri text,
  output_uri text NOT NULL,
  state text NOT NULL CHECK (state IN ('uploading', 'creating', 'submitted', 'done')),
  job_arn text,
  status text,
  created_at bigint NOT NULL,
  finished_at bigint,
  total bigint NOT NULL DEFAULT 0,
  success bigint NOT NULL DEFAULT 0,
  errors bigint NOT NULL DEFAULT 0,
  members bytea NOT NULL,
  UNIQUE (group_name, token)
);
CREATE INDEX bedrock_batch_batches_arn ON bedrock_batch_batches (group_name, job_arn) WHERE job_arn IS NOT NULL;
CREATE INDEX bedrock_batch_batches_state ON bedrock_batch_batches (group_name, state);
CREATE TABLE bedrock_batch_answers (
  id bigserial PRIMARY KEY,
  group_name text NOT NULL,
  digest bigint NOT NULL,
  key text NOT NULL,
  batch bigint,
  record bigint,
  output bytea,
  error_name text,
  error_message text,
  finished_at bigint NOT NULL
);
CREATE INDEX bedrock_batch_answers_digest ON bedrock_batch_answers (group_name, digest);
CREATE INDEX bedrock_batch_answers_batch ON bedrock_batch_answers (batch, record);
CREATE INDEX bedrock_batch_answers_finished ON bedrock_batch_answers (group_name, finished_at);
",
    ),
    (
        2,
        "requests queued by the clients of a group, and their settlements",
        "
CREATE SEQUENCE bedrock_batch_clients;
CREATE TABLE bedrock_batch_requests (
  id bigserial PRIMARY KEY,
  group_name text NOT NULL,
  client bigint NOT NULL,
  caller bigint NOT NULL,
  key text NOT NULL,
  digest bigint NOT NULL,
  model_id text NOT NULL,
  record_type text NOT NULL,
  operation text NOT NULL,
  native smallint NOT NULL DEFAULT 0,
  body bytea,
  tries integer NOT NULL DEFAULT 0,
  queued_at bigint NOT NULL,
  batch_token text,
  settled boolean NOT NULL DEFAULT false,
  output bytea,
  error_name text,
  error_message text,
  error_status integer,
  job_status text,
  record_id text,
  job_arn text,
  record bigint,
  attempts integer
);
CREATE INDEX bedrock_batch_requests_queue ON bedrock_batch_requests (group_name, id) WHERE batch_token IS NULL AND NOT settled;
CREATE INDEX bedrock_batch_requests_batch ON bedrock_batch_requests (group_name, batch_token) WHERE batch_token IS NOT NULL AND NOT settled;
CREATE INDEX bedrock_batch_requests_settled ON bedrock_batch_requests (group_name, client) WHERE settled;
",
    ),
    (
        3,
        "the spend a group committed under its cost cap",
        "
CREATE TABLE bedrock_batch_spend (
  group_name text PRIMARY KEY,
  committed double precision NOT NULL
);
",
    ),
    (
        4,
        "a queued request's deadline (the leader applies it) and the service tier of its answer",
        "ALTER TABLE bedrock_batch_requests ADD COLUMN deadline_ms bigint, ADD COLUMN service_tier text;",
    ),
    (
        5,
        "the doors' documents (the wires' files and batches), the group's processes and its leader",
        "
CREATE TABLE bedrock_batch_objects (
  group_name text NOT NULL,
  kind text NOT NULL,
  id text NOT NULL,
  seq bigserial,
  body bytea NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (group_name, kind, id)
);
CREATE INDEX bedrock_batch_objects_seq ON bedrock_batch_objects (group_name, kind, seq);
CREATE TABLE bedrock_batch_members (
  client bigint PRIMARY KEY,
  group_name text NOT NULL,
  host text NOT NULL,
  pid bigint NOT NULL,
  since bigint NOT NULL
);
CREATE TABLE bedrock_batch_leads (
  group_name text PRIMARY KEY,
  host text NOT NULL,
  pid bigint NOT NULL,
  backend_pid integer NOT NULL,
  since bigint NOT NULL
);
",
    ),
    (
        6,
        "a queue row is written once (claims live in their batch's members, settlements in a table of their own); answers by time and batch through BRIN indexes",
        "
CREATE TABLE bedrock_batch_settled (
  id bigserial,
  group_name text NOT NULL,
  client bigint NOT NULL,
  caller bigint NOT NULL,
  answer bigint,
  output bytea,
  error_name text,
  error_message text,
  error_status integer,
  job_status text,
  record_id text,
  job_arn text,
  record bigint,
  attempts integer,
  service_tier text
);
CREATE INDEX bedrock_batch_settled_client ON bedrock_batch_settled (client, id);
ALTER TABLE bedrock_batch_batches ADD COLUMN from_queue boolean NOT NULL DEFAULT false;
UPDATE bedrock_batch_batches b SET from_queue = true WHERE b.state <> 'done' AND EXISTS
  (SELECT 1 FROM bedrock_batch_requests r WHERE r.group_name = b.group_name AND r.batch_token = b.token);
INSERT INTO bedrock_batch_settled (group_name, client, caller, output, error_name, error_message, error_status, job_status,
    record_id, job_arn, record, attempts, service_tier)
  SELECT group_name, client, caller, output, error_name, error_message, error_status, job_status, record_id, job_arn, record,
    attempts, service_tier
  FROM bedrock_batch_requests WHERE settled ORDER BY id;
DELETE FROM bedrock_batch_requests WHERE settled;
DROP INDEX bedrock_batch_requests_queue;
DROP INDEX bedrock_batch_requests_batch;
DROP INDEX bedrock_batch_requests_settled;
ALTER TABLE bedrock_batch_requests DROP CONSTRAINT bedrock_batch_requests_pkey,
  DROP COLUMN batch_token, DROP COLUMN settled, DROP COLUMN output, DROP COLUMN error_name, DROP COLUMN error_message,
  DROP COLUMN error_status, DROP COLUMN job_status, DROP COLUMN record_id, DROP COLUMN job_arn, DROP COLUMN record,
  DROP COLUMN attempts, DROP COLUMN service_tier;
ALTER TABLE bedrock_batch_requests ADD PRIMARY KEY (id);
DROP INDEX bedrock_batch_answers_digest;
CREATE INDEX bedrock_batch_answers_digest ON bedrock_batch_answers (digest);
DROP INDEX bedrock_batch_answers_finished;
CREATE INDEX bedrock_batch_answers_finished ON bedrock_batch_answers USING brin (finished_at);
DROP INDEX bedrock_batch_answers_batch;
CREATE INDEX bedrock_batch_answers_batch ON bedrock_batch_answers USING brin (batch);
ALTER TABLE bedrock_batch_requests SET (autovacuum_enabled = off);
ALTER TABLE bedrock_batch_settled SET (autovacuum_enabled = off);
",
    ),
];

/// Most keys (or answers) sent in one statement.
const CHUNK: usize = 5_000;
/// Most answer bytes sent in one statement.
const CHUNK_BYTES: usize = 16 << 20;

const INSERT_BATCH: &str = "INSERT INTO bedrock_batch_batches (group_name, token, job_name, model_id, output_uri, state, created_at, members, invocation_type, from_queue)
     VALUES ($1, $2, $3, $4, $5, 'uploading', $6, $7, $8, $9)";
const UPLOADED: &str =
    "UPDATE bedrock_batch_batches SET state = 'creating', input_uri = $3 WHERE group_name = $1 AND token = $2";
const CREATED: &str =
    "UPDATE bedrock_batch_batches SET state = 'submitted', job_arn = $3, status = coalesce(status, 'Submitted'), total = $4 WHERE group_name = $1 AND token = $2";
const STATUS: &str =
    "UPDATE bedrock_batch_batches SET status = $3, success = $4, errors = $5 WHERE group_name = $1 AND job_arn = $2";
const DONE: &str =
    "UPDATE bedrock_batch_batches SET state = 'done', finished_at = $3 WHERE group_name = $1 AND token = $2";
const INSERT_ANSWERS: &str = "INSERT INTO bedrock_batch_answers (group_name, digest, key, batch, record, output, error_name, error_message, finished_at)
     SELECT $1, u.digest, u.key, b.id, u.record, u.output, u.error_name, u.error_message, $2
     FROM unnest($3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bytea[], $8::text[], $9::text[])
       WITH ORDINALITY AS u(digest, key, token, record, output, error_name, error_message, n)
     LEFT JOIN bedrock_batch_batches b ON b.group_name = $1 AND b.token = u.token
     ORDER BY u.n
     RETURNING record, id";
const LOOKUP: &str = "SELECT DISTINCT ON (a.key) a.key, a.output, a.error_name, a.error_message, b.job_arn, a.record
     FROM bedrock_batch_answers a LEFT JOIN bedrock_batch_batches b ON b.id = a.batch
     WHERE a.group_name = $1 AND a.digest = ANY($2) AND a.key = ANY($3)
     ORDER BY a.key, a.id DESC";
const ANSWERED: &str =
    "SELECT DISTINCT key FROM bedrock_batch_answers WHERE group_name = $1 AND digest = ANY($2) AND key = ANY($3)";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The digest column of a key.
fn digest_of(key: &str) -> i64 {
    super::short_digest(&super::key_digest(key)) as i64
}

type PgError = tokio_postgres::Error;

/// A session: a tokio-postgres client and the runtime that drives its connection (each call
/// blocks the calling thread until the server answers).
struct Client {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    /// The server's notifications on this session (`LISTEN`).
    notifications: tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
    /// The task that drives the connection (it ends once the client is dropped).
    connection: tokio::task::JoinHandle<()>,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Client {
    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn batch_execute(&self, sql: &str) -> Result<(), PgError> {
        self.rt.block_on(self.client.batch_execute(sql))
    }

    fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, PgError> {
        self.rt.block_on(self.client.execute(sql, params))
    }

    fn execute_prepared(&self, st: &Statement, params: Params<'_>) -> Result<u64, PgError> {
        self.rt.block_on(self.client.execute(st, params))
    }

    fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, PgError> {
        self.rt.block_on(self.client.query(sql, params))
    }

    fn query_prepared(&self, st: &Statement, params: Params<'_>) -> Result<Vec<Row>, PgError> {
        self.rt.block_on(self.client.query(st, params))
    }

    fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, PgError> {
        self.rt.block_on(self.client.query_one(sql, params))
    }

    fn prepare(&self, sql: &str) -> Result<Statement, PgError> {
        self.rt.block_on(self.client.prepare(sql))
    }

    /// Runs `f` in a transaction: committed when it succeeds, rolled back when it fails.
    fn transaction<T>(&self, f: impl FnOnce(&Client) -> Result<T, PgError>) -> Result<T, PgError> {
        self.batch_execute("BEGIN")?;
        match f(self) {
            Ok(v) => {
                self.batch_execute("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.batch_execute("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// What a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Holds the group's lock for itself ([`PgStore::open`]); a lost session is opened again
    /// and the lock taken again.
    Exclusive,
    /// Leads the group (holds its lock); a lost session is the end of the lead.
    Leader,
    /// A client of the group, number `client`; a lost session is opened again with backoff.
    Member { client: i64 },
}

struct Conn {
    /// The session (holding the group's lock, for an exclusive store or a leader); `None` before
    /// the first operation after a loss, and once closed.
    client: Option<Client>,
    /// Statements prepared on that session.
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// Ends the session (releasing the group's lock).
    fn end(&mut self) {
        self.statements.clear();
        if let Some(c) = self.client.take() {
            release(c);
        }
    }
}

/// The store on PostgreSQL, for one client per group.
pub struct PgStore {
    config: StoreConfig,
    role: Role,
    /// The `LISTEN`/`NOTIFY` channel of the group.
    channel: String,
    /// Calls to `check_lead` so far (every so often it also tidies the group).
    checks: AtomicU64,
    conn: Mutex<Conn>,
    /// Set by `close()`: no more writes; reads use connections of their own.
    closed: AtomicBool,
    /// The group's size in bytes: measured when it opens, then grown by what is written.
    bytes: AtomicU64,
    /// A leader's reads of the queue: how far they went, and the requests its group's open
    /// batches claim (read when it took them up), left out until it has read past them.
    claimed: Mutex<Claimed>,
    /// The dead rows this session made: the package reclaims them itself.
    house: Mutex<House>,
}

/// Requests of the group's queue that open batches claim (by request number).
#[derive(Debug, Default)]
struct Claimed {
    ids: HashSet<u64>,
    /// The highest of them.
    last: u64,
    /// Every request up to this number was handed out by `feed` or is claimed.
    frontier: u64,
}

/// Dead rows (deleted queue and settled rows) after which a session vacuums the tables it
/// deletes from.
const VACUUM_EVERY: u64 = 20_000;

/// How long after its last settlement a leader vacuums what fewer deletes left (its members'
/// deletes of those settlements among them).
const VACUUM_QUIET: Duration = Duration::from_secs(5);

/// The package's vacuum of `tables`. `SKIP_LOCKED`: a table another session vacuums now is left
/// to it. `INDEX_CLEANUP ON`: never the shortcut that leaves dead line pointers behind
/// (PostgreSQL 14+ skips index cleanup when few pages have them), which keeps emptied pages from
/// being reused or truncated.
fn vacuum_of(tables: &str) -> String {
    format!("VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON) {tables}")
}

/// A session's housekeeping: the dead rows it made since it last vacuumed.
#[derive(Debug, Default)]
struct House {
    /// Rows deleted (for a leader: settled, each leaving a dead queue row and a settled row its
    /// member will delete) since the last vacuum.
    deleted: u64,
    /// When the last of them was.
    last: Option<std::time::Instant>,
    /// Whether everything until `last` was vacuumed.
    tidy: bool,
    /// The answers table too (a new leader: its predecessor's aborted writes are dead rows).
    answers: bool,
}

impl House {
    /// Rows were deleted now, to be vacuumed later.
    fn deleted_some(&mut self) {
        self.last = Some(std::time::Instant::now());
        self.tidy = false;
    }
}

impl PgStore {
    /// Reclaims the dead rows the group's traffic leaves, by design rather than by hoping for
    /// autovacuum: a leader settles (a queue row goes, a settled row comes for its member to
    /// delete). After `VACUUM_EVERY` settlements, or (`idle`: its periodic check) once
    /// `VACUUM_QUIET` passed after the last of fewer, the leader vacuums the queue and the
    /// settled rows (its members' deletes of the earlier settlements among them); a member
    /// vacuums the settled rows after deleting `VACUUM_EVERY` of them, and when it closes. Autovacuum is off on them (migration 6): its
    /// slow, throttled pass would hold a table while this one skips it (`SKIP_LOCKED`), and
    /// dead rows would pile up meanwhile; PostgreSQL still runs its anti-wraparound vacuums.
    /// A user that does not own the tables gets a warning from the server and nothing happens.
    fn housekeep(&self, deleted: u64, idle: bool) {
        let mut h = self.house.lock().unwrap_or_else(PoisonError::into_inner);
        if deleted > 0 {
            h.deleted += deleted;
            h.deleted_some();
        }
        let quiet = idle && !h.tidy && h.last.is_some_and(|t| t.elapsed() >= VACUUM_QUIET);
        if !(h.deleted >= VACUUM_EVERY || quiet || h.answers) {
            return;
        }
        h.deleted = 0;
        h.tidy = quiet;
        let mut tables = self.vacuumed_tables();
        if std::mem::take(&mut h.answers) {
            tables.push_str(", bedrock_batch_answers");
        }
        if let Err(e) = self.with(|c, _| c.batch_execute(&vacuum_of(&tables))) {
            tracing::debug!(error = %e, "the group's tables could not be vacuumed");
        }
    }

    /// Has the server count this session's deletes now (PostgreSQL 15 and later): a busy session
    /// otherwise reports them up to a minute later, after a vacuum already reclaimed the rows,
    /// and `pg_stat_user_tables` would count them dead again. On an older server, nothing.
    fn report_deletes(&self) {
        const FLUSH: &str = "DO $$ BEGIN IF current_setting('server_version_num')::int >= 150000 THEN
                               PERFORM pg_stat_force_next_flush(); END IF; END $$";
        if let Err(e) = self.with(|c, _| c.batch_execute(FLUSH)) {
            tracing::debug!(error = %e, "the session's statistics could not be flushed");
        }
    }

    /// The tables this session deletes from: a member its settled rows, a leader also the queue.
    fn vacuumed_tables(&self) -> String {
        match self.role {
            Role::Member { .. } => "bedrock_batch_settled".to_string(),
            _ => "bedrock_batch_requests, bedrock_batch_settled".to_string(),
        }
    }

    /// Requests that open batches claim: `feed` leaves them out.
    fn claim(&self, ids: Vec<u64>) {
        if ids.is_empty() {
            return;
        }
        let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        claimed.last = claimed.last.max(ids.iter().copied().max().unwrap_or(0));
        claimed.ids.extend(ids);
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("location", &self.config.location()).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects, takes the group's lock, creates or migrates the tables, and prunes the group's
    /// finished work older than the retention. Blocks (call it off the async runtime's workers).
    /// `StoreUnavailableException` when the server cannot be reached or refuses the user,
    /// `JournalLockedException` when another client holds the group, `JournalCorruptedException`
    /// when the tables are of a newer version.
    pub fn open(config: &StoreConfig) -> Result<PgStore, EngineError> {
        let (client, ()) = session(config, |c| lock_group(c, config))?;
        let store = PgStore::with_session(config, Role::Exclusive, Some(client));
        store.prune()?;
        let bytes = store.with(|c, _| {
            let row = c.query_one(
                "SELECT (SELECT coalesce(sum(pg_column_size(b.*)), 0) FROM bedrock_batch_batches b WHERE b.group_name = $1)::bigint
                      + (SELECT coalesce(sum(pg_column_size(a.*)), 0) FROM bedrock_batch_answers a WHERE a.group_name = $1)::bigint",
                &[&config.group],
            )?;
            Ok(row.get::<_, i64>(0))
        })?;
        store.bytes.store(bytes.max(0) as u64, Ordering::Relaxed);
        Ok(store)
    }

    /// A store to read a group's jobs and answers from, as a closed one reads them: each read on
    /// a connection of its own, without the group's lock (a running client may hold it), nothing
    /// migrated or pruned. For the `jobs` commands.
    pub fn reader(config: &StoreConfig) -> PgStore {
        let store = PgStore::with_session(config, Role::Exclusive, None);
        store.closed.store(true, Ordering::SeqCst);
        store
    }

    fn with_session(config: &StoreConfig, role: Role, client: Option<Client>) -> PgStore {
        PgStore {
            config: config.clone(),
            role,
            channel: shared::channel(&config.group),
            checks: AtomicU64::new(0),
            conn: Mutex::new(Conn { client, statements: HashMap::new() }),
            closed: AtomicBool::new(false),
            bytes: AtomicU64::new(0),
            claimed: Mutex::new(Claimed::default()),
            house: Mutex::new(House::default()),
        }
    }

    /// Opens a member session of the group: connects (within `connectTimeout`), creates or
    /// migrates the tables, and takes a client number. Blocks. `StoreUnavailableException` when
    /// the server cannot be reached or refuses the user, `JournalCorruptedException` when the
    /// tables are of a newer version.
    pub fn member(config: &StoreConfig) -> Result<PgStore, EngineError> {
        let (client, number) = session(config, |c| {
            let n: i64 = c
                .query_one("SELECT nextval('bedrock_batch_clients')", &[])
                .map_err(|e| unavailable(config, "could not number its client", &e))?
                .get(0);
            shared::hold_client_lock(c, n).map_err(|e| unavailable(config, "could not register its client", &e))?;
            shared::register_member(c, &config.group, n)
                .map_err(|e| unavailable(config, "could not register its client", &e))?;
            Ok(n)
        })?;
        Ok(PgStore::with_session(config, Role::Member { client: number }, Some(client)))
    }

    /// A session that tries for the lead of the group ([`PgStore::try_take`]): connects (within
    /// `connectTimeout`) and creates or migrates the tables. One per client, kept between tries.
    /// Blocks.
    pub fn candidate(config: &StoreConfig) -> Result<PgStore, EngineError> {
        let (client, ()) = session(config, |c| {
            // The server sees a leader whose machine vanished (no FIN) within about 20 s, and
            // releases its lock (TCP keepalives and user timeout of this session, on TCP).
            if let Err(e) =
                c.batch_execute("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 20000")
            {
                tracing::debug!(error = %e, "the session's keepalives could not be set");
            }
            Ok(())
        })?;
        Ok(PgStore::with_session(config, Role::Leader, Some(client)))
    }

    /// Tries once to take the group's lock on a candidate's session: `true` when it holds it now
    /// (the group then pruned and tidied as a new leader does), `false` when another client
    /// leads. A lost session fails (make a new candidate). Blocks.
    pub fn try_take(&self) -> Result<bool, EngineError> {
        let group = self.config.group.clone();
        let got = self.with(|c, _| {
            c.query_one("SELECT pg_try_advisory_lock($1, hashtext($2))", &[&GROUP_LOCK_CLASS, &group])
                .map(|r| r.get::<_, bool>(0))
        })?;
        if got {
            self.prune()?;
            self.with(|c, _| shared::take_over(c, &group))?;
            self.with(|c, _| shared::register_lead(c, &group))?;
            // What a leader that died mid-write left (its aborted rows) goes too.
            self.house.lock().unwrap_or_else(PoisonError::into_inner).answers = true;
            self.housekeep(0, false);
        }
        Ok(got)
    }

    /// [`PgStore::candidate`] and one [`PgStore::try_take`]: `Some(store)` holding the group's
    /// lock, `None` when another client leads. Blocks.
    pub fn try_lead(config: &StoreConfig) -> Result<Option<PgStore>, EngineError> {
        let store = PgStore::candidate(config)?;
        match store.try_take() {
            Ok(true) => Ok(Some(store)),
            Ok(false) => {
                store.close();
                Ok(None)
            }
            Err(e) => {
                store.close();
                Err(e)
            }
        }
    }

    /// Listens to the group's notifications on a connection of its own (on a thread of its
    /// own, reconnecting with backoff), calling `on` for each; `StoreEvent::Connected` after
    /// every (re)connection, when notifications may have been missed.
    pub fn listen(config: &StoreConfig, on: impl Fn(StoreEvent) + Send + Sync + 'static) -> Listener {
        shared::listen(config.clone(), Box::new(on))
    }

    /// The client number of a member session.
    fn client_number(&self) -> Result<i64, EngineError> {
        match self.role {
            Role::Member { client } => Ok(client),
            _ => Err(EngineError::internal("only a member session of the group queues and collects requests")),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn group(&self) -> &str {
        &self.config.group
    }

    /// Runs `f` on the session (an exclusive one is opened again after a loss, its lock taken
    /// again; a member's is opened again with backoff and `f` run again, for at most
    /// `store.outageTimeout`; a leader's is not: its lead is lost). Fails once closed.
    fn with<T>(
        &self,
        mut f: impl FnMut(&Client, &mut HashMap<&'static str, Statement>) -> Result<T, PgError>,
    ) -> Result<T, EngineError> {
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            match self.with_once(&mut f) {
                Err(e) if self.retries_after(&e, started) => {
                    attempt += 1;
                    let wait = crate::backoff::backoff(attempt, Duration::from_secs(5));
                    tracing::warn!(store = %self.config.location(), error = %e, "the store's connection is lost; trying again");
                    std::thread::sleep(wait.min(self.config.outage_timeout.saturating_sub(started.elapsed())));
                }
                other => return other,
            }
        }
    }

    /// Whether a member goes on trying after `e`.
    fn retries_after(&self, e: &EngineError, started: std::time::Instant) -> bool {
        matches!(self.role, Role::Member { .. })
            && e.name == ErrorName::StoreUnavailableException
            && !self.closed.load(Ordering::SeqCst)
            && started.elapsed() < self.config.outage_timeout
    }

    fn with_once<T>(
        &self,
        f: &mut impl FnMut(&Client, &mut HashMap<&'static str, Statement>) -> Result<T, PgError>,
    ) -> Result<T, EngineError> {
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = &mut *guard;
        if self.closed.load(Ordering::SeqCst) {
            conn.end();
            return Err(EngineError::closed(format!(
                "The store {} is closed (its client was closed).",
                self.config.location()
            )));
        }
        if conn.client.as_ref().is_none_or(Client::is_closed) {
            conn.end();
            match self.role {
                Role::Leader => {
                    return Err(EngineError::new(
                        ErrorName::StoreUnavailableException,
                        format!(
                            "The store {} lost the session that led its group: another client takes the lead.",
                            self.config.location()
                        ),
                    )
                    .with_status(503))
                }
                Role::Exclusive => {
                    let client = connect(&self.config)?;
                    if let Err(e) = lock_group(&client, &self.config) {
                        release(client);
                        return Err(e);
                    }
                    conn.client = Some(client);
                }
                Role::Member { client: number } => {
                    let client = connect(&self.config)?;
                    if let Err(e) = shared::hold_client_lock(&client, number) {
                        release(client);
                        return Err(unavailable(&self.config, "could not register its client", &e));
                    }
                    conn.client = Some(client);
                }
            }
        }
        let client = conn.client.as_ref().expect("connected above");
        let result = f(client, &mut conn.statements);
        let lost =
            result.as_ref().err().is_some_and(|e| e.is_closed() || client.is_closed() || e.as_db_error().is_none());
        if lost || self.closed.load(Ordering::SeqCst) {
            // The session is gone or in an unknown state (the next call starts a new one), or
            // the store was closed while this ran.
            conn.end();
        }
        result.map_err(|e| {
            if lost || is_shutdown(&e) {
                unavailable(&self.config, "lost its connection", &e)
            } else {
                EngineError::internal(format!(
                    "The store {} could not be used: {}",
                    self.config.location(),
                    describe(&self.config, &e)
                ))
            }
        })
    }

    /// Runs a query; once closed, on a connection of its own (without the group's lock), so a
    /// script can still list jobs and read answers.
    fn read<T>(&self, mut f: impl FnMut(&Client) -> Result<T, PgError>) -> Result<T, EngineError> {
        if !self.closed.load(Ordering::SeqCst) {
            return self.with(|c, _| f(c));
        }
        let client = connect(&self.config)?;
        let out = f(&client).map_err(|e| {
            EngineError::internal(format!(
                "The store {} could not be read: {}",
                self.config.location(),
                describe(&self.config, &e)
            ))
        });
        release(client);
        out
    }

    /// Drops the group's finished work older than the retention, and its batches that never
    /// finished uploading.
    fn prune(&self) -> Result<(), EngineError> {
        let cutoff = now() - (self.config.retention_days.max(0.0) * 86400.0) as i64;
        let group = self.group();
        self.with(|c, _| {
            c.transaction(|tx| {
                // Not an answer that a settled row waiting for its member points at.
                tx.execute(
                    "DELETE FROM bedrock_batch_answers WHERE group_name = $1 AND finished_at <= $2
                       AND id NOT IN (SELECT answer FROM bedrock_batch_settled WHERE group_name = $1 AND answer IS NOT NULL)",
                    &[&group, &cutoff],
                )?;
                tx.execute(
                    "DELETE FROM bedrock_batch_batches WHERE group_name = $1 AND state = 'done' AND finished_at <= $2",
                    &[&group, &cutoff],
                )?;
                tx.execute(
                    "DELETE FROM bedrock_batch_objects WHERE group_name = $1 AND updated_at <= $2",
                    &[&group, &cutoff],
                )?;
                // A batch whose upload never completed was never a job: its requests are sent anew
                // (a group's queued ones are read from its queue again: no open batch claims them).
                tx.execute(
                    "DELETE FROM bedrock_batch_batches WHERE group_name = $1 AND state = 'uploading'",
                    &[&group],
                )?;
                Ok(())
            })
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.conn.get_mut().unwrap_or_else(PoisonError::into_inner).end();
    }
}

/// Ends a session off the calling thread (a runtime must not be dropped on an async worker),
/// waiting a moment so that its lock is released before the caller goes on.
fn release(client: Client) {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("bbb-pg-close".into()).spawn(move || {
        let Client { rt, client, connection, notifications } = client;
        drop(notifications);
        // Without its client, the connection ends the session (a Terminate message) and stops.
        drop(client);
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(2), connection).await });
        rt.shutdown_background();
        let _ = tx.send(());
    });
    if spawned.is_ok() {
        let _ = rx.recv_timeout(Duration::from_secs(2));
    }
}

/// Connects (TLS as `sslmode` says), all of it within `connectTimeout`;
/// `StoreUnavailableException` naming host and port when it cannot.
fn connect(config: &StoreConfig) -> Result<Client, EngineError> {
    let url = &config.url;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
        EngineError::new(
            ErrorName::StoreUnavailableException,
            format!("The store at {} cannot be reached: no runtime for its connection: {e}", url.host_port()),
        )
    })?;
    let mut pg = tokio_postgres::Config::new();
    pg.host(&url.host)
        .port(url.port)
        .user(&url.user)
        .dbname(&url.database)
        .application_name(url.application_name.as_deref().unwrap_or("bedrock-batch-bridge"))
        .connect_timeout(config.connect_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .tcp_user_timeout(Duration::from_secs(60));
    if let Some(p) = &url.password {
        pg.password(p);
    }
    let timed_out = || {
        EngineError::new(
            ErrorName::StoreUnavailableException,
            format!(
                "The store at {} (database {:?}, group {:?}) did not answer within {} s (store.connectTimeout).",
                url.host_port(),
                url.database,
                config.group,
                config.connect_timeout.as_secs_f64()
            ),
        )
        .with_status(503)
    };
    let (client, connection) = match url.ssl_mode {
        SslMode::Disable => {
            pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (client, connection) = rt
                .block_on(async { tokio::time::timeout(config.connect_timeout, pg.connect(NoTls)).await })
                .map_err(|_| timed_out())?
                .map_err(|e| unavailable(config, "could not be opened", &e))?;
            (client, shared::drive(&rt, connection))
        }
        mode => {
            let tls = tls::connector(config).map_err(|why| {
                EngineError::new(
                    ErrorName::StoreUnavailableException,
                    format!("The store at {} cannot be reached: {why}", url.host_port()),
                )
                .with_status(503)
            })?;
            pg.ssl_mode(if mode == SslMode::Prefer {
                tokio_postgres::config::SslMode::Prefer
            } else {
                tokio_postgres::config::SslMode::Require
            });
            let (client, connection) = rt
                .block_on(async { tokio::time::timeout(config.connect_timeout, pg.connect(tls)).await })
                .map_err(|_| timed_out())?
                .map_err(|e| unavailable(config, "could not be opened", &e))?;
            (client, shared::drive(&rt, connection))
        }
    };
    let (connection, notifications) = connection;
    Ok(Client { rt, client, connection, notifications })
}

/// A new session whose tables are created or migrated, then made ready by `ready`; ended again
/// when either fails.
fn session<T>(
    config: &StoreConfig,
    ready: impl FnOnce(&Client) -> Result<T, EngineError>,
) -> Result<(Client, T), EngineError> {
    let client = connect(config)?;
    match migrate(&client).map_err(|e| migration_error(config, e)).and_then(|()| ready(&client)) {
        Ok(v) => Ok((client, v)),
        Err(e) => {
            release(client);
            Err(e)
        }
    }
}

/// Takes the group's session lock, waiting a little for a client that just closed it.
fn lock_group(client: &Client, config: &StoreConfig) -> Result<(), EngineError> {
    let wait = (config.connect_timeout / 2).min(Duration::from_secs(5)).max(Duration::from_millis(100));
    let run = |client: &Client| -> Result<(), PgError> {
        client.batch_execute(&format!("SET lock_timeout = {}", wait.as_millis()))?;
        let locked = client.execute("SELECT pg_advisory_lock($1, hashtext($2))", &[&GROUP_LOCK_CLASS, &config.group]);
        client.batch_execute("RESET lock_timeout")?;
        locked.map(|_| ())
    };
    run(client).map_err(|e| {
        if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            EngineError::new(
                ErrorName::JournalLockedException,
                format!(
                    "The store group {:?} at {} is held by another client or process (its lead is taken).",
                    config.group,
                    config.url.location()
                ),
            )
        } else {
            unavailable(config, "could not lock its group", &e)
        }
    })
}

enum Migration {
    Newer(i32),
    Sql(PgError),
}

fn migration_error(config: &StoreConfig, e: Migration) -> EngineError {
    match e {
        Migration::Newer(v) => EngineError::new(
            ErrorName::JournalCorruptedException,
            format!(
                "The store at {} has tables of schema version {v}, newer than this package's {SCHEMA_VERSION}: upgrade bedrock-batch-bridge.",
                config.url.location()
            ),
        ),
        Migration::Sql(e) => unavailable(config, "could not prepare its tables", &e),
    }
}

impl From<PgError> for Migration {
    fn from(e: PgError) -> Self {
        Migration::Sql(e)
    }
}

/// Creates or upgrades the tables, in one transaction under the migration lock.
fn migrate(client: &Client) -> Result<(), Migration> {
    let have = client.transaction(|tx| {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS bedrock_batch_schema (
               version integer PRIMARY KEY,
               description text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )?;
        let have: i32 = tx.query_one("SELECT coalesce(max(version), 0) FROM bedrock_batch_schema", &[])?.get(0);
        if have <= SCHEMA_VERSION {
            for (version, description, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > have) {
                tx.batch_execute(sql)?;
                tx.execute(
                    "INSERT INTO bedrock_batch_schema (version, description) VALUES ($1, $2)",
                    &[version, description],
                )?;
            }
        }
        Ok(have)
    })?;
    if have > SCHEMA_VERSION {
        return Err(Migration::Newer(have));
    }
    Ok(())
}

/// Whether the server is going away (shutting down, restarting, or refusing while it starts).
fn is_shutdown(e: &PgError) -> bool {
    e.code().is_some_and(|c| {
        [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::CONNECTION_FAILURE,
            SqlState::CONNECTION_EXCEPTION,
        ]
        .contains(c)
    })
}

/// An error's own words, without the password.
fn describe(config: &StoreConfig, e: &PgError) -> String {
    let text = match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    match &config.url.password {
        Some(p) if p.len() >= 3 => text.replace(p.as_str(), "***"),
        _ => text,
    }
}

/// `StoreUnavailableException` naming where the store is (never the password).
fn unavailable(config: &StoreConfig, what: &str, e: &PgError) -> EngineError {
    EngineError::new(
        ErrorName::StoreUnavailableException,
        format!(
            "The store at {} (database {:?}, user {:?}, group {:?}) {what}: {}",
            config.url.host_port(),
            config.url.database,
            config.url.user,
            config.group,
            describe(config, e)
        ),
    )
    .with_status(503)
}

/// A statement prepared on this session (once).
fn prepared(c: &Client, cache: &mut HashMap<&'static str, Statement>, sql: &'static str) -> Result<Statement, PgError> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = c.prepare(sql)?;
    cache.insert(sql, s.clone());
    Ok(s)
}

/// A stored answer: the columns `output, error_name, error_message` from column `i` on.
fn answer_at(r: &Row, i: usize) -> Answer {
    let output: Option<Vec<u8>> = r.get(i);
    let name: Option<String> = r.get(i + 1);
    let message: Option<String> = r.get(i + 2);
    match (output, name) {
        (Some(o), _) => Answer::Output(Bytes::from(o)),
        (None, Some(name)) => Answer::Error { name, message: message.unwrap_or_default() },
        (None, None) => Answer::Output(Bytes::new()),
    }
}

impl Store for PgStore {
    fn recover(&self) -> Result<Vec<Recovered>, EngineError> {
        if let Role::Member { .. } = self.role {
            // The leader takes batches up.
            return Ok(Vec::new());
        }
        let group = self.config.group.clone();
        let rows = self.with(|c, _| {
            c.query(
                "SELECT token, job_name, model_id, output_uri, state, input_uri, job_arn, members, invocation_type, from_queue FROM bedrock_batch_batches
                 WHERE group_name = $1 AND state IN ('creating', 'submitted') ORDER BY id",
                &[&group],
            )
        })?;
        let mut batches = Vec::new();
        let mut claims = Vec::new();
        for r in rows {
            let batch = BatchRecord {
                token: r.get(0),
                job_name: r.get(1),
                model_id: r.get(2),
                output_uri: r.get(3),
                invocation_type: InvocationType::parse(r.get::<_, &str>(8)),
            };
            let members = unpack_members(r.get::<_, &[u8]>(7)).ok_or_else(|| {
                EngineError::new(
                    ErrorName::JournalCorruptedException,
                    format!(
                        "The store {} cannot be used: the members of batch {} do not decode.",
                        self.config.location(),
                        batch.token
                    ),
                )
            })?;
            let state = match (r.get::<_, &str>(4), r.get::<_, Option<String>>(5), r.get::<_, Option<String>>(6)) {
                ("submitted", Some(input_uri), Some(job_arn)) => RecoveredState::Submitted { input_uri, job_arn },
                (_, Some(input_uri), _) => RecoveredState::Creating { input_uri },
                _ => continue,
            };
            if r.get::<_, bool>(9) {
                claims.extend(members.iter().map(|m| m.record));
            }
            batches.push(Recovered { batch, state, members });
        }
        self.claim(claims);
        // Members that already have their answer are not taken up again.
        let keys: Vec<Key> = batches.iter().flat_map(|b| b.members.iter().map(|m| m.key.clone())).collect();
        let mut answered: HashSet<String> = HashSet::new();
        for chunk in keys.chunks(CHUNK) {
            let digests: Vec<i64> = chunk.iter().map(|k| digest_of(k)).collect();
            let texts: Vec<&str> = chunk.iter().map(|k| &**k).collect();
            let rows = self.with(|c, st| {
                let s = prepared(c, st, ANSWERED)?;
                c.query_prepared(&s, &[&group, &digests, &texts])
            })?;
            answered.extend(rows.into_iter().map(|r| r.get::<_, String>(0)));
        }
        for b in &mut batches {
            b.members.retain(|m| !answered.contains(&*m.key));
        }
        super::newest_owns_its_keys(&mut batches);
        Ok(batches)
    }

    fn known_keys(&self) -> Result<KnownKeys, EngineError> {
        // Other processes will write the group too: every key is looked up.
        Ok(KnownKeys::Any)
    }

    fn write(&self, writes: &[Write]) -> Result<(), EngineError> {
        if writes.is_empty() {
            return Ok(());
        }
        let group = self.config.group.clone();
        let client = match self.role {
            Role::Member { client } => Some(client),
            _ => None,
        };
        if client.is_none() && writes.iter().any(|w| matches!(w, Write::Enqueue(_))) {
            return Err(EngineError::internal("requests are queued through a member session of the group"));
        }
        let shared = shared::Shared { group: &group, channel: &self.channel, client, leads: self.role == Role::Leader };
        let written = self.with(|c, st| apply(c, st, &shared, writes))?;
        self.bytes.fetch_add(written, Ordering::Relaxed);
        let settled: usize =
            writes.iter().map(|w| if let Write::Settle { settled, .. } = w { settled.len() } else { 0 }).sum();
        if settled > 0 {
            // Each settlement leaves a dead queue row, and a settled row its member will delete.
            self.report_deletes();
            self.housekeep(settled as u64, false);
        }
        Ok(())
    }

    fn lookup(&self, keys: &[Key]) -> Result<Vec<Option<Finished>>, EngineError> {
        let mut found: HashMap<String, Finished> = HashMap::new();
        let group = self.group();
        for chunk in keys.chunks(CHUNK) {
            let digests: Vec<i64> = chunk.iter().map(|k| digest_of(k)).collect();
            let texts: Vec<&str> = chunk.iter().map(|k| &**k).collect();
            let rows = self.with(|c, st| {
                let s = prepared(c, st, LOOKUP)?;
                c.query_prepared(&s, &[&group, &digests, &texts])
            })?;
            for r in rows {
                let finished = Finished {
                    answer: answer_at(&r, 1),
                    job_arn: r.get(4),
                    record: r.get::<_, Option<i64>>(5).map(|n| n as u64),
                };
                found.insert(r.get(0), finished);
            }
        }
        Ok(keys.iter().map(|k| found.get(&**k).cloned()).collect())
    }

    fn jobs(&self) -> Result<Vec<StoredJob>, EngineError> {
        let group = self.group();
        let rows = self.read(|c| {
            c.query(
                "SELECT job_arn, job_name, model_id, coalesce(status, state), created_at, total, success, errors FROM bedrock_batch_batches
                 WHERE group_name = $1 AND job_arn IS NOT NULL ORDER BY created_at, id",
                &[&group],
            )
        })?;
        Ok(rows
            .into_iter()
            .map(|r| StoredJob {
                job_arn: r.get(0),
                job_name: r.get(1),
                model_id: r.get(2),
                status: JobStatus::parse(r.get::<_, &str>(3)),
                created_at: r.get(4),
                total_record_count: r.get::<_, i64>(5) as u64,
                success_record_count: r.get::<_, i64>(6) as u64,
                error_record_count: r.get::<_, i64>(7) as u64,
            })
            .collect())
    }

    fn results(&self, job_arn: &str, after: Option<u64>, limit: usize) -> Result<Vec<StoredResult>, EngineError> {
        let group = self.group();
        let after = after.map_or(-1, |a| a as i64);
        let limit = limit as i64;
        let rows = self.read(|c| {
            c.query(
                "SELECT a.record, a.key, a.output, a.error_name, a.error_message FROM bedrock_batch_answers a
                 WHERE a.group_name = $1 AND a.batch = (SELECT id FROM bedrock_batch_batches WHERE group_name = $1 AND job_arn = $2 ORDER BY id DESC LIMIT 1)
                   AND a.record > $3
                 ORDER BY a.record LIMIT $4",
                &[&group, &job_arn, &after, &limit],
            )
        })?;
        Ok(rows
            .into_iter()
            .map(|r| StoredResult { record: r.get::<_, i64>(0) as u64, key: r.get(1), answer: answer_at(&r, 2) })
            .collect())
    }

    fn location(&self) -> (String, u64) {
        (self.config.location(), self.bytes.load(Ordering::Relaxed))
    }

    fn feed(&self, after: u64, limit: usize) -> Result<Vec<QueuedRequest>, EngineError> {
        if let Role::Member { .. } = self.role {
            return Err(EngineError::internal("the group's queue is read by its leader"));
        }
        let group = self.group();
        let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        // Pages until `limit` unclaimed requests or the queue's end. Every request up to `from`
        // was handed out or is claimed: the next read starts there (a leader hands each request
        // out once; one it releases, it batches again itself).
        let mut from = after.max(claimed.frontier);
        let mut out = Vec::new();
        loop {
            let asked = limit - out.len();
            let page = self.with(|c, st| shared::feed(c, st, group, from, asked))?;
            let read = page.len();
            if let Some(last) = page.last() {
                from = last.id;
            }
            out.extend(page.into_iter().filter(|r| !claimed.ids.contains(&r.id)));
            if read < asked || out.len() >= limit {
                break;
            }
        }
        claimed.frontier = from;
        if from >= claimed.last {
            claimed.ids = HashSet::new();
        }
        Ok(out)
    }

    fn bodies(&self, ids: &[u64]) -> Result<Vec<(u64, Bytes)>, EngineError> {
        let group = self.group();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            out.extend(self.with(|c, st| shared::bodies(c, st, group, chunk))?);
        }
        Ok(out)
    }

    fn take_settled(&self) -> Result<Vec<SettledRequest>, EngineError> {
        let client = self.client_number()?;
        let group = self.group();
        let (ids, settled) = self.with(|c, st| shared::settled(c, st, group, client))?;
        if !ids.is_empty() {
            // Taken out only once read: rows read twice (the delete lost with the connection)
            // find nobody waiting the second time.
            match self.with(|c, _| shared::forget(c, client, &ids)) {
                Ok(()) => {
                    // Vacuumed by this session after `VACUUM_EVERY` of them and as it closes, by
                    // the leader after its next settlements or once the group is quiet.
                    self.report_deletes();
                    self.housekeep(ids.len() as u64, false);
                }
                Err(e) => tracing::warn!(error = %e, "settled requests could not be taken out of the store"),
            }
        }
        Ok(settled)
    }

    fn request_flush(&self) -> Result<(), EngineError> {
        let channel = self.channel.clone();
        self.with(|c, _| c.execute("SELECT pg_notify($1, 'f')", &[&channel]).map(|_| ()))
    }

    fn request_take_up(&self) -> Result<(), EngineError> {
        let channel = self.channel.clone();
        self.with(|c, _| c.execute("SELECT pg_notify($1, 'a')", &[&channel]).map(|_| ()))
    }

    fn committed_spend(&self) -> Result<f64, EngineError> {
        let group = self.group();
        self.read(|c| {
            let rows = c.query("SELECT committed FROM bedrock_batch_spend WHERE group_name = $1", &[&group])?;
            Ok(rows.first().map_or(0.0, |r| r.get(0)))
        })
    }

    fn commit_spend(&self, estimate: f64, cap: f64) -> Result<Result<f64, f64>, EngineError> {
        let group = self.group();
        self.with(|c, _| {
            // One statement: the row is created or grown only while the total stays within the cap.
            let rows = c.query(
                "INSERT INTO bedrock_batch_spend AS s (group_name, committed)
                   SELECT $1, $2::double precision WHERE $2::double precision <= $3::double precision
                 ON CONFLICT (group_name) DO UPDATE SET committed = s.committed + excluded.committed
                   WHERE s.committed + excluded.committed <= $3::double precision
                 RETURNING committed",
                &[&group as &(dyn ToSql + Sync), &estimate, &cap],
            )?;
            match rows.first() {
                Some(r) => Ok(Ok(r.get(0))),
                None => {
                    let now = c.query("SELECT committed FROM bedrock_batch_spend WHERE group_name = $1", &[&group])?;
                    Ok(Err(now.first().map_or(0.0, |r| r.get(0))))
                }
            }
        })
    }

    fn put_object(&self, kind: &str, id: &str, body: &[u8]) -> Result<(), EngineError> {
        let group = self.group();
        self.with(|c, _| {
            c.execute(
                "INSERT INTO bedrock_batch_objects (group_name, kind, id, body, updated_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (group_name, kind, id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                &[&group as &(dyn ToSql + Sync), &kind, &id, &body, &now()],
            )
            .map(drop)
        })
    }

    fn get_object(&self, kind: &str, id: &str) -> Result<Option<Vec<u8>>, EngineError> {
        let group = self.group();
        let rows = self.read(|c| {
            c.query(
                "SELECT body FROM bedrock_batch_objects WHERE group_name = $1 AND kind = $2 AND id = $3",
                &[&group, &kind, &id],
            )
        })?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn list_objects(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, EngineError> {
        let group = self.group();
        let rows = self.read(|c| {
            c.query(
                "SELECT id, body FROM bedrock_batch_objects WHERE group_name = $1 AND kind = $2 ORDER BY seq",
                &[&group, &kind],
            )
        })?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn delete_object(&self, kind: &str, id: &str) -> Result<bool, EngineError> {
        let group = self.group();
        self.with(|c, _| {
            c.execute(
                "DELETE FROM bedrock_batch_objects WHERE group_name = $1 AND kind = $2 AND id = $3",
                &[&group, &kind, &id],
            )
            .map(|n| n > 0)
        })
    }

    fn members(&self) -> Result<Vec<GroupMember>, EngineError> {
        let group = self.group();
        self.read(|c| shared::members(c, group))
    }

    fn check_lead(&self) -> Result<(), EngineError> {
        let group = self.group();
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        self.with(|c, _| {
            c.batch_execute("SELECT 1")?;
            // Every so often: the settled rows of clients that are gone.
            if n % 60 == 59 {
                shared::drop_orphans(c, group)?;
            }
            Ok(())
        })?;
        // What the last settlements left, once the group is quiet for a moment.
        self.housekeep(0, true);
        Ok(())
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // Ending the session releases the group's lock. When an operation runs (it may wait for
        // the server), it ends the session as it finishes: close() never waits for it.
        let guard = match self.conn.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        let Some(mut conn) = guard else { return };
        // What this session's last deletes left dead is vacuumed as it ends (at most 10 s), so
        // that a group that finished leaves its tables no bigger than what they hold.
        let tables = {
            let h = self.house.lock().unwrap_or_else(PoisonError::into_inner);
            (h.last.is_some() && !h.tidy).then(|| self.vacuumed_tables())
        };
        match (tables, conn.client.take()) {
            (Some(tables), Some(client)) => {
                conn.statements.clear();
                let (tx, rx) = std::sync::mpsc::channel();
                let spawned = std::thread::Builder::new().name("bbb-pg-tidy".into()).spawn(move || {
                    if let Err(e) = client.batch_execute(&vacuum_of(&tables)) {
                        tracing::debug!(error = %e, "the group's tables could not be vacuumed");
                    }
                    release(client);
                    let _ = tx.send(());
                });
                if spawned.is_ok() {
                    let _ = rx.recv_timeout(Duration::from_secs(10));
                }
            }
            (_, client) => {
                conn.client = client;
                conn.end();
            }
        }
    }
}

/// Applies a group of writes in one transaction; returns about how many bytes it added.
fn apply(
    c: &Client,
    st: &mut HashMap<&'static str, Statement>,
    shared: &shared::Shared<'_>,
    writes: &[Write],
) -> Result<u64, PgError> {
    let group = shared.group;
    let t = now();
    let s_batch = prepared(c, st, INSERT_BATCH)?;
    let s_uploaded = prepared(c, st, UPLOADED)?;
    let s_created = prepared(c, st, CREATED)?;
    let s_status = prepared(c, st, STATUS)?;
    let s_done = prepared(c, st, DONE)?;
    let s_answers = prepared(c, st, INSERT_ANSWERS)?;
    let s_settle = prepared(c, st, shared::SETTLE)?;
    c.transaction(|tx| {
        let mut bytes = 0u64;
        for w in writes {
            match w {
                Write::BatchFormed { batch, members } => {
                    let packed = pack_members(members);
                    bytes +=
                        (packed.len() + batch.job_name.len() + batch.token.len() + batch.output_uri.len() + 100) as u64;
                    tx.execute_prepared(
                        &s_batch,
                        &[
                            &group,
                            &batch.token,
                            &batch.job_name,
                            &batch.model_id,
                            &batch.output_uri,
                            &t,
                            &packed,
                            &batch.invocation_type.as_str(),
                            // A leader's batch is of the group's queue: its members are requests
                            // (numbered as their records) that the queue must not hand out again.
                            &shared.leads,
                        ],
                    )?;
                }
                Write::BatchUploaded { token, input_uri } => {
                    tx.execute_prepared(&s_uploaded, &[&group, token, input_uri])?;
                }
                Write::BatchCreated { token, job_arn, total } => {
                    tx.execute_prepared(&s_created, &[&group, token, job_arn, &(*total as i64)])?;
                }
                Write::JobStatus { job_arn, status, success, errors } => {
                    tx.execute_prepared(
                        &s_status,
                        &[&group, job_arn, &status.as_str(), &(*success as i64), &(*errors as i64)],
                    )?;
                }
                Write::Answers(rows) => {
                    bytes += insert_answers(tx, &s_answers, group, t, rows, &mut HashMap::new())?;
                }
                Write::BatchDone { token } => {
                    tx.execute_prepared(&s_done, &[&group, token, &t])?;
                }
                Write::Enqueue(requests) => bytes += shared::enqueue(tx, shared, requests)?,
                Write::Settle { answers, settled } => {
                    let mut ids = HashMap::with_capacity(answers.len());
                    bytes += insert_answers(tx, &s_answers, group, t, answers, &mut ids)?;
                    bytes += shared::settle(tx, &s_settle, shared, settled, &ids)?;
                }
                Write::Release(ids) => shared::requeue(tx, shared, ids)?,
                // A group commits with commit_spend, atomically.
                Write::Spend(_) => {}
            }
        }
        Ok(bytes)
    })
}

/// Inserts answers (chunks of at most CHUNK rows and about CHUNK_BYTES); `ids` gets each row's
/// id by its record number. Returns about how many bytes it added.
fn insert_answers(
    tx: &Client,
    statement: &Statement,
    group: &str,
    t: i64,
    rows: &[AnswerRow],
    ids: &mut HashMap<u64, i64>,
) -> Result<u64, PgError> {
    let rows: Vec<_> = rows.iter().filter(|r| r.answer.is_some()).collect();
    let mut bytes = 0u64;
    let mut start = 0;
    while start < rows.len() {
        let mut end = start;
        let mut size = 0usize;
        while end < rows.len() && end - start < CHUNK && (size < CHUNK_BYTES || end == start) {
            size += match &rows[end].answer {
                Some(Answer::Output(b)) => b.len(),
                Some(Answer::Error { name, message }) => name.len() + message.len(),
                None => 0,
            } + rows[end].key.len();
            end += 1;
        }
        let part = &rows[start..end];
        let digests: Vec<i64> = part.iter().map(|r| digest_of(&r.key)).collect();
        let keys: Vec<&str> = part.iter().map(|r| &*r.key).collect();
        let tokens: Vec<Option<&str>> = part.iter().map(|r| r.batch.as_deref()).collect();
        let records: Vec<i64> = part.iter().map(|r| r.record as i64).collect();
        let outputs: Vec<Option<&[u8]>> = part
            .iter()
            .map(|r| match &r.answer {
                Some(Answer::Output(b)) => Some(&b[..]),
                _ => None,
            })
            .collect();
        let names: Vec<Option<&str>> = part
            .iter()
            .map(|r| match &r.answer {
                Some(Answer::Error { name, .. }) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let messages: Vec<Option<&str>> = part
            .iter()
            .map(|r| match &r.answer {
                Some(Answer::Error { message, .. }) => Some(message.as_str()),
                _ => None,
            })
            .collect();
        let inserted = tx.query_prepared(
            statement,
            &[&group, &t, &digests, &keys, &tokens, &records, &outputs, &names, &messages],
        )?;
        ids.extend(inserted.iter().map(|r| (r.get::<_, Option<i64>>(0).unwrap_or(-1) as u64, r.get::<_, i64>(1))));
        bytes += (size + 60 * part.len()) as u64;
        start = end;
    }
    Ok(bytes)
}

/// The TLS connectors of `sslmode`.
mod tls {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
    use tokio_postgres_rustls::MakeRustlsConnect;

    use crate::config::{SslMode, StoreConfig};

    /// The connector for `prefer`, `require`, `verify-ca` or `verify-full`.
    pub(super) fn connector(config: &StoreConfig) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let tls = match config.url.ssl_mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
                .with_no_client_auth(),
            mode @ (SslMode::VerifyCa | SslMode::VerifyFull) => {
                let roots = roots(config)?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| format!("TLS: {e}"))?;
                if mode == SslMode::VerifyFull {
                    builder.with_webpki_verifier(webpki).with_no_client_auth()
                } else {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
                        .with_no_client_auth()
                }
            }
        };
        Ok(MakeRustlsConnect::new(tls))
    }

    /// `sslrootcert`, else the system's roots.
    fn roots(config: &StoreConfig) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        match &config.url.ssl_root_cert {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("sslrootcert {} cannot be read: {e}", path.display()))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!("sslrootcert {} holds no certificate", path.display()));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(
                        "no trusted root certificates were found on this system (give sslrootcert=/path/to/ca.pem)"
                            .into(),
                    );
                }
            }
        }
        Ok(roots)
    }

    /// `prefer` and `require`: encrypted, the certificate taken as it is (libpq's meaning);
    /// the handshake's signatures are still checked.
    #[derive(Debug)]
    struct Unchecked(Arc<CryptoProvider>);

    impl ServerCertVerifier for Unchecked {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// `verify-ca`: the chain must be trusted; the name is not compared.
    #[derive(Debug)]
    struct AnyName(Arc<WebPkiServerVerifier>);

    impl ServerCertVerifier for AnyName {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                // The chain was checked before the name.
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }
}
