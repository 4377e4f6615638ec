//! What wakes the workers of a group's client.

/// What wakes the workers of a group's client (set by the store's listener).
#[derive(Debug, Default)]
pub(crate) struct GroupSignals {
    /// Requests were settled in the store (members collect theirs).
    pub settled: tokio::sync::Notify,
    /// Requests were queued (the leader reads them).
    pub queued: tokio::sync::Notify,
    /// A member asked for the group's queue to be sent now.
    pub flush: std::sync::atomic::AtomicBool,
    /// A client recorded batches for the leader to take up (adopted jobs).
    pub take_up: std::sync::atomic::AtomicBool,
    /// This client leads its group now.
    pub leading: std::sync::atomic::AtomicBool,
}
