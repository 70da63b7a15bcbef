//! Job ids: the UTC start time, readable and sortable, plus a random suffix.

use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// e.g. `20261125-134502-3fa9c1d2e07b`. The suffix is 48 bits: a service taking a thousand
/// jobs in one second gives two of them one id about once in 10^8 seconds (24 bits, as
/// before, did so once in a few dozen such seconds, and the second job was refused).
pub fn new_job_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let tod = secs % 86_400;
    let mut seed = Sha256::new();
    seed.update(now.as_nanos().to_le_bytes());
    seed.update(std::process::id().to_le_bytes());
    seed.update(counter().to_le_bytes());
    let suffix = hex::encode(&seed.finalize()[..6]);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{suffix}",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    )
}

/// `time` as RFC 3339 UTC, `2026-11-25T13:45:02Z` (OCI annotations and configs use it).
pub fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let tod = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    )
}

fn counter() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(20_417 * 86_400 + 3_723);
        assert_eq!(super::rfc3339_utc(t), "2025-11-25T01:02:03Z");
    }

    #[test]
    fn ids_differ() {
        assert_ne!(super::new_job_id(), super::new_job_id());
    }

    /// A burst far beyond a busy service's second gives no id twice (with the 24-bit
    /// suffix of before, 20,000 ids in a second collided with near certainty).
    #[test]
    fn a_burst_of_ids_has_no_duplicate() {
        let ids: std::collections::HashSet<String> =
            (0..20_000).map(|_| super::new_job_id()).collect();
        assert_eq!(ids.len(), 20_000);
        let id = ids.iter().next().unwrap();
        assert_eq!(id.len(), "20261125-134502-".len() + 12, "{id}");
    }
}
