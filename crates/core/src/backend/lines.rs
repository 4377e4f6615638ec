//! Reading S3 objects line by line. A large object is read as several byte ranges at once (S3's
//! own advice for throughput): each range's complete lines are handed on as they arrive, in no
//! particular order, and the pieces of the lines that cross a range boundary are joined at the
//! end. Nothing holds a whole object in memory.

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::sdk_error::map_sdk_error;
use super::LineSink;
use crate::error::{EngineError, ErrorName};

/// How an object is read.
#[derive(Debug, Clone, Copy)]
pub struct RangeReads {
    /// Objects up to this size are read in one request; larger ones in ranges of at least it.
    pub range_bytes: u64,
    /// Most ranges read at once.
    pub readers: u64,
}

impl Default for RangeReads {
    fn default() -> Self {
        RangeReads { range_bytes: 8 * 1024 * 1024, readers: 4 }
    }
}

/// Line batches in flight between the range readers and the caller.
const BATCHES_IN_FLIGHT: usize = 16;
/// Lines per batch.
const BATCH_LINES: usize = 512;

fn read_error(bucket: &str, key: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::new(ErrorName::ServiceUnavailableException, format!("reading s3://{bucket}/{key}: {e}"))
        .transient(true)
}

/// What one range read: its complete lines went out; these are the pieces at its edges.
#[derive(Debug, Default)]
struct Edges {
    /// Bytes before its first newline (the whole range when it has none).
    head: BytesMut,
    /// Whether it had a newline (else `head` is all of it).
    had_newline: bool,
    /// Bytes after its last newline.
    tail: BytesMut,
}

/// Strips a trailing `\r` and skips empty lines.
fn deliver(mut line: Bytes, on_line: &mut LineSink<'_>) {
    if line.ends_with(b"\r") {
        line.truncate(line.len() - 1);
    }
    if !line.is_empty() {
        on_line(&line);
    }
}

/// Reads `[start, end]` of an object (`end` inclusive; `None`: to its end), sending complete lines
/// in batches; the first range's head is a complete line too (`first`).
async fn read_range(
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    range: Option<(u64, u64)>,
    first: bool,
    tx: mpsc::Sender<Vec<Bytes>>,
) -> Result<Edges, EngineError> {
    let mut req = s3.get_object().bucket(&bucket).key(&key);
    if let Some((a, b)) = range {
        req = req.range(format!("bytes={a}-{b}"));
    }
    let obj = req.send().await.map_err(|e| map_sdk_error(&e))?;
    let mut body = obj.body;
    let mut edges = Edges::default();
    let mut pending = BytesMut::new();
    let mut batch: Vec<Bytes> = Vec::with_capacity(BATCH_LINES);
    while let Some(chunk) = body.next().await {
        let mut rest: Bytes = chunk.map_err(|e| read_error(&bucket, &key, e))?;
        // A line within one chunk is a slice of it (no copy); only a line across chunks is joined.
        while let Some(i) = memchr::memchr(b'\n', &rest) {
            let piece = rest.split_to(i + 1);
            let line = if pending.is_empty() {
                piece.slice(..i)
            } else {
                pending.extend_from_slice(&piece[..i]);
                std::mem::take(&mut pending).freeze()
            };
            if !edges.had_newline && !first {
                edges.had_newline = true;
                edges.head = BytesMut::from(&line[..]);
                continue;
            }
            edges.had_newline = true;
            batch.push(line);
            if batch.len() == BATCH_LINES
                && tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH_LINES))).await.is_err()
            {
                return Ok(edges);
            }
        }
        pending.extend_from_slice(&rest);
    }
    if !batch.is_empty() {
        let _ = tx.send(batch).await;
    }
    if edges.had_newline || first {
        edges.tail = pending;
        edges.had_newline = edges.had_newline || first;
    } else {
        edges.head = pending;
    }
    Ok(edges)
}

/// Streams every line of an object of `size` bytes to `on_line` (ranges at once when large).
pub async fn read_lines(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    size: Option<u64>,
    how: RangeReads,
    on_line: &mut LineSink<'_>,
) -> Result<(), EngineError> {
    let ranges: Vec<Option<(u64, u64)>> = match size {
        Some(size) if size > how.range_bytes.max(1) => {
            let n = how.readers.max(1).min(size.div_ceil(how.range_bytes.max(1)));
            let step = size.div_ceil(n);
            (0..n).map(|i| (i * step, ((i + 1) * step).min(size) - 1)).filter(|(a, b)| a <= b).map(Some).collect()
        }
        _ => vec![None],
    };
    let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(BATCHES_IN_FLIGHT);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, r) in ranges.iter().enumerate() {
        let (s3, bucket, key, tx) = (s3.clone(), bucket.to_string(), key.to_string(), tx.clone());
        let r = *r;
        tasks.spawn(async move { (i, read_range(s3, bucket, key, r, i == 0, tx).await) });
    }
    drop(tx);
    while let Some(batch) = rx.recv().await {
        for line in batch {
            deliver(line, on_line);
        }
    }
    let mut edges: Vec<Option<Edges>> = (0..ranges.len()).map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (i, result) = done.map_err(|e| read_error(bucket, key, e))?;
        edges[i] = Some(result?);
    }
    // The lines that cross boundaries: the tail of one range, the heads of the next.
    let mut carry = BytesMut::new();
    for (i, e) in edges.into_iter().enumerate() {
        let e = e.ok_or_else(|| read_error(bucket, key, "a range was not read"))?;
        if i == 0 {
            carry = e.tail;
            continue;
        }
        carry.extend_from_slice(&e.head);
        if e.had_newline {
            deliver(std::mem::replace(&mut carry, e.tail).freeze(), on_line);
        }
    }
    deliver(carry.freeze(), on_line);
    Ok(())
}
