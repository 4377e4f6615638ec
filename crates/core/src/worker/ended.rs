//! A sent request that is done, on its way to its caller or the store.

use crate::error::EngineError;
use crate::queue::InFlight;
use crate::settle::Success;

/// A sent request that is done: its answer or error, and whether that is final (kept in the store
/// for later sends of its key).
#[derive(Debug)]
pub(crate) struct Ended {
    pub m: InFlight,
    pub result: Result<Success, EngineError>,
    pub keep: bool,
}
