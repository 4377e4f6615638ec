//! Test support: a scriptable in-memory batch back-end, a fake on-demand back-end, a collecting
//! sink and a harness that wires them to an [`Engine`]. Everything runs under paused tokio time.
#![allow(dead_code)]
// `pub` here means shared by the test files of a test crate, which exports nothing.
#![allow(unreachable_pub)]

pub mod stores;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bedrock_batch_core::backend::{BatchBackend, DirectBackend, JobInfo, JobSpec, LineSink, Tokens};
use bedrock_batch_core::stats::JobStats;
use bedrock_batch_core::{
    Backends, BatchConfig, Engine, EngineConfig, EngineError, ErrorName, InvokeOptions, Mode, Request, Settlement,
    Sink, Success,
};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::time::Instant;

/// A Claude model (its filler is `max_tokens: 1`).
pub const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
/// Another model, for per-model queues.
pub const OTHER_MODEL: &str = "meta.llama3-1-8b-instruct-v1:0";

/// A valid batch configuration with the documented defaults.
pub fn config() -> BatchConfig {
    BatchConfig {
        s3_input_uri: "s3://in-bucket/input/".into(),
        s3_output_uri: "s3://out-bucket/output/".into(),
        role_arn: "arn:aws:iam::123456789012:role/BatchRole".into(),
        ..Default::default()
    }
}

/// A request body that carries its prompt (the fake echoes it back).
pub fn body(prompt: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{ "role": "user", "content": prompt }],
    }))
    .unwrap()
}

/// The prompt of a model input written by [`body`] (`None` for anything else, e.g. fillers of other families).
pub fn prompt_of(model_input: &Value) -> Option<String> {
    model_input.pointer("/messages/0/content").and_then(Value::as_str).map(str::to_string)
}

/// The JSON the fake answers for a prompt, with odd spacing on purpose (bodies must be byte-exact).
pub fn answer_for(prompt: &str) -> String {
    format!(
        r#"{{"id": "msg-1",  "content":[{{"type":"text","text": {}}}], "usage": {{"input_tokens": 7, "output_tokens": 3}}}}"#,
        serde_json::to_string(&format!("Answer to {prompt}")).unwrap()
    )
}

/// The virtual time since `t0`, in seconds.
pub fn secs_since(t0: Instant, t: Instant) -> f64 {
    (t - t0).as_secs_f64()
}

// ===== the fake batch back-end =====

/// One line of an uploaded input file.
#[derive(Debug, Clone)]
pub struct Record {
    pub record_id: String,
    pub model_input: Value,
    /// The `modelInput` text as written.
    pub raw_input: String,
    pub prompt: Option<String>,
}

/// One uploaded input file.
#[derive(Debug, Clone)]
pub struct Upload {
    pub folder: String,
    pub file_name: String,
    pub uri: String,
    /// Size of the file as uploaded.
    pub bytes: usize,
    pub records: Vec<Record>,
    pub at: Instant,
}

/// One job the fake created.
#[derive(Debug, Clone)]
pub struct Job {
    pub index: usize,
    pub arn: String,
    pub spec: JobSpec,
    pub records: Vec<Record>,
    pub created_at: Instant,
    pub polls: usize,
    pub finished_at: Option<Instant>,
    pub final_status: Option<String>,
}

impl Job {
    /// Records that carry a prompt written by [`body`] and whose id is a request's.
    pub fn real_records(&self, requests: &HashSet<String>) -> Vec<&Record> {
        self.records.iter().filter(|r| requests.contains(&r.record_id)).collect()
    }
}

/// A create_job fault.
#[derive(Debug, Clone)]
pub enum CreateFault {
    /// Fails without creating anything.
    Before(EngineError),
    /// Creates the job, then answers with an error (as when the response is lost).
    After(EngineError),
    /// Creates the job and never answers (the process dies before it learns the ARN).
    Hang,
}

/// What the fake writes for one record.
#[derive(Debug, Clone)]
pub enum Out {
    /// `modelOutput` = [`answer_for`] its prompt.
    Ok,
    /// `modelOutput` = this exact JSON text.
    Body(String),
    /// `error: { errorCode, errorMessage }`.
    Error(Value, String),
    /// No line at all.
    Missing,
    /// A truncated, unparseable line.
    Malformed,
}

/// What the output script sees about a record.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The job's creation index (0-based).
    pub job: usize,
    pub record_id: String,
    pub prompt: Option<String>,
    /// How many jobs (this one included) have carried this record id.
    pub attempt: usize,
    /// The job's terminal status.
    pub status: String,
}

type StatusScript = Box<dyn Fn(usize) -> Vec<JobInfo> + Send + Sync>;
type OutputScript = Box<dyn Fn(&Ctx) -> Out + Send + Sync>;

#[derive(Default)]
struct State {
    uploads: Vec<Upload>,
    jobs: Vec<Job>,
    by_token: HashMap<String, usize>,
    by_arn: HashMap<String, usize>,
    create_calls: Vec<(JobSpec, Instant)>,
    create_faults: VecDeque<CreateFault>,
    upload_faults: VecDeque<EngineError>,
    get_job_faults: VecDeque<EngineError>,
    read_faults: VecDeque<(usize, EngineError)>,
    get_job_calls: Vec<(String, Instant)>,
    read_calls: Vec<(String, Instant)>,
    stopped: Vec<String>,
    cleanups: Vec<(String, String, String)>,
    read_input_calls: Vec<String>,
}

/// An in-memory, scriptable [`BatchBackend`].
pub struct FakeBatch {
    state: Mutex<State>,
    statuses: Mutex<StatusScript>,
    outputs: Mutex<OutputScript>,
    tokens: Mutex<Option<Tokens>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

/// `status` with no message.
pub fn status(s: &str) -> JobInfo {
    JobInfo { status: s.into(), ..Default::default() }
}

/// `InProgress` `n` times, then `last`.
pub fn in_progress_then(n: usize, last: JobInfo) -> Vec<JobInfo> {
    let mut v: Vec<JobInfo> = (0..n).map(|_| status("InProgress")).collect();
    v.push(last);
    v
}

pub fn throttling() -> EngineError {
    EngineError::new(ErrorName::ThrottlingException, "Rate exceeded").with_status(429).transient(true)
}

pub fn quota_exceeded() -> EngineError {
    EngineError::new(ErrorName::ServiceQuotaExceededException, "Too many jobs in progress")
        .with_status(400)
        .transient(true)
}

pub fn access_denied() -> EngineError {
    EngineError::new(ErrorName::AccessDeniedException, "not allowed to pass the role").with_status(403).transient(false)
}

impl Default for FakeBatch {
    fn default() -> Self {
        FakeBatch {
            state: Mutex::new(State::default()),
            statuses: Mutex::new(Box::new(|_| in_progress_then(1, status("Completed")))),
            outputs: Mutex::new(Box::new(|_| Out::Ok)),
            tokens: Mutex::new(Some(Tokens { input: 0, output: 0 })),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
        }
    }
}

impl FakeBatch {
    /// Statuses `get_job` returns for the job created `index`-th, one per poll; the last repeats.
    pub fn on_status(&self, f: impl Fn(usize) -> Vec<JobInfo> + Send + Sync + 'static) {
        *self.statuses.lock().unwrap() = Box::new(f);
    }

    /// What each record's output line is.
    pub fn on_output(&self, f: impl Fn(&Ctx) -> Out + Send + Sync + 'static) {
        *self.outputs.lock().unwrap() = Box::new(f);
    }

    /// Token totals each job's manifest reports (`None`: no manifest).
    pub fn set_tokens(&self, t: Option<Tokens>) {
        *self.tokens.lock().unwrap() = t;
    }

    /// The next create_job calls fail, in this order.
    pub fn fail_creates(&self, faults: impl IntoIterator<Item = CreateFault>) {
        self.state.lock().unwrap().create_faults.extend(faults);
    }

    /// The next upload calls fail, in this order.
    pub fn fail_uploads(&self, errs: impl IntoIterator<Item = EngineError>) {
        self.state.lock().unwrap().upload_faults.extend(errs);
    }

    /// The next read_output calls deliver this many lines, then fail with the error.
    pub fn fail_reads(&self, faults: impl IntoIterator<Item = (usize, EngineError)>) {
        self.state.lock().unwrap().read_faults.extend(faults);
    }

    /// The next get_job calls fail, in this order.
    pub fn fail_get_jobs(&self, errs: impl IntoIterator<Item = EngineError>) {
        self.state.lock().unwrap().get_job_faults.extend(errs);
    }

    pub fn uploads(&self) -> Vec<Upload> {
        self.state.lock().unwrap().uploads.clone()
    }

    pub fn jobs(&self) -> Vec<Job> {
        self.state.lock().unwrap().jobs.clone()
    }

    pub fn create_calls(&self) -> Vec<(JobSpec, Instant)> {
        self.state.lock().unwrap().create_calls.clone()
    }

    pub fn get_job_calls(&self) -> Vec<(String, Instant)> {
        self.state.lock().unwrap().get_job_calls.clone()
    }

    pub fn read_calls(&self) -> Vec<(String, Instant)> {
        self.state.lock().unwrap().read_calls.clone()
    }

    pub fn stopped(&self) -> Vec<String> {
        self.state.lock().unwrap().stopped.clone()
    }

    pub fn cleanups(&self) -> Vec<(String, String, String)> {
        self.state.lock().unwrap().cleanups.clone()
    }

    /// The input files read back (to send records again).
    pub fn read_input_calls(&self) -> Vec<String> {
        self.state.lock().unwrap().read_input_calls.clone()
    }

    /// Jobs created and not yet reported terminal.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// The most jobs that were running at once.
    pub fn max_running(&self) -> usize {
        self.max_running.load(Ordering::SeqCst)
    }

    /// How many jobs carried this record id.
    pub fn times_sent(&self, record_id: &str) -> usize {
        self.state.lock().unwrap().jobs.iter().filter(|j| j.records.iter().any(|r| r.record_id == record_id)).count()
    }

    fn parse_upload(data: &[u8]) -> Vec<Record> {
        let text = std::str::from_utf8(data).expect("input JSONL is UTF-8");
        assert!(text.ends_with('\n'), "every input line ends with a newline");
        text.lines()
            .map(|line| {
                let v: Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("input line is not JSON ({e}): {line}"));
                let record_id = v["recordId"].as_str().expect("recordId is a string").to_string();
                let model_input = v["modelInput"].clone();
                assert!(model_input.is_object(), "modelInput is an object: {line}");
                let raw: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
                assert_eq!(raw.len(), 2, "an input line has recordId and modelInput only: {line}");
                Record { prompt: prompt_of(&model_input), raw_input: model_input.to_string(), record_id, model_input }
            })
            .collect()
    }
}

impl FakeBatch {
    fn create_now(&self, spec: &JobSpec) -> Result<(String, Option<CreateFault>), EngineError> {
        let mut st = self.state.lock().unwrap();
        st.create_calls.push((spec.clone(), Instant::now()));
        let fault = st.create_faults.pop_front();
        if let Some(CreateFault::Before(e)) = fault {
            return Err(e);
        }
        let arn = if let Some(&i) = st.by_token.get(&spec.client_request_token) {
            st.jobs[i].arn.clone()
        } else {
            let upload = st
                .uploads
                .iter()
                .rev()
                .find(|u| u.uri == spec.input_uri)
                .unwrap_or_else(|| panic!("create_job for an input that was never uploaded: {}", spec.input_uri))
                .clone();
            let index = st.jobs.len();
            let arn = format!("arn:aws:bedrock:us-west-2:123456789012:model-invocation-job/job{index:04}");
            st.jobs.push(Job {
                index,
                arn: arn.clone(),
                spec: spec.clone(),
                records: upload.records,
                created_at: Instant::now(),
                polls: 0,
                finished_at: None,
                final_status: None,
            });
            st.by_token.insert(spec.client_request_token.clone(), index);
            st.by_arn.insert(arn.clone(), index);
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_running.fetch_max(now, Ordering::SeqCst);
            arn
        };
        Ok((arn, fault))
    }
}

#[async_trait]
impl BatchBackend for FakeBatch {
    async fn upload(&self, folder: &str, file_name: &str, data: bytes::Bytes) -> Result<String, EngineError> {
        let mut st = self.state.lock().unwrap();
        if let Some(e) = st.upload_faults.pop_front() {
            return Err(e);
        }
        let uri = format!("s3://in-bucket/input/{folder}/");
        let records = Self::parse_upload(&data[..]);
        let ids: HashSet<&str> = records.iter().map(|r| r.record_id.as_str()).collect();
        assert_eq!(ids.len(), records.len(), "record ids are unique within an input file");
        st.uploads.push(Upload {
            folder: folder.into(),
            file_name: file_name.into(),
            uri: uri.clone(),
            bytes: data.len(),
            records,
            at: Instant::now(),
        });
        Ok(uri)
    }

    async fn create_job(&self, spec: &JobSpec) -> Result<String, EngineError> {
        let (arn, fault) = self.create_now(spec)?;
        match fault {
            Some(CreateFault::After(e)) => Err(e),
            Some(CreateFault::Hang) => {
                std::future::pending::<()>().await;
                Ok(arn)
            }
            _ => Ok(arn),
        }
    }

    async fn get_job(&self, job_arn: &str) -> Result<JobInfo, EngineError> {
        let mut st = self.state.lock().unwrap();
        st.get_job_calls.push((job_arn.to_string(), Instant::now()));
        if let Some(e) = st.get_job_faults.pop_front() {
            return Err(e);
        }
        let Some(&i) = st.by_arn.get(job_arn) else {
            return Err(
                EngineError::new(ErrorName::ResourceNotFoundException, format!("no job {job_arn}")).with_status(404)
            );
        };
        let script = (self.statuses.lock().unwrap())(i);
        assert!(!script.is_empty(), "a status script has at least one status");
        let job = &mut st.jobs[i];
        let mut info = script[job.polls.min(script.len() - 1)].clone();
        job.polls += 1;
        let n = job.records.len() as u64;
        info.total_record_count.get_or_insert(n);
        if info.is_terminal() {
            info.processed_record_count.get_or_insert(n);
            if job.final_status.is_none() {
                job.final_status = Some(info.status.to_string());
                job.finished_at = Some(Instant::now());
                self.running.fetch_sub(1, Ordering::SeqCst);
            }
        }
        Ok(info)
    }

    async fn stop_job(&self, job_arn: &str) -> Result<(), EngineError> {
        self.state.lock().unwrap().stopped.push(job_arn.to_string());
        Ok(())
    }

    async fn read_output(
        &self,
        output_uri: &str,
        job_arn: &str,
        on_line: &mut LineSink<'_>,
    ) -> Result<Option<Tokens>, EngineError> {
        let (lines, fault) = {
            let mut st = self.state.lock().unwrap();
            st.read_calls.push((job_arn.to_string(), Instant::now()));
            let fault = st.read_faults.pop_front();
            assert_eq!(output_uri, "s3://out-bucket/output/", "output is read from the configured output URI");
            let &i = st.by_arn.get(job_arn).expect("read_output of a job that exists");
            let job = &st.jobs[i];
            let status = job.final_status.clone().expect("read_output only after a terminal status");
            let script = self.outputs.lock().unwrap();
            let mut lines: Vec<String> = Vec::new();
            // Order is not guaranteed by Bedrock: write the lines in reverse.
            for r in job.records.iter().rev() {
                let attempt =
                    st.jobs[..=i].iter().filter(|j| j.records.iter().any(|x| x.record_id == r.record_id)).count();
                let ctx = Ctx {
                    job: i,
                    record_id: r.record_id.clone(),
                    prompt: r.prompt.clone(),
                    attempt,
                    status: status.clone(),
                };
                let head = format!(
                    r#"{{"recordId":{},"modelInput":{}"#,
                    serde_json::to_string(&r.record_id).unwrap(),
                    r.raw_input
                );
                match script(&ctx) {
                    Out::Ok => lines
                        .push(format!(r#"{head},"modelOutput":{}}}"#, answer_for(r.prompt.as_deref().unwrap_or("")))),
                    Out::Body(b) => lines.push(format!(r#"{head},"modelOutput":{b}}}"#)),
                    Out::Error(code, msg) => lines.push(format!(
                        r#"{head},"error":{{"errorCode":{},"errorMessage":{}}}}}"#,
                        code,
                        serde_json::to_string(&msg).unwrap()
                    )),
                    Out::Missing => {}
                    Out::Malformed => lines.push(format!(
                        r#"{{"recordId":{},"modelInput":{{"tru"#,
                        serde_json::to_string(&r.record_id).unwrap()
                    )),
                }
            }
            (lines, fault)
        };
        if let Some((n, e)) = fault {
            for l in lines.iter().take(n) {
                on_line(&bytes::Bytes::copy_from_slice(l.as_bytes()));
            }
            return Err(e);
        }
        for l in &lines {
            on_line(&bytes::Bytes::copy_from_slice(l.as_bytes()));
        }
        Ok(*self.tokens.lock().unwrap())
    }

    async fn cleanup(&self, input_uri: &str, output_uri: &str, job_arn: &str) -> Result<(), EngineError> {
        self.state.lock().unwrap().cleanups.push((input_uri.into(), output_uri.into(), job_arn.into()));
        Ok(())
    }

    fn rereads_input(&self) -> bool {
        true
    }

    async fn read_input(
        &self,
        input_uri: &str,
        file_name: &str,
        on_line: &mut LineSink<'_>,
    ) -> Result<(), EngineError> {
        let lines: Vec<String> = {
            let mut st = self.state.lock().unwrap();
            st.read_input_calls.push(input_uri.to_string());
            let upload = st.uploads.iter().rev().find(|u| u.uri == input_uri && u.file_name == file_name);
            let Some(upload) = upload else {
                return Err(EngineError::new(
                    ErrorName::ResourceNotFoundException,
                    format!("no input file {input_uri}{file_name}"),
                )
                .with_status(404));
            };
            upload
                .records
                .iter()
                .map(|r| {
                    format!(
                        r#"{{"recordId":{},"modelInput":{}}}"#,
                        serde_json::to_string(&r.record_id).unwrap(),
                        r.raw_input
                    )
                })
                .collect()
        };
        for l in &lines {
            on_line(&bytes::Bytes::copy_from_slice(l.as_bytes()));
        }
        Ok(())
    }
}

// ===== the fake on-demand back-end =====

/// Answers every InvokeModel with `{"direct": <prompt>}` and records it.
#[derive(Default)]
pub struct FakeDirect {
    calls: Mutex<Vec<Request>>,
    delay: Mutex<Option<Duration>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

impl FakeDirect {
    /// Each call takes this long (virtual time).
    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = Some(d);
    }

    /// The most calls that were running at once.
    pub fn max_running(&self) -> usize {
        self.max_running.load(Ordering::SeqCst)
    }

    pub fn calls(&self) -> Vec<Request> {
        self.calls.lock().unwrap().clone()
    }

    pub fn prompts(&self) -> Vec<String> {
        self.calls().iter().filter_map(|r| prompt_of(&serde_json::from_slice(&r.body).unwrap())).collect()
    }
}

#[async_trait]
impl DirectBackend for FakeDirect {
    async fn invoke(&self, request: &Request) -> Result<Success, EngineError> {
        self.calls.lock().unwrap().push(request.clone());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        let v: Value = serde_json::from_slice(&request.body).unwrap();
        Ok(Success {
            body: serde_json::to_vec(&json!({ "direct": prompt_of(&v) })).unwrap().into(),
            content_type: "application/json".into(),
            request_id: Some("direct-request".into()),
            ..Default::default()
        })
    }
}

// ===== the collecting sink =====

/// One settlement as the collecting sink keeps it: id, result, when.
pub type Settled = (u64, Result<Success, EngineError>, Instant);

/// Keeps every settlement and job event.
#[derive(Default)]
pub struct Collect {
    settled: Mutex<Vec<Settled>>,
    events: Mutex<Vec<JobStats>>,
    notify: Notify,
}

impl Sink for Collect {
    fn settle(&self, settlements: Vec<Settlement>) {
        let now = Instant::now();
        self.settled.lock().unwrap().extend(settlements.into_iter().map(|s| (s.id, s.result, now)));
        self.notify.notify_waiters();
    }

    fn job_event(&self, job: &JobStats) {
        self.events.lock().unwrap().push(job.clone());
    }
}

impl Collect {
    pub fn count(&self) -> usize {
        self.settled.lock().unwrap().len()
    }

    /// Every settlement so far, in order.
    pub fn all(&self) -> Vec<Settled> {
        self.settled.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<JobStats> {
        self.events.lock().unwrap().clone()
    }

    /// The one settlement of `id`; panics if it settled twice or not at all.
    pub fn get(&self, id: u64) -> Result<Success, EngineError> {
        let g = self.settled.lock().unwrap();
        let hits: Vec<_> = g.iter().filter(|(i, _, _)| *i == id).collect();
        assert_eq!(hits.len(), 1, "request {id} settled {} times", hits.len());
        hits[0].1.clone()
    }

    /// Whether `id` has settled.
    pub fn has(&self, id: u64) -> bool {
        self.settled.lock().unwrap().iter().any(|(i, _, _)| *i == id)
    }

    /// When `id` settled.
    pub fn settled_at(&self, id: u64) -> Instant {
        self.settled
            .lock()
            .unwrap()
            .iter()
            .find(|(i, _, _)| *i == id)
            .map(|s| s.2)
            .unwrap_or_else(|| panic!("request {id} has not settled"))
    }

    /// Waits (in virtual time, at most 30 virtual days) until at least `n` requests have settled.
    pub async fn wait_for(&self, n: usize) {
        let waited = tokio::time::timeout(Duration::from_secs(30 * 24 * 3600), async {
            loop {
                let notified = self.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.count() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await;
        assert!(waited.is_ok(), "waited 30 virtual days for {n} settlements, got {}", self.count());
    }

    /// Asserts that exactly these ids settled, each once.
    pub fn assert_exactly(&self, ids: &[u64]) {
        let g = self.settled.lock().unwrap();
        let mut got: Vec<u64> = g.iter().map(|s| s.0).collect();
        got.sort_unstable();
        let mut want = ids.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "settled ids (sorted) differ from the submitted ones");
    }
}

// ===== the harness =====

pub struct Harness {
    pub engine: Engine,
    pub fake: Arc<FakeBatch>,
    pub direct: Arc<FakeDirect>,
    pub sink: Arc<Collect>,
    pub t0: Instant,
}

/// The engine configuration of batch mode with these settings.
pub fn engine_config(config: BatchConfig) -> EngineConfig {
    EngineConfig { region: "us-west-2".into(), mode: Mode::Batch(Box::new(config)), ..Default::default() }
}

/// An engine on the fakes (with an on-demand back-end).
pub fn start(config: BatchConfig) -> Harness {
    start_with(engine_config(config), Arc::new(FakeBatch::default()))
}

/// An engine with this configuration on this fake (and a new on-demand fake).
pub fn start_with(config: EngineConfig, fake: Arc<FakeBatch>) -> Harness {
    let direct = Arc::new(FakeDirect::default());
    let sink = Arc::new(Collect::default());
    let backends = Backends { batch: Some(fake.clone()), direct: Some(direct.clone()), store: None };
    let engine = Engine::start(config, backends, sink.clone()).expect("valid config");
    Harness { engine, fake, direct, sink, t0: Instant::now() }
}

impl Harness {
    /// Submits one request for [`MODEL`].
    pub fn submit(&self, prompt: &str) -> u64 {
        self.engine
            .submit(MODEL, body(prompt), InvokeOptions::default())
            .unwrap_or_else(|e| panic!("submit {prompt}: {e}"))
    }

    /// Submits `n` requests `<prefix>-<i>`; returns (id, prompt) pairs.
    pub fn submit_n(&self, prefix: &str, n: usize) -> Vec<(u64, String)> {
        (0..n)
            .map(|i| {
                let p = format!("{prefix}-{i}");
                (self.submit(&p), p)
            })
            .collect()
    }

    /// Lets every ready task run until the engine is idle (advances paused time by 1 ms).
    pub async fn idle(&self) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    /// Sleeps (virtual time) until `secs` after the harness started.
    pub async fn until(&self, secs: f64) {
        tokio::time::sleep_until(self.t0 + Duration::from_secs_f64(secs)).await;
    }

    /// Seconds since the harness started.
    pub fn now(&self) -> f64 {
        secs_since(self.t0, Instant::now())
    }

    /// Record ids of the requests submitted (as the engine names them in input files).
    pub fn record_ids(&self, ids: &[u64]) -> HashSet<String> {
        ids.iter().map(|&id| bedrock_batch_core::jsonl::record_id(id)).collect()
    }

    /// Asserts each (id, prompt) resolved with the answer to its own prompt.
    pub fn assert_answered(&self, reqs: &[(u64, String)]) {
        for (id, prompt) in reqs {
            match self.sink.get(*id) {
                Ok(s) => assert_eq!(
                    String::from_utf8(s.body.to_vec()).unwrap(),
                    answer_for(prompt),
                    "request {id} got someone else's answer"
                ),
                Err(e) => panic!("request {id} ({prompt}) failed: {e}"),
            }
        }
    }
}

/// The error of a settled request; panics on success.
pub fn err_of(r: Result<Success, EngineError>) -> EngineError {
    match r {
        Ok(s) => panic!("expected an error, got success {}", String::from_utf8_lossy(&s.body)),
        Err(e) => e,
    }
}
