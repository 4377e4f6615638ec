//! The worker's lifecycle: whatever ends it, no request is left pending; and the limits it owns.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bedrock_batch_core::config::DirectConfig;
use bedrock_batch_core::{
    Backends, BatchConfig, BelowMinimum, Engine, EngineConfig, ErrorName, InvokeOptions, Settlement, Sink,
};
use common::*;

#[tokio::test(start_paused = true)]
async fn dropping_the_engine_rejects_every_request_it_still_holds_queued_or_in_a_running_job() {
    let h = start(BatchConfig {
        min_batch_size: 1,
        max_batch_size: 3,
        batch_timeout: Duration::from_secs(600),
        ..config()
    });
    h.fake.on_status(|_| vec![status("InProgress")]);
    let running = h.submit_n("running", 3);
    let queued = h.submit_n("queued", 2);
    h.until(30.0).await;
    assert_eq!(h.fake.jobs().len(), 1, "three requests are in a running job, two wait in the queue");
    assert_eq!(h.sink.count(), 0);
    let Harness { engine, sink, .. } = h;
    drop(engine);
    sink.wait_for(5).await;
    for (id, _) in running.iter().chain(&queued) {
        let e = err_of(sink.get(*id));
        assert_eq!(e.name, ErrorName::ClientClosedException, "{id}: {e}");
        assert!(e.message.contains("engine stopped"), "{}", e.message);
    }
}

/// A sink whose first delivery panics (on the worker's task); later ones are kept.
#[derive(Default)]
struct PanicsOnce {
    calls: AtomicUsize,
    settled: Mutex<Vec<Settlement>>,
}

impl Sink for PanicsOnce {
    fn settle(&self, settlements: Vec<Settlement>) {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("a bug in the worker's round");
        }
        self.settled.lock().unwrap().extend(settlements);
    }
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_panics_rejects_every_request_it_still_holds() {
    let fake = Arc::new(FakeBatch::default());
    let sink = Arc::new(PanicsOnce::default());
    let engine = Engine::start(
        engine_config(BatchConfig { batch_timeout: Duration::from_secs(600), ..config() }),
        Backends { batch: Some(fake.clone()), ..Default::default() },
        sink.clone(),
    )
    .unwrap();
    let waiting: Vec<u64> =
        (0..4).map(|i| engine.submit(MODEL, body(&format!("q-{i}")), InvokeOptions::default()).unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(1)).await;
    // Its rejection is the first delivery: the worker panics in the middle of a round.
    let bad = engine.submit(MODEL, b"not json".to_vec(), InvokeOptions::default()).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let settled = sink.settled.lock().unwrap();
    for id in &waiting {
        let s: Vec<&Settlement> = settled.iter().filter(|s| s.id == *id).collect();
        assert_eq!(s.len(), 1, "request {id} settled once");
        let e = s[0].result.as_ref().unwrap_err();
        assert_eq!(e.name, ErrorName::ClientClosedException);
    }
    assert!(settled.iter().all(|s| s.id != bad), "the request being settled when it panicked was lost with the round");
    assert!(
        engine.submit(MODEL, body("after"), InvokeOptions::default()).is_err(),
        "a stopped engine takes nothing new"
    );
}

#[tokio::test(start_paused = true)]
async fn direct_max_concurrency_bounds_the_on_demand_calls_of_batch_mode() {
    let fake = Arc::new(FakeBatch::default());
    let cfg = EngineConfig {
        direct: DirectConfig { max_concurrency: 2 },
        ..engine_config(BatchConfig { below_minimum: BelowMinimum::Direct, min_batch_size: 100, ..config() })
    };
    let h = start_with(cfg, fake);
    h.direct.set_delay(Duration::from_secs(1));
    let reqs = h.submit_n("q", 10);
    h.engine.flush();
    h.sink.wait_for(10).await;
    assert_eq!(h.direct.calls().len(), 10, "below the minimum, everything went on-demand");
    assert_eq!(h.direct.max_running(), 2, "never more than direct.maxConcurrency at once");
    assert!(h.now() >= 5.0, "ten one-second calls, two at a time, take five seconds; took {}", h.now());
    for (id, _) in &reqs {
        assert!(h.sink.get(*id).is_ok());
    }
    assert_eq!(h.engine.stats().sent_direct, 10);
}

#[tokio::test(start_paused = true)]
async fn a_model_a_batch_job_cannot_name_goes_on_demand_and_a_malformed_one_is_rejected() {
    let h = start(BatchConfig { min_batch_size: 1, ..config() });
    let prompt_arn = "arn:aws:bedrock:us-east-1:123456789012:prompt/PROMPT1234";
    let direct = h.engine.submit(prompt_arn, body("via prompt"), InvokeOptions::default()).unwrap();
    let bad = h.engine.submit("../../etc/passwd", body("x"), InvokeOptions::default()).unwrap();
    let spaces = h.engine.submit("model with spaces", body("x"), InvokeOptions::default()).unwrap();
    h.sink.wait_for(3).await;
    assert!(h.sink.get(direct).is_ok());
    assert_eq!(h.direct.calls().len(), 1);
    for id in [bad, spaces] {
        let e = err_of(h.sink.get(id));
        assert_eq!(e.name, ErrorName::ValidationException);
        assert!(e.message.contains("at 'modelId' failed to satisfy constraint"), "{}", e.message);
    }
    assert!(h.fake.uploads().is_empty(), "nothing was batched");
}
