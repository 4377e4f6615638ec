//! Fault storms armed while the emulator runs. `POST /_emulator/faults` arms "the next N calls
//! fail" for S3 (503 `SlowDown`) and for the control plane's CreateModelInvocationJob and
//! GetModelInvocationJob (429 `ThrottlingException`), and can change the job quota; `GET
//! /_emulator/faults` shows what is armed and how many of each fault were served since start. The
//! start options (`s3.failFirst`, `throttle.create`, `throttle.get`, `maxConcurrentJobs`) arm the
//! same counters at start, so their faults are counted too.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::options::EmulatorOptions;

/// One kind of fault: how many of the next calls fail, and how many failed so far.
#[derive(Debug, Default)]
struct Counter {
    next: AtomicU64,
    served: AtomicU64,
}

impl Counter {
    fn new(next: u64) -> Counter {
        Counter { next: AtomicU64::new(next), served: AtomicU64::new(0) }
    }

    /// Whether this call fails (and counts it when it does).
    fn take(&self) -> bool {
        let failing = self.next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if failing {
            self.served.fetch_add(1, Ordering::SeqCst);
        }
        failing
    }

    fn next(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }
}

/// The faults armed now, shared by the S3 server and the control plane.
#[derive(Debug)]
pub(crate) struct Storms {
    s3: Counter,
    create: Counter,
    get: Counter,
    max_concurrent_jobs: AtomicU64,
}

/// The body of `POST /_emulator/faults`: every field is optional; a given count replaces what is
/// armed (0 disarms), an absent one leaves it as it is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Arm {
    s3: Option<ArmS3>,
    throttle: Option<ArmThrottle>,
    max_concurrent_jobs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ArmS3 {
    fail_next: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ArmThrottle {
    create_next: Option<u64>,
    get_next: Option<u64>,
}

impl Storms {
    /// The faults the start options arm.
    pub(crate) fn new(opts: &EmulatorOptions) -> Storms {
        Storms {
            s3: Counter::new(opts.s3.fail_first),
            create: Counter::new(opts.throttle.create),
            get: Counter::new(opts.throttle.get),
            max_concurrent_jobs: AtomicU64::new(opts.max_concurrent_jobs),
        }
    }

    /// Whether this client S3 request fails with 503 SlowDown.
    pub(crate) fn s3_fails(&self) -> bool {
        self.s3.take()
    }

    /// Whether this CreateModelInvocationJob call is throttled.
    pub(crate) fn create_throttled(&self) -> bool {
        self.create.take()
    }

    /// Whether this GetModelInvocationJob call is throttled.
    pub(crate) fn get_throttled(&self) -> bool {
        self.get.take()
    }

    /// Submitted + in-progress jobs per model before ServiceQuotaExceededException, now.
    pub(crate) fn max_concurrent_jobs(&self) -> u64 {
        self.max_concurrent_jobs.load(Ordering::SeqCst)
    }

    /// Arms the faults a `POST /_emulator/faults` body gives; an error names what is wrong.
    pub(crate) fn arm(&self, body: &[u8]) -> Result<(), String> {
        let arm: Arm = serde_json::from_slice(body).map_err(|e| {
            format!(
                "Send {{ \"s3\": {{ \"failNext\": N }}, \"throttle\": {{ \"createNext\": N, \"getNext\": N }}, \"maxConcurrentJobs\": N }} (every field optional): {e}"
            )
        })?;
        if let Some(n) = arm.s3.and_then(|s| s.fail_next) {
            self.s3.next.store(n, Ordering::SeqCst);
        }
        if let Some(t) = arm.throttle {
            if let Some(n) = t.create_next {
                self.create.next.store(n, Ordering::SeqCst);
            }
            if let Some(n) = t.get_next {
                self.get.next.store(n, Ordering::SeqCst);
            }
        }
        if let Some(n) = arm.max_concurrent_jobs {
            self.max_concurrent_jobs.store(n, Ordering::SeqCst);
        }
        Ok(())
    }

    /// What is armed now and what was served since start (the answer of `GET /_emulator/faults`).
    pub(crate) fn report(&self) -> Value {
        json!({
            "s3": { "failNext": self.s3.next(), "served": self.s3.served() },
            "throttle": {
                "createNext": self.create.next(),
                "getNext": self.get.next(),
                "createServed": self.create.served(),
                "getServed": self.get.served(),
            },
            "maxConcurrentJobs": self.max_concurrent_jobs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_faults_fail_exactly_n_calls_then_none_and_are_counted() {
        let opts = EmulatorOptions { throttle: crate::options::Throttle { create: 1, get: 0 }, ..Default::default() };
        let s = Storms::new(&opts);
        assert!(s.create_throttled(), "the start option's fault");
        assert!(!s.create_throttled());
        s.arm(br#"{ "throttle": { "createNext": 2 }, "s3": { "failNext": 3 } }"#).unwrap();
        assert_eq!((0..5).filter(|_| s.create_throttled()).count(), 2);
        assert_eq!((0..5).filter(|_| s.s3_fails()).count(), 3);
        assert!(!s.get_throttled());
        let r = s.report();
        assert_eq!(r["throttle"]["createServed"], 3);
        assert_eq!(r["throttle"]["createNext"], 0);
        assert_eq!(r["s3"]["served"], 3);
        assert_eq!(r["maxConcurrentJobs"], 20);
    }

    #[test]
    fn a_given_count_replaces_the_armed_one_and_absent_ones_stay() {
        let s = Storms::new(&EmulatorOptions::default());
        s.arm(br#"{ "s3": { "failNext": 5 }, "throttle": { "getNext": 4 } }"#).unwrap();
        s.arm(br#"{ "s3": { "failNext": 0 }, "maxConcurrentJobs": 2 }"#).unwrap();
        let r = s.report();
        assert_eq!(r["s3"]["failNext"], 0, "0 disarms");
        assert_eq!(r["throttle"]["getNext"], 4, "absent: left as it was");
        assert_eq!(s.max_concurrent_jobs(), 2);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let s = Storms::new(&EmulatorOptions::default());
        assert!(s.arm(br#"{ "s3": { "failFirst": 5 } }"#).is_err(), "a start option's name is not an arming one");
        assert!(s.arm(br#"{ "throttle": { "createNext": -1 } }"#).is_err());
        assert!(s.arm(b"not json").is_err());
        assert_eq!(s.report()["s3"]["failNext"], 0);
    }
}
