//! HTTP plumbing: response builders in AWS's shapes, body reading, query strings, the accept loop.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Responses of the Bedrock-side servers.
pub(crate) type Resp = http::Response<Body>;

/// A response body: one piece of known length (sent with `content-length`), or a stream of pieces
/// (event-stream frames) sent one by one with no length announced (HTTP/1.1 chunked transfer
/// encoding, HTTP/2 DATA frames), as AWS sends its event streams.
#[derive(Debug, Default)]
pub struct Body {
    pieces: VecDeque<Bytes>,
    streamed: bool,
}

impl Body {
    /// A whole body of known length.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body { pieces: VecDeque::from([bytes.into()]), streamed: false }
    }

    /// A body sent as a stream of `pieces`, in order.
    pub fn stream(pieces: impl IntoIterator<Item = Bytes>) -> Body {
        Body { pieces: pieces.into_iter().collect(), streamed: true }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.pieces.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.streamed {
            SizeHint::default()
        } else {
            SizeHint::with_exact(self.pieces.iter().map(|b| b.len() as u64).sum())
        }
    }
}

/// A JSON response with AWS's request id header.
pub(crate) fn json(status: u16, value: &serde_json::Value) -> Resp {
    bytes_response(status, "application/json", serde_json::to_vec(value).unwrap_or_default())
}

/// A response with a body of the given type and a request id.
pub(crate) fn bytes_response(status: u16, content_type: &str, body: Vec<u8>) -> Resp {
    http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-requestid", crate::ids::request_id())
        .body(Body::full(body))
        .expect("valid response")
}

/// An AWS restJson1 error: the type in `x-amzn-errortype`, the message in the JSON body.
pub(crate) fn aws_error(status: u16, error_type: &str, message: &str) -> Resp {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-requestid", crate::ids::request_id())
        .header("x-amzn-errortype", error_type)
        .body(Body::full(serde_json::to_vec(&serde_json::json!({ "message": message })).unwrap_or_default()))
        .expect("valid response")
}

/// An AWS error answer while it travels in a `Result` (a response is large): status, error type and
/// message; `Resp::from` makes the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub error: &'static str,
    pub message: String,
}

impl Refusal {
    /// A refusal with AWS's status and error type.
    pub fn new(status: u16, error: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { status, error, message: message.into() }
    }
}

impl From<Refusal> for Resp {
    fn from(r: Refusal) -> Resp {
        aws_error(r.status, r.error, &r.message)
    }
}

/// Largest request body the emulator reads (InvokeModel allows 25,000,000 bytes).
pub(crate) const MAX_BODY: usize = 25_000_000;

/// Largest CountTokens request body: an `invokeModel.body` of [`MAX_BODY`] bytes travels as base64
/// text (4 characters for 3 bytes) inside the JSON, with room for the rest of the request. Past
/// [`MAX_BODY`] decoded bytes, the model's length check names `input.invokeModel.body`.
pub(crate) const MAX_COUNT_TOKENS_BODY: usize = MAX_BODY.div_ceil(3) * 4 + 1_000_000;

/// Reads a request body, refusing bodies over `limit` bytes.
pub(crate) async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Resp> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(aws_error(
            400,
            "ValidationException",
            &format!("1 validation error detected: Value at 'body' failed to satisfy constraint: Member must have length less than or equal to {limit}"),
        )),
        Err(_) => Err(aws_error(400, "ValidationException", "The request body could not be read.")),
    }
}

/// Decoded query parameters, in order.
pub(crate) fn query(uri: &http::Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

/// Percent-decodes one path segment.
pub(crate) fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Serves connections from `listener` with `handler` until `shutdown` turns true; open
/// connections are dropped then.
pub(crate) async fn serve<H, F, B>(listener: TcpListener, mut shutdown: watch::Receiver<bool>, handler: Arc<H>)
where
    H: Fn(http::Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<http::Response<B>, s3s::HttpError>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handler(req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                // Reap finished connections so the set does not grow.
                while conns.try_join_next().is_some() {}
            }
        }
    }
    conns.abort_all();
}

/// Wraps an infallible handler result for [`serve`].
pub(crate) fn ok(resp: Resp) -> Result<Resp, s3s::HttpError> {
    Ok::<_, Infallible>(resp).map_err(|e| match e {})
}
