//! The worker's part in a group sharing a store ([`Role::Member`], [`Role::Leader`]): a member
//! queues the requests it would batch in the store and settles its callers from what its group
//! settled there; a leader reads the group's queue into its own queues (without the bodies),
//! settles requests in the store, looks up keys it answered when they are queued again, and
//! checks that it still holds the lead.

use super::*;

impl Worker {
    /// A member: the request goes to the group's queue in the store.
    pub(super) fn send_to_group(&mut self, id: u64, p: Pending) {
        self.counters.left_queue += 1;
        self.counters.in_flight += 1;
        let m = InFlight {
            caller: p.caller,
            record: p.record,
            key: p.key.clone(),
            tries: p.tries,
            body_len: p.body_len,
            options: None,
            operation: p.operation,
            // The leader turns a native answer into a Converse one before it stores it.
            reply: Reply::AsIs,
        };
        self.remote.insert(id, Remote { m, model: p.model.clone() });
        self.outbox.push(p);
    }

    /// A member: queues the waiting requests in the store (one transaction), unless that is
    /// being done.
    pub(super) fn start_enqueue(&mut self) {
        if !self.enqueuing.is_empty() || self.outbox.is_empty() {
            return;
        }
        let Some(store) = self.store.clone() else { return };
        let outbox = std::mem::take(&mut self.outbox);
        let mut rows = Vec::with_capacity(outbox.len());
        for p in outbox {
            let Caller::Id(caller) = p.caller else { continue };
            let (Some(key), Body::Inline(body)) = (p.key, p.body) else { continue };
            self.enqueuing.push(caller);
            rows.push(NewRequest {
                caller,
                key,
                model_id: p.model,
                record_type: p.record_type,
                operation: p.operation,
                native: match p.reply {
                    Reply::FromNative(f) => Some(f),
                    Reply::AsIs => None,
                },
                body,
            });
        }
        let handle = self.tasks.spawn(async move { Done::Enqueued(store.write_and_wait(Write::Enqueue(rows)).await) });
        self.task_of.insert(handle.id(), TaskKind::Enqueue);
    }

    pub(super) fn on_enqueued(&mut self, result: Result<(), EngineError>) {
        let callers = std::mem::take(&mut self.enqueuing);
        if let Err(e) = result {
            // The store stayed out of reach longer than store.outageTimeout.
            let outcomes: Vec<_> = callers
                .into_iter()
                .filter_map(|c| self.remote.remove(&c))
                .map(|r| (r.m, Err(e.clone()), false))
                .collect();
            self.deliver(outcomes, None, None);
        }
        self.start_enqueue();
    }

    /// A notification: a member reads its settled requests, a leader the group's queue.
    pub(super) fn on_signal(&mut self) {
        match &self.role {
            Role::Member(_) => self.start_collect(),
            Role::Leader { .. } => self.start_feed(),
            Role::Alone => {}
        }
    }

    /// The timer: a member reads its settled requests (a notification may have been lost), a
    /// leader checks its lead and reads the queue.
    pub(super) fn on_tick(&mut self) {
        match &self.role {
            Role::Member(_) if !self.remote.is_empty() => self.start_collect(),
            Role::Leader { .. } => {
                self.start_feed();
                if !self.checking {
                    if let Some(store) = self.store.clone() {
                        self.checking = true;
                        let handle =
                            self.tasks.spawn(async move { Done::Checked(store.call(|s| s.check_lead()).await) });
                        self.task_of.insert(handle.id(), TaskKind::Shared);
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn start_collect(&mut self) {
        if self.collecting {
            self.collect_again = true;
            return;
        }
        let Some(store) = self.store.clone() else { return };
        self.collecting = true;
        let handle = self.tasks.spawn(async move { Done::Collected(store.call(|s| s.take_settled()).await) });
        self.task_of.insert(handle.id(), TaskKind::Shared);
    }

    pub(super) fn on_collected(&mut self, result: Result<Vec<SettledRequest>, EngineError>) {
        self.collecting = false;
        let rows = match result {
            Ok(rows) => rows,
            Err(e) => {
                // Out of reach longer than store.outageTimeout: every caller in the group's hands fails.
                tracing::error!(error = %e, "settled requests could not be read from the store");
                if e.name == ErrorName::StoreUnavailableException {
                    let outcomes: Vec<_> = self.remote.drain().map(|(_, r)| (r.m, Err(e.clone()), false)).collect();
                    self.outbox.clear();
                    self.deliver(outcomes, None, None);
                }
                return;
            }
        };
        let full = rows.len() >= SETTLED_PAGE;
        for r in rows {
            let Some(remote) = self.remote.remove(&r.caller) else { continue };
            let result = outcome_result(r.outcome);
            self.deliver_from_store(remote.m, &remote.model, result);
        }
        if full || std::mem::take(&mut self.collect_again) {
            self.start_collect();
        }
    }

    /// A leader: reads more of the group's queue, as long as its own queues have room.
    pub(super) fn start_feed(&mut self) {
        if self.feeding {
            self.feed_again = true;
            return;
        }
        let Some(c) = &self.batch else { return };
        let cap = (c.max_batch_size * 2).max(10_000);
        let room = cap.saturating_sub(self.queued);
        if room == 0 {
            if self.flush_requested() {
                self.flush_group();
            }
            return;
        }
        let Some(store) = self.store.clone() else { return };
        self.feeding = true;
        let after = self.fed_after;
        let handle = self.tasks.spawn(async move { Done::Fed(store.call(move |s| s.feed(after, room)).await, room) });
        self.task_of.insert(handle.id(), TaskKind::Shared);
    }

    pub(super) fn on_fed(&mut self, result: Result<Vec<QueuedRequest>, EngineError>, asked: usize) {
        self.feeding = false;
        let rows = match result {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "the group's queue could not be read");
                return;
            }
        };
        let more = rows.len() >= asked;
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        for r in rows {
            self.fed_after = self.fed_after.max(r.id);
            let model = self.intern_model(&r.model_id);
            let p = Pending {
                caller: Caller::Recovered,
                operation: r.operation,
                record_type: r.record_type,
                reply: r.native.map_or(Reply::AsIs, Reply::FromNative),
                record: r.id,
                key: Some(r.key),
                model,
                body: Body::Row(r.id),
                body_len: r.body_len,
                options: None,
                direct: false,
                tries: r.tries,
                // At least 1: 0 reads as "arrived now".
                arrived_ms: u32::try_from(now_ms.saturating_sub(r.age_ms).max(1)).unwrap_or(u32::MAX),
            };
            // A key already in this leader's hands: the request waits for that answer.
            let digest = store::key_digest(p.key.as_deref().unwrap_or_default());
            if let Some(waiters) = self.live.get_mut(&digest) {
                waiters.push(r.id);
                continue;
            }
            // A key this term answered (its member looked it up just before): its answer may be
            // in the store already; look it up rather than batch it again.
            let short = store::short_digest(&digest);
            if self.known.as_ref().is_some_and(|k| k.contains(&short)) || self.known_before.contains(&short) {
                self.relooking.push(p);
                continue;
            }
            self.live.insert(digest, Vec::new());
            self.counters.in_flight += 1;
            self.route(p);
        }
        self.start_relook();
        if more || std::mem::take(&mut self.feed_again) {
            self.start_feed();
        } else if self.flush_requested() {
            self.flush_group();
        }
    }

    /// A leader: looks up the keys of requests queued after this term answered them.
    pub(super) fn start_relook(&mut self) {
        if self.relooking.is_empty() {
            return;
        }
        let Some(store) = self.store.clone() else { return };
        let batch = std::mem::take(&mut self.relooking);
        let keys: Vec<Key> = batch.iter().filter_map(|p| p.key.clone()).collect();
        self.counters.in_flight += batch.len() as u64;
        let handle = self.tasks.spawn(async move { Done::Relooked(store.call(move |s| s.lookup(&keys)).await, batch) });
        self.task_of.insert(handle.id(), TaskKind::Shared);
    }

    pub(super) fn on_relooked(&mut self, result: Result<Vec<Option<Finished>>, EngineError>, batch: Vec<Pending>) {
        let found = match result {
            Ok(f) => f,
            // Batched after all (paid twice, never lost).
            Err(_) => vec![None; batch.len()],
        };
        let mut settled = Vec::new();
        for (p, f) in batch.into_iter().zip(found) {
            match f {
                Some(f) => {
                    self.counters.in_flight = self.counters.in_flight.saturating_sub(1);
                    let record = f.record;
                    settled.push((p.record, outcome_of(&stored_result(f), record, 1)));
                }
                None => {
                    let digest = store::key_digest(p.key.as_deref().unwrap_or_default());
                    if let Some(waiters) = self.live.get_mut(&digest) {
                        self.counters.in_flight = self.counters.in_flight.saturating_sub(1);
                        waiters.push(p.record);
                        continue;
                    }
                    self.live.insert(digest, Vec::new());
                    self.route(p);
                }
            }
        }
        if let (Some(s), false) = (&self.store, settled.is_empty()) {
            s.write(Write::Settle(settled));
        }
    }

    /// A leader: whether a member asked for the group's queue to be sent now.
    fn flush_requested(&self) -> bool {
        matches!(&self.role, Role::Leader { signals, .. } if signals.flush.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// A leader: a member asked for the group's queue to be sent now (it is read up to now).
    pub(super) fn flush_group(&mut self) {
        if let Role::Leader { signals, .. } = &self.role {
            signals.flush.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        self.flush_all(Reason::Forced);
    }

    pub(super) fn on_checked(&mut self, result: Result<(), EngineError>) {
        self.checking = false;
        if let Err(e) = result {
            tracing::warn!(error = %e, "this client lost the lead of its group");
            self.stopped = true;
        }
    }

    /// The model id, shared with the requests already held.
    pub(super) fn intern_model(&mut self, id: &str) -> Arc<str> {
        if let Some(Ok(m)) = self.models.get(id) {
            return m.id.clone();
        }
        let m = ModelId { id: Arc::from(id), batchable: true };
        self.models.insert(Box::from(id), Ok(m.clone()));
        m.id
    }

    /// A leader: records the final answers and how each request ended (its own and those that
    /// wait for its key), for the members to collect.
    pub(super) fn deliver_to_group(
        &mut self,
        outcomes: Vec<(InFlight, Result<Success, EngineError>, bool)>,
        batch: Option<&Arc<str>>,
    ) {
        let mut rows = Vec::new();
        let mut settled = Vec::with_capacity(outcomes.len());
        for (m, result, keep) in outcomes {
            let result = self.final_result(&m, result);
            let outcome = outcome_of(&result, Some(m.record), m.tries + 1);
            if let Some(key) = m.key {
                for w in self.live.remove(&store::key_digest(&key)).unwrap_or_default() {
                    settled.push((w, outcome.clone()));
                }
                if keep {
                    if let Some(known) = &mut self.known {
                        known.insert(store::short_digest(&store::key_digest(&key)));
                        // Two generations: a key is remembered for at least RECENT_KEYS answers
                        // after it (the race it covers lasts a moment), in bounded memory.
                        if known.len() >= RECENT_KEYS {
                            self.known_before = std::mem::take(known);
                        }
                    }
                    let answer = match result {
                        Ok(ok) => Answer::Output(ok.body),
                        Err(e) => Answer::Error { name: e.name.as_str().to_string(), message: e.message },
                    };
                    rows.push(AnswerRow { key, answer: Some(answer), batch: batch.cloned(), record: m.record });
                }
            }
            settled.push((m.record, outcome));
        }
        if let Some(s) = &self.store {
            if !rows.is_empty() {
                s.write(Write::Answers(rows));
            }
            s.write(Write::Settle(settled));
        }
        self.publish();
    }
}

/// How a request ended, as the leader records it for its member (`record`: the record that
/// answered).
fn outcome_of(result: &Result<Success, EngineError>, record: Option<u64>, attempts: u32) -> Outcome {
    match result {
        Ok(ok) => Outcome::Output {
            body: ok.body.clone(),
            job_arn: ok.job_arn.as_deref().map(str::to_string),
            record,
            attempts,
        },
        Err(e) => Outcome::Error {
            name: e.name.as_str().to_string(),
            message: e.message.clone(),
            status: e.http_status,
            job_arn: e.job_arn().map(str::to_string),
            record_id: e.record_id().map(str::to_string),
            job_status: e.job_status().map(str::to_string),
            attempts,
        },
    }
}

/// A request's answer as its group's leader recorded it.
fn outcome_result(o: Outcome) -> Result<Success, EngineError> {
    match o {
        Outcome::Output { body, job_arn, record, attempts } => Ok(Success {
            request_id: job_arn.as_ref().zip(record).map(|(a, r)| format!("{a}#{}", crate::jsonl::record_id(r))),
            job_arn: job_arn.map(Arc::from),
            body,
            content_type: "application/json".into(),
            attempts,
            ..Default::default()
        }),
        Outcome::Error { name, message, status, job_arn, record_id, job_status, attempts } => {
            let mut e = EngineError::new(ErrorName::parse(&name).unwrap_or(ErrorName::UnknownError), message)
                .with_job(job_arn.as_deref(), record_id.as_deref());
            if let Some(st) = status {
                e = e.with_status(st);
            }
            if let Some(js) = job_status {
                e = e.with_job_status(js);
            }
            e.attempts = attempts;
            Err(e)
        }
    }
}
