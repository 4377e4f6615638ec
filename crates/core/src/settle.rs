//! How a request ends, and where endings go: the [`Sink`] (the binding implements it with one
//! threadsafe function into JavaScript); how a result becomes an answer is in [`answer`].

pub(crate) mod answer;

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::EngineError;
use crate::stats::JobStats;

/// How a request ended.
#[derive(Debug)]
pub struct Settlement {
    /// The id the request was submitted with.
    pub id: u64,
    /// The model's answer, or why there is none.
    pub result: Result<Success, EngineError>,
}

/// A model's answer.
#[derive(Debug, Clone, Default)]
pub struct Success {
    /// The response body (for batch: the record's `modelOutput`, byte for byte).
    pub body: Bytes,
    /// Its content type.
    pub content_type: String,
    /// The request id of an on-demand call.
    pub request_id: Option<String>,
    /// The batch job that answered (its request id is `<jobArn>#<recordId>`).
    pub job_arn: Option<Arc<str>>,
    /// Echoed on-demand latency tier.
    pub performance_config_latency: Option<String>,
    /// Echoed on-demand service tier.
    pub service_tier: Option<String>,
    /// The tries this request took: batch jobs it was in, or 1 for an on-demand call (0 when
    /// not known, which reads as 1).
    pub attempts: u32,
    /// A streaming operation's answer: `body` is a JSON array of its stream events as on the wire
    /// (`{"<eventType>": payload}`, blobs in base64), and this is set when more events follow.
    pub stream: Option<EventStream>,
}

/// What a streaming call sends after it settled: JSON arrays of wire events (as
/// [`Success::stream`]), then the end: the channel closing, or an error (the stream's exception).
pub type StreamItem = Result<Bytes, EngineError>;

/// The rest of a streaming answer, read once (by whoever forwards it to the caller).
#[derive(Debug, Clone)]
pub struct EventStream(Arc<Mutex<Option<mpsc::Receiver<StreamItem>>>>);

impl EventStream {
    /// A stream and the sender that feeds it.
    pub fn channel(capacity: usize) -> (mpsc::Sender<StreamItem>, EventStream) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, EventStream(Arc::new(Mutex::new(Some(rx)))))
    }

    /// Its receiver, the first time.
    pub fn take(&self) -> Option<mpsc::Receiver<StreamItem>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// A piece of a streaming answer on its way to the caller: more events, or the end.
#[derive(Debug)]
pub struct StreamPart {
    /// The id of the request whose answer streams.
    pub id: u64,
    /// A JSON array of wire events (possibly empty).
    pub events: Bytes,
    /// `Some` when the stream ended: cleanly, or with the stream's exception.
    pub end: Option<Result<(), EngineError>>,
}

/// Where settlements and events go.
pub trait Sink: Send + Sync + 'static {
    /// Delivers finished requests, in batches.
    fn settle(&self, settlements: Vec<Settlement>);
    /// A job changed status.
    fn job_event(&self, _job: &JobStats) {}
    /// Something the application should know (never a request body or a credential).
    fn warning(&self, _message: &str) {}
    /// More of streaming answers that settled earlier (each id's parts in order, after its
    /// settlement).
    fn stream(&self, _parts: Vec<StreamPart>) {}
}

/// Forwards the rest of request `id`'s streaming answer to the sink, coalescing what is ready into
/// one call, until the stream ends.
pub(crate) async fn forward(sink: Arc<dyn Sink>, id: u64, mut rx: mpsc::Receiver<StreamItem>) {
    let mut ready = Vec::new();
    loop {
        let n = rx.recv_many(&mut ready, 64).await;
        if n == 0 {
            sink.stream(vec![StreamPart { id, events: Bytes::from_static(b"[]"), end: Some(Ok(())) }]);
            return;
        }
        let mut parts = Vec::with_capacity(ready.len());
        for item in ready.drain(..) {
            match item {
                Ok(events) => parts.push(StreamPart { id, events, end: None }),
                Err(e) => {
                    parts.push(StreamPart { id, events: Bytes::from_static(b"[]"), end: Some(Err(e)) });
                    sink.stream(parts);
                    return;
                }
            }
        }
        sink.stream(parts);
    }
}
