//! The task that walks each batch job through its statuses: it reads the input from S3, answers
//! every record and writes the output files and the manifest.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::faults::Markers;
use crate::ids::hash64;
use crate::state::Ctx;
use crate::store::{Job, Status};

/// Largest input file Bedrock accepts (1 GB).
pub(crate) const MAX_FILE_BYTES: i64 = 1_000_000_000;
/// Largest job (sum of input files, 5 GB).
pub(crate) const MAX_JOB_BYTES: i64 = 5_000_000_000;
/// Most records per file and per job.
pub(crate) const MAX_RECORDS: u64 = 50_000;

/// One input record.
struct Record {
    file: Arc<str>,
    record_id: String,
    /// `modelInput` exactly as it stands in the input line.
    raw_input: Box<serde_json::value::RawValue>,
    model_input: Value,
    markers: Markers,
    /// Why the record is refused when its job is validated (a Converse-type record that breaks the
    /// Converse model, or asks for tools): its output line is this 400 error.
    refusal: Option<String>,
}

/// The parts of an input line the emulator reads.
#[derive(serde::Deserialize)]
struct InputLine<'a> {
    #[serde(rename = "recordId")]
    record_id: Option<Value>,
    #[serde(rename = "modelInput", borrow)]
    model_input: Option<&'a serde_json::value::RawValue>,
}

/// One output line, or none, for a record.
enum Outcome {
    Line { bytes: Vec<u8>, ok: bool, input_tokens: u64, output_tokens: u64 },
    Missing,
}

/// Why a job ended early.
enum Halt {
    Stopped,
    Failed(String),
}

/// Walks a job through its statuses until it ends.
pub(crate) async fn run(ctx: Arc<Ctx>, id: String, stop: Arc<Notify>) {
    let halt = drive(&ctx, &id, &stop).await;
    if let Err(h) = halt {
        let now = OffsetDateTime::now_utc();
        ctx.store.update(&id, |j| {
            match h {
                Halt::Stopped => j.status = Status::Stopped,
                Halt::Failed(msg) => {
                    j.status = Status::Failed;
                    j.message = Some(msg);
                }
            }
            j.end_time = Some(now);
        });
    }
}

fn set(ctx: &Ctx, id: &str, status: Status) -> Result<(), Halt> {
    let mut stopping = false;
    ctx.store.update(id, |j| {
        if j.status == Status::Stopping {
            stopping = true;
        } else {
            j.status = status;
        }
    });
    if stopping {
        Err(Halt::Stopped)
    } else {
        Ok(())
    }
}

async fn wait(ctx: &Ctx, id: &str, stop: &Notify, d: Duration) -> Result<(), Halt> {
    if ctx.store.status(id) == Some(Status::Stopping) {
        return Err(Halt::Stopped);
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = stop.notified() => Err(Halt::Stopped),
    }
}

async fn drive(ctx: &Arc<Ctx>, id: &str, stop: &Notify) -> Result<(), Halt> {
    let job = ctx.store.get(id).ok_or(Halt::Failed("job vanished".into()))?;
    let salt = hash64(&[id.as_bytes()]);
    wait(ctx, id, stop, ctx.opts.stage_duration(salt)).await?;
    set(ctx, id, Status::Validating)?;
    let records = read_input(ctx, &job).await.map_err(Halt::Failed)?;
    wait(ctx, id, stop, ctx.opts.stage_duration(salt >> 11)).await?;
    let n = records.len() as u64;
    let min = ctx.opts.min_records.for_model(&job.model_id);
    if n < min {
        return Err(Halt::Failed(format!(
            "The input contains {n} records, fewer than the minimum of {min} records per batch inference job for model {}.",
            job.model_id
        )));
    }
    if n > MAX_RECORDS {
        return Err(Halt::Failed(format!(
            "The input contains {n} records, more than the maximum of {MAX_RECORDS} records per batch inference job."
        )));
    }
    ctx.store.update(id, |j| {
        j.total = Some(n);
        j.processed = Some(0);
        j.success = Some(0);
        j.errors = Some(0);
    });
    set(ctx, id, Status::Scheduled)?;
    wait(ctx, id, stop, ctx.opts.stage_duration(salt >> 22)).await?;
    if records.iter().any(|r| r.markers.job_expired) {
        ctx.store.update(id, |j| {
            j.status = Status::Expired;
            j.message = Some("The job was scheduled but could not start before its timeout expired.".into());
            j.end_time = Some(OffsetDateTime::now_utc());
        });
        return Ok(());
    }
    set(ctx, id, Status::InProgress)?;
    if records.iter().any(|r| r.markers.job_failed) {
        wait(ctx, id, stop, ctx.opts.stage_duration(salt >> 33)).await?;
        return Err(Halt::Failed("Batch inference job failed: an internal error occurred while processing the records (emulated by [[job:failed]]).".into()));
    }
    let slow = records.iter().any(|r| r.markers.job_slow);
    let (outcomes, stopped) = process(ctx, id, stop, &job, &records, slow).await;
    write_output(ctx, &job, &records, &outcomes).await.map_err(Halt::Failed)?;
    let missing = outcomes.iter().any(|o| matches!(o, Outcome::Missing)) || outcomes.len() < records.len();
    let now = OffsetDateTime::now_utc();
    ctx.store.update(id, |j| {
        j.status = if stopped {
            Status::Stopped
        } else if missing {
            Status::PartiallyCompleted
        } else {
            Status::Completed
        };
        j.end_time = Some(now);
    });
    Ok(())
}

/// Answers records in order, updating counts; stops early when asked. Returns one outcome per
/// answered record (a prefix of `records` when stopped) and whether it was stopped.
async fn process(
    ctx: &Ctx,
    id: &str,
    stop: &Notify,
    job: &Job,
    records: &[Record],
    slow: bool,
) -> (Vec<Outcome>, bool) {
    let per = ctx.opts.per_record();
    let n = records.len();
    let chunk = if per.is_zero() { n.max(1) } else { (n / 20).max(1) };
    // A slow job answers half of its records, then waits to be stopped.
    let limit = if slow { n / 2 } else { n };
    let mut out = Vec::with_capacity(n);
    let (mut ok, mut err) = (0u64, 0u64);
    for (i, r) in records.iter().enumerate() {
        if i == limit {
            ctx.store.update(id, |j| {
                j.processed = Some(out.len() as u64);
                j.success = Some(ok);
                j.errors = Some(err);
            });
            let generous = Duration::from_secs(ctx.opts.slow_job_seconds);
            if wait(ctx, id, stop, generous).await.is_err() {
                return (out, true);
            }
        }
        let o = answer(job, r);
        match &o {
            Outcome::Line { ok: true, .. } => ok += 1,
            Outcome::Line { ok: false, .. } => err += 1,
            Outcome::Missing => {}
        }
        out.push(o);
        if (i + 1) % chunk == 0 || i + 1 == n {
            ctx.store.update(id, |j| {
                j.processed = Some(ok + err);
                j.success = Some(ok);
                j.errors = Some(err);
            });
            if !per.is_zero() && wait(ctx, id, stop, per * chunk as u32).await.is_err() {
                return (out, true);
            }
        }
    }
    (out, false)
}

fn answer(job: &Job, r: &Record) -> Outcome {
    if r.markers.missing {
        return Outcome::Missing;
    }
    if r.markers.malformed {
        let line = format!("{{\"recordId\":\"{}\",\"modelInput\":{{\"truncated\":", r.record_id);
        return Outcome::Line { bytes: line.into_bytes(), ok: true, input_tokens: 0, output_tokens: 0 };
    }
    let converse = job.invocation_type == "Converse";
    let operation = crate::model::BEDROCK_RUNTIME.operation(if converse { "Converse" } else { "InvokeModel" });
    let result = match (&r.refusal, r.markers.error) {
        (Some(refusal), _) => Err((400, refusal.clone())),
        (None, Some(code)) => {
            let (_, status, message) = crate::faults::modelled_error(operation, code);
            Err((status, message.to_string()))
        }
        (None, None) => {
            let answered = if converse {
                crate::responders::converse(&job.model_id, r.raw_input.get().as_bytes(), &r.model_input)
            } else {
                crate::responders::invoke(&job.model_id, r.raw_input.get().as_bytes(), &r.model_input)
            };
            answered.map_err(|rej| (operation.error_for_status(rej.status).1, rej.message))
        }
    };
    // {"recordId":...,"modelInput":<echoed as given>,"modelOutput":... | "error":...}
    let mut bytes = Vec::with_capacity(r.raw_input.get().len() * 2 + 64);
    bytes.extend_from_slice(b"{\"recordId\":");
    serde_json::to_writer(&mut bytes, &r.record_id).unwrap_or_default();
    bytes.extend_from_slice(b",\"modelInput\":");
    bytes.extend_from_slice(r.raw_input.get().as_bytes());
    let (ok, input_tokens, output_tokens) = match result {
        Ok(a) => {
            bytes.extend_from_slice(b",\"modelOutput\":");
            serde_json::to_writer(&mut bytes, &a.body).unwrap_or_default();
            (true, a.input_tokens, a.output_tokens)
        }
        Err((code, msg)) => {
            bytes.extend_from_slice(b",\"error\":");
            serde_json::to_writer(&mut bytes, &json!({ "errorCode": code, "errorMessage": msg })).unwrap_or_default();
            (false, 0, 0)
        }
    };
    bytes.push(b'}');
    Outcome::Line { bytes, ok, input_tokens, output_tokens }
}

/// Reads and checks every `.jsonl` file under the job's input URI.
async fn read_input(ctx: &Ctx, job: &Job) -> Result<Vec<Record>, String> {
    let uri = job.input_uri();
    let (bucket, key) = crate::s3::split_uri(&uri).ok_or_else(|| format!("The input S3 URI {uri} is not valid."))?;
    let objects: Vec<(String, i64)> = if key.ends_with(".jsonl") {
        crate::s3::list_all(&ctx.s3, &bucket, &key)
            .await
            .map_err(|e| access_message(&uri, &e))?
            .into_iter()
            .filter(|(k, _)| *k == key)
            .collect()
    } else {
        let prefix = if key.is_empty() || key.ends_with('/') { key.clone() } else { format!("{key}/") };
        crate::s3::list_all(&ctx.s3, &bucket, &prefix)
            .await
            .map_err(|e| access_message(&uri, &e))?
            .into_iter()
            .filter(|(k, _)| k.ends_with(".jsonl"))
            .collect()
    };
    if objects.is_empty() {
        return Err(format!("No .jsonl input files were found at {uri}."));
    }
    let total_bytes: i64 = objects.iter().map(|(_, s)| s).sum();
    if total_bytes > MAX_JOB_BYTES {
        return Err(format!(
            "The input files total {total_bytes} bytes, more than the 5 GB batch inference job size limit."
        ));
    }
    let base = if key.ends_with(".jsonl") {
        key.rsplit_once('/').map(|(p, _)| format!("{p}/")).unwrap_or_default()
    } else {
        key.clone()
    };
    let mut records = Vec::new();
    for (k, size) in &objects {
        if *size > MAX_FILE_BYTES {
            return Err(format!(
                "The input file s3://{bucket}/{k} is {size} bytes, more than the 1 GB input file size limit."
            ));
        }
        let data = crate::s3::get_bytes(&ctx.s3, &bucket, k).await.map_err(|e| access_message(&uri, &e))?;
        let file: Arc<str> = Arc::from(k.strip_prefix(base.trim_end_matches('/')).unwrap_or(k).trim_start_matches('/'));
        let mut count = 0u64;
        for (lineno, line) in data.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            count += 1;
            if count > MAX_RECORDS {
                return Err(format!(
                    "The input file s3://{bucket}/{k} has more than the maximum of {MAX_RECORDS} records per file."
                ));
            }
            let not_json = || format!("Line {} of the input file s3://{bucket}/{k} is not valid JSON.", lineno + 1);
            if !line.trim_ascii_start().starts_with(b"{") {
                return Err(if serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok() {
                    format!("Line {} of the input file s3://{bucket}/{k} is not a JSON object.", lineno + 1)
                } else {
                    not_json()
                });
            }
            let parsed: InputLine = serde_json::from_slice(line).map_err(|_| not_json())?;
            let Some(raw) = parsed.model_input else {
                return Err(format!("Line {} of the input file s3://{bucket}/{k} has no modelInput.", lineno + 1));
            };
            let record_id = match parsed.record_id {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => format!("{:011}", records.len() + 1),
            };
            let model_input: Value = serde_json::from_str(raw.get()).map_err(|_| not_json())?;
            let refusal = if job.invocation_type == "Converse" { converse_refusal(&model_input) } else { None };
            records.push(Record {
                file: file.clone(),
                record_id,
                markers: Markers::scan(line),
                model_input,
                raw_input: raw.to_owned(),
                refusal,
            });
        }
    }
    Ok(records)
}

/// Why a Converse-type record cannot be answered: it breaks a constraint of the Converse request
/// (checked as the runtime checks a Converse body), or it asks for tools, which batch inference
/// does not support for the Converse type (AWS's user guide: such records fail with a 400 error).
fn converse_refusal(model_input: &Value) -> Option<String> {
    if let Err(message) = crate::request::body(&crate::model::BEDROCK_RUNTIME, "Converse", model_input) {
        return Some(message);
    }
    model_input
        .get("toolConfig")
        .filter(|v| !v.is_null())
        .map(|_| "Batch inference does not support tool use for jobs of the Converse invocation type: remove toolConfig, or use an InvokeModel-type job with the model's own request format.".to_string())
}

fn access_message(uri: &str, e: &str) -> String {
    format!("Bedrock could not read the input at {uri}: {e}. Check that the bucket exists and that the service role can read it.")
}

/// The output lines of one input file, each with the hash that orders it.
type FileLines<'a> = (Arc<str>, Vec<(u64, &'a [u8])>);

/// Writes `<output>/<jobId>/<file>.out` per input file (lines shuffled) and `manifest.json.out`.
async fn write_output(ctx: &Ctx, job: &Job, records: &[Record], outcomes: &[Outcome]) -> Result<(), String> {
    let uri = job.output_uri();
    let (bucket, key) = crate::s3::split_uri(&uri).ok_or_else(|| format!("The output S3 URI {uri} is not valid."))?;
    let prefix = if key.is_empty() { job.id.clone() } else { format!("{}/{}", key.trim_end_matches('/'), job.id) };
    let mut files: Vec<FileLines<'_>> = Vec::new();
    let (mut total_in, mut total_out, mut ok, mut err) = (0u64, 0u64, 0u64, 0u64);
    for (r, o) in records.iter().zip(outcomes) {
        let idx = match files.iter().position(|(f, _)| *f == r.file) {
            Some(i) => i,
            None => {
                files.push((r.file.clone(), Vec::new()));
                files.len() - 1
            }
        };
        if let Outcome::Line { bytes, ok: success, input_tokens, output_tokens } = o {
            files[idx].1.push((hash64(&[r.record_id.as_bytes()]), bytes));
            if *success {
                ok += 1;
            } else {
                err += 1;
            }
            total_in += input_tokens;
            total_out += output_tokens;
        }
    }
    for (file, mut lines) in files {
        // Output order is not the input order.
        lines.sort_by_key(|(h, _)| *h);
        let mut body = Vec::with_capacity(lines.iter().map(|(_, l)| l.len() + 1).sum());
        for (_, l) in lines {
            body.extend_from_slice(l);
            body.push(b'\n');
        }
        crate::s3::put_bytes(&ctx.s3, &bucket, &format!("{prefix}/{file}.out"), body)
            .await
            .map_err(|e| format!("Bedrock could not write the output to {uri}: {e}"))?;
    }
    let manifest = json!({
        "totalRecordCount": records.len(),
        "processedRecordCount": ok + err,
        "successRecordCount": ok,
        "errorRecordCount": err,
        "inputTokenCount": total_in,
        "outputTokenCount": total_out,
    });
    crate::s3::put_bytes(
        &ctx.s3,
        &bucket,
        &format!("{prefix}/manifest.json.out"),
        serde_json::to_vec(&manifest).unwrap_or_default(),
    )
    .await
    .map_err(|e| format!("Bedrock could not write the output to {uri}: {e}"))?;
    ctx.store.update(&job.id, |j| {
        j.processed = Some(ok + err);
        j.success = Some(ok);
        j.errors = Some(err);
    });
    Ok(())
}
