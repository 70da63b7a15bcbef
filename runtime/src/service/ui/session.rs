//! The UI's sessions: an API token, given once at sign-in, is exchanged for a random session
//! id in an HttpOnly, SameSite=Strict cookie. A session keeps the token's SHA-256, never the
//! token, and resolves it against the configuration on every request, so a token that
//! expires or is removed ends its sessions too. Each session has its own CSRF token, which
//! every form carries and every POST must return.
//!
//! The store is bounded: at most [`MAX_SESSIONS`] live at once (the oldest is dropped for a
//! new one), each ends after [`IDLE`] without a request, so signing in in a loop cannot make
//! the host hold unbounded memory.

use super::super::api::{principal_of_hash, Principal};
use super::super::Service;
use axum::http::HeaderMap;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "ward_session";
/// The cookie that carries the sign-in form's CSRF token before there is a session.
pub const LOGIN_COOKIE: &str = "ward_login";
/// Sessions idle this long end.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// Sessions held at once.
pub const MAX_SESSIONS: usize = 10_000;

struct Entry {
    token_sha256: String,
    csrf: String,
    last_used: Instant,
}

/// A signed-in request's session: who, and the CSRF token its forms carry.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub principal: Principal,
    pub csrf: String,
}

#[derive(Default)]
pub struct Sessions {
    entries: Mutex<HashMap<String, Entry>>,
    /// Failed sign-ins per source address in the current minute.
    failures: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

/// Failed sign-ins one address may make in a minute before it is refused for the rest of it.
pub const MAX_FAILURES_PER_MINUTE: u32 = 10;
/// Addresses whose failures are counted at once (the oldest window is dropped for a new one).
const MAX_COUNTED: usize = 10_000;

/// 32 random bytes as hex: session ids and CSRF tokens.
pub fn random_token() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in a request's headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, scoped to `/ui`; `Secure` when the
/// service speaks HTTPS. `max_age` 0 removes the cookie.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

impl Sessions {
    /// Starts a session for the token whose hash is `token_sha256`; returns its id.
    pub fn create(&self, token_sha256: String) -> String {
        let id = random_token();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        entries.retain(|_, e| now.duration_since(e.last_used) < IDLE);
        if entries.len() >= MAX_SESSIONS {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            id.clone(),
            Entry {
                token_sha256,
                csrf: random_token(),
                last_used: now,
            },
        );
        id
    }

    /// The session a request's cookie names, if it is live and its token still valid.
    pub fn resolve(&self, service: &Service, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get_mut(id)?;
        let now = Instant::now();
        if now.duration_since(entry.last_used) >= IDLE {
            entries.remove(id);
            return None;
        }
        let Some(principal) = principal_of_hash(service, &entry.token_sha256) else {
            entries.remove(id);
            return None;
        };
        entry.last_used = now;
        Some(Session {
            id: id.to_string(),
            principal,
            csrf: entry.csrf.clone(),
        })
    }

    /// Whether `source` has used up its failed sign-ins for this minute.
    pub fn sign_in_refused(&self, source: Option<std::net::IpAddr>) -> bool {
        let Some(source) = source else {
            return false;
        };
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.get(&source).is_some_and(|(n, since)| {
            *n >= MAX_FAILURES_PER_MINUTE && since.elapsed() < Duration::from_secs(60)
        })
    }

    /// Counts a failed sign-in from `source`.
    pub fn sign_in_failed(&self, source: Option<std::net::IpAddr>) {
        let Some(source) = source else {
            return;
        };
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if failures.len() >= MAX_COUNTED && !failures.contains_key(&source) {
            failures.retain(|_, (_, since)| now.duration_since(*since) < Duration::from_secs(60));
            if failures.len() >= MAX_COUNTED {
                if let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(k, _)| *k)
                {
                    failures.remove(&oldest);
                }
            }
        }
        let entry = failures.entry(source).or_insert((0, now));
        if now.duration_since(entry.1) >= Duration::from_secs(60) {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    pub fn end(&self, id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; ward_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret("abcd", "abcd"));
        assert!(!same_secret("abcd", "abce"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn an_address_that_keeps_failing_is_refused_for_the_minute() {
        let s = Sessions::default();
        let a = Some("10.0.0.1".parse().unwrap());
        let b = Some("10.0.0.2".parse().unwrap());
        for _ in 0..MAX_FAILURES_PER_MINUTE {
            assert!(!s.sign_in_refused(a));
            s.sign_in_failed(a);
        }
        assert!(s.sign_in_refused(a));
        assert!(!s.sign_in_refused(b), "other addresses are not held back");
    }

    #[test]
    fn the_store_stays_bounded() {
        let s = Sessions::default();
        for _ in 0..MAX_SESSIONS + 5 {
            s.create("h".into());
        }
        assert_eq!(s.len(), MAX_SESSIONS);
    }
}
