//! How long to wait before trying again: the back-ends (S3 steps, job creation, an OpenAI-compatible
//! server's 429s) and the PostgreSQL store (reconnecting) share one schedule.

use std::time::Duration;

/// The wait before try `attempt + 1`: 200 ms doubling with each attempt, never more than `max`.
pub(crate) fn backoff(attempt: u32, max: Duration) -> Duration {
    let ms = 200u64.saturating_mul(1u64 << attempt.min(16));
    Duration::from_millis(ms).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_200_ms_up_to_the_cap() {
        let cap = Duration::from_secs(5);
        let waits: Vec<u64> = (0..7).map(|a| backoff(a, cap).as_millis() as u64).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff(u32::MAX, Duration::MAX), Duration::from_millis(200 << 16), "the doubling stops at 2^16");
    }
}
