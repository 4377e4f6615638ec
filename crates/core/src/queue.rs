//! Requests waiting for a batch, one queue per model, and the rule that cuts a queue into
//! batches: by records, by bytes, by time, and what to do below the minimum.

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{BatchConfig, BelowMinimum};
use crate::convert::Native;
use crate::job::Body;
use crate::request::{InvocationType, InvokeOptions, Operation, LINE_OVERHEAD};
use crate::store::Key;
use crate::tokens::TokenBounds;

/// Who waits for a request's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A caller of this process, by the id it submitted the request with.
    Id(u64),
    /// A request taken up from the store: nobody in this process has asked for it yet (a later
    /// send of its key waits for its answer).
    Recovered,
}

impl Caller {
    /// The id, for a caller of this process.
    pub fn id(self) -> Option<u64> {
        match self {
            Caller::Id(id) => Some(id),
            Caller::Recovered => None,
        }
    }
}

/// How a batch answer becomes the caller's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Reply {
    /// As it is.
    #[default]
    AsIs,
    /// Converted from the model family's native response to a Converse response (a Converse
    /// request sent as a native record).
    FromNative(Native),
}

/// A request the worker holds.
#[derive(Debug)]
pub(crate) struct Pending {
    pub caller: Caller,
    /// What it asks of the runtime.
    pub operation: Operation,
    /// The kind of batch record it goes as.
    pub record_type: InvocationType,
    /// How its record's answer becomes its answer.
    pub reply: Reply,
    /// Its number in its batch's input file (`R<record>`).
    pub record: u64,
    /// Its store key, when there is a store.
    pub key: Option<Key>,
    pub model: Arc<str>,
    pub body: Body,
    /// The body's length (also when it is stored).
    pub body_len: u32,
    pub options: Option<Box<InvokeOptions>>,
    /// Batch cannot name its model: it goes on-demand.
    pub direct: bool,
    /// Tries already made.
    pub tries: u32,
    /// When it entered its current queue, in milliseconds since the worker started.
    pub arrived_ms: u32,
    /// What it may cost in tokens (read from its body when a dry run or a cost cap needs it).
    pub bounds: Option<TokenBounds>,
    /// When its caller needs the answer by, in milliseconds since the Unix epoch.
    pub deadline: Option<NonZeroU64>,
}

/// A request that was sent (in a batch, an on-demand call, or a group's hands), without its body.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub caller: Caller,
    pub record: u64,
    pub key: Option<Key>,
    pub tries: u32,
    pub body_len: u32,
    pub options: Option<Box<InvokeOptions>>,
    pub operation: Operation,
    pub reply: Reply,
    /// What it may cost in tokens, when known.
    pub bounds: Option<TokenBounds>,
    /// When its caller needs the answer by, in milliseconds since the Unix epoch.
    pub deadline: Option<NonZeroU64>,
}

impl Reply {
    /// The model family whose native answer becomes a Converse one, if any.
    pub(crate) fn native(self) -> Option<Native> {
        match self {
            Reply::AsIs => None,
            Reply::FromNative(f) => Some(f),
        }
    }
}

impl InFlight {
    /// The request again, for another try in its model's queue: `body` is its body kept in memory,
    /// else line `record` of the input file at `input_uri` (read back when it is sent again).
    pub(crate) fn into_retry(
        self,
        model: &Arc<str>,
        body: Option<bytes::Bytes>,
        input_uri: Option<&Arc<str>>,
    ) -> Pending {
        let body = match (body, input_uri) {
            (Some(b), _) => Body::Inline(b),
            (None, Some(uri)) => Body::Stored { input_uri: uri.clone(), record: self.record },
            (None, None) => Body::Inline(bytes::Bytes::new()),
        };
        let record_type = match self.reply {
            Reply::FromNative(_) => InvocationType::InvokeModel,
            Reply::AsIs => self.operation.invocation_type(),
        };
        Pending {
            caller: self.caller,
            operation: self.operation,
            record_type,
            reply: self.reply,
            record: self.record,
            key: self.key,
            model: model.clone(),
            body,
            body_len: self.body_len,
            options: self.options,
            direct: false,
            tries: self.tries + 1,
            arrived_ms: 0,
            bounds: self.bounds,
            deadline: self.deadline,
        }
    }
}

impl InFlight {
    /// The request queued again with its body, not as another try (Flex had no room for it).
    pub(crate) fn into_pending(self, model: &Arc<str>, body: bytes::Bytes) -> Pending {
        let tries = self.tries;
        Pending { tries, ..self.into_retry(model, Some(body), None) }
    }
}

impl Pending {
    /// The request as it is sent, and its body: the one place an in-flight entry is made.
    pub(crate) fn into_flight(self) -> (InFlight, Body) {
        let m = InFlight {
            caller: self.caller,
            record: self.record,
            key: self.key,
            tries: self.tries,
            body_len: self.body_len,
            options: self.options,
            operation: self.operation,
            reply: self.reply,
            bounds: self.bounds,
            deadline: self.deadline,
        };
        (m, self.body)
    }

    /// The request as it is sent, keeping it (a member's request waits in the group's queue with
    /// its body while it is in the group's hands).
    pub(crate) fn to_flight(&self) -> InFlight {
        InFlight {
            caller: self.caller,
            record: self.record,
            key: self.key.clone(),
            tries: self.tries,
            body_len: self.body_len,
            options: self.options.clone(),
            operation: self.operation,
            reply: self.reply,
            bounds: self.bounds,
            deadline: self.deadline,
        }
    }

    /// Bytes it adds to a JSONL input file.
    pub(crate) fn line_bytes(&self) -> usize {
        self.body_len as usize + LINE_OVERHEAD
    }

    /// The inline body, if it is in memory.
    pub(crate) fn inline_body(&self) -> Option<&bytes::Bytes> {
        match &self.body {
            Body::Inline(b) => Some(b),
            Body::Stored { .. } | Body::Row(_) => None,
        }
    }
}

/// The requests of one model waiting for a batch, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    pub items: VecDeque<Pending>,
    pub bytes: usize,
}

/// Why a queue is being cut.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Reason {
    /// Full (records or bytes): cut whole batches only.
    Full,
    /// The timer of its oldest request.
    Timer,
    /// `flush()` / `close()`: everything goes, whatever the count.
    Forced,
}

/// What to do with the front of a queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Nothing now.
    Keep,
    /// A batch of the first `take` requests, padded with `fillers` filler records.
    Batch { take: usize, fillers: usize },
    /// Send the first `take` requests on-demand (below the minimum, `belowMinimum: "direct"`).
    Direct { take: usize },
}

impl Queue {
    pub(crate) fn push(&mut self, p: Pending) {
        self.bytes += p.line_bytes();
        self.items.push_back(p);
    }

    /// Takes the first `n` requests out.
    pub(crate) fn take_front(&mut self, n: usize) -> Vec<Pending> {
        let out: Vec<Pending> = self.items.drain(..n).collect();
        self.bytes -= out.iter().map(Pending::line_bytes).sum::<usize>();
        out
    }

    /// Removes the request of a caller; returns it.
    pub(crate) fn remove(&mut self, caller: Caller) -> Option<Pending> {
        let pos = self.items.iter().position(|p| p.caller == caller)?;
        let p = self.items.remove(pos)?;
        self.bytes -= p.line_bytes();
        Some(p)
    }

    /// Whether it must be cut now because it is full.
    pub(crate) fn is_full(&self, c: &BatchConfig) -> bool {
        self.items.len() >= c.max_batch_size || self.bytes >= c.max_file_bytes
    }

    /// When its oldest request arrived.
    pub(crate) fn oldest(&self, epoch: Instant) -> Option<Instant> {
        self.items.front().map(|p| epoch + Duration::from_millis(u64::from(p.arrived_ms)))
    }

    /// When it is due (its oldest request's timeout; under `wait` below the minimum, `maxWait`).
    pub(crate) fn deadline(&self, epoch: Instant, c: &BatchConfig) -> Option<Instant> {
        let oldest = self.oldest(epoch)?;
        let waiting = c.below_minimum == BelowMinimum::Wait && self.items.len() < c.min_batch_size;
        Some(oldest + if waiting { c.max_wait.max(c.batch_timeout) } else { c.batch_timeout })
    }

    /// The next cut, by the flush rules. `filler_bytes` is the size of one filler body.
    pub(crate) fn next_cut(
        &self,
        c: &BatchConfig,
        reason: Reason,
        epoch: Instant,
        now: Instant,
        filler_bytes: Option<usize>,
    ) -> Cut {
        let n = self.items.len();
        if n == 0 || (reason == Reason::Full && !self.is_full(c)) {
            return Cut::Keep;
        }
        // Take up to max_batch_size records and max_file_bytes bytes.
        let mut take = 0;
        let mut bytes = 0;
        for p in self.items.iter() {
            let b = p.line_bytes();
            if take == c.max_batch_size || (take > 0 && bytes + b > c.max_file_bytes) {
                break;
            }
            take += 1;
            bytes += b;
        }
        if take < c.min_batch_size {
            let expired = self.oldest(epoch).is_some_and(|o| o + c.max_wait <= now);
            match c.below_minimum {
                BelowMinimum::Wait if reason != Reason::Forced && !expired => return Cut::Keep,
                BelowMinimum::Direct => return Cut::Direct { take },
                _ => {}
            }
        }
        // Fillers up to the minimum, within the record cap and the file's byte cap: when they do
        // not fit beside the records, fewer records go (the rest wait for the next batch).
        let filler_bytes = filler_bytes.unwrap_or(self.items[0].body_len as usize) + LINE_OVERHEAD;
        let wanted = |take: usize| c.min_batch_size.saturating_sub(take).min(c.max_batch_size - take);
        while take > 1 && bytes + wanted(take) * filler_bytes > c.max_file_bytes {
            take -= 1;
            bytes -= self.items[take].line_bytes();
        }
        let fillers = wanted(take).min(c.max_file_bytes.saturating_sub(bytes) / filler_bytes);
        Cut::Batch { take, fillers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: u64, len: u32, arrived_ms: u32) -> Pending {
        Pending {
            caller: Caller::Id(id),
            operation: Operation::InvokeModel,
            record_type: InvocationType::InvokeModel,
            reply: Reply::AsIs,
            record: id,
            key: None,
            model: Arc::from("m"),
            body: Body::Inline(bytes::Bytes::new()),
            body_len: len,
            options: None,
            direct: false,
            tries: 0,
            arrived_ms,
            bounds: None,
            deadline: None,
        }
    }

    fn config() -> BatchConfig {
        BatchConfig { min_batch_size: 3, max_batch_size: 5, ..BatchConfig::default() }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_cuts_whole_batches_and_a_forced_cut_pads_the_rest() {
        let c = config();
        let epoch = Instant::now();
        let mut q = Queue::default();
        for i in 0..6 {
            q.push(pending(i, 10, 0));
        }
        assert_eq!(q.next_cut(&c, Reason::Full, epoch, epoch, Some(10)), Cut::Batch { take: 5, fillers: 0 });
        q.take_front(5);
        assert_eq!(q.next_cut(&c, Reason::Full, epoch, epoch, Some(10)), Cut::Keep);
        assert_eq!(q.next_cut(&c, Reason::Forced, epoch, epoch, Some(10)), Cut::Batch { take: 1, fillers: 2 });
        let direct = BatchConfig { below_minimum: BelowMinimum::Direct, ..config() };
        assert_eq!(q.next_cut(&direct, Reason::Timer, epoch, epoch, Some(10)), Cut::Direct { take: 1 });
        let wait = BatchConfig { below_minimum: BelowMinimum::Wait, ..config() };
        assert_eq!(q.next_cut(&wait, Reason::Timer, epoch, epoch, Some(10)), Cut::Keep);
        assert_eq!(q.bytes, q.items.iter().map(Pending::line_bytes).sum::<usize>());
    }
}
