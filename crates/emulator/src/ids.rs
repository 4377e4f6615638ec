//! Identifiers, hashes and timestamps.

use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Hex SHA-256 of some bytes.
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// A stable 64-bit number from some bytes.
pub fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0u8]);
    }
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A random string of `n` lowercase letters and digits (job ids).
pub fn random_lower_alnum(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n).map(|_| LOWER_ALNUM[rng.gen_range(0..LOWER_ALNUM.len())] as char).collect()
}

/// A request id in the shape AWS uses (a UUID).
pub fn request_id() -> String {
    use rand::Rng;
    let b: [u8; 16] = rand::thread_rng().gen();
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// ISO-8601 in UTC with exactly three fractional digits, as AWS prints it
/// (`2026-04-01T18:11:13.120Z`; never `13.12Z` or `13Z`).
pub fn iso8601(t: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(UtcOffset::UTC).format(&format).unwrap_or_default()
}

/// Parses an ISO-8601 timestamp (as SDKs send in query strings).
pub fn parse_iso8601(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_always_have_three_fractional_digits_in_utc() {
        let whole = OffsetDateTime::from_unix_timestamp(1_775_067_073).unwrap();
        assert_eq!(iso8601(whole), "2026-04-01T18:11:13.000Z");
        let tenths = whole + time::Duration::milliseconds(120) + time::Duration::nanoseconds(999_999);
        assert_eq!(iso8601(tenths), "2026-04-01T18:11:13.120Z");
        let elsewhere = whole.to_offset(UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(iso8601(elsewhere), "2026-04-01T18:11:13.000Z");
        assert_eq!(parse_iso8601("2026-04-01T18:11:13.120Z").map(iso8601).as_deref(), Some("2026-04-01T18:11:13.120Z"));
    }
}
