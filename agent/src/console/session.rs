//! Logged-in sessions and the limit on failed logins, as plain values with
//! `now` passed in. Both live in the running agent's memory: a restart logs
//! everyone out and forgets failed attempts, which costs a unit nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Failed logins that lock an account.
pub const MAX_FAILURES: u32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT: Duration = Duration::from_secs(5 * 60);
/// A session unused this long ends.
pub const IDLE_LIMIT: Duration = Duration::from_secs(8 * 3600);
/// Accounts (or unknown names) whose failures are remembered at most.
const MAX_TRACKED: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// Failed logins per account name (known or not, so an unknown name looks
/// like a known one).
#[derive(Debug, Default)]
pub struct LoginGuard {
    failures: HashMap<String, Failures>,
}

impl LoginGuard {
    /// `Err(remaining)` while `name` is locked.
    pub fn check(&mut self, name: &str, now: Instant) -> Result<(), Duration> {
        match self.failures.get(name).and_then(|f| f.locked_until) {
            Some(until) if now < until => Err(until - now),
            Some(_) => {
                // The lock ran out: a fresh start.
                self.failures.remove(name);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Count a failed login; returns how long the account is locked now,
    /// if this failure locked it.
    pub fn failed(&mut self, name: &str, now: Instant) -> Option<Duration> {
        if !self.failures.contains_key(name) && self.failures.len() >= MAX_TRACKED {
            self.failures
                .retain(|_, f| f.locked_until.is_some_and(|until| now < until));
        }
        let f = self.failures.entry(name.to_owned()).or_insert(Failures {
            count: 0,
            locked_until: None,
        });
        f.count += 1;
        if f.count >= MAX_FAILURES {
            f.locked_until = Some(now + LOCKOUT);
            Some(LOCKOUT)
        } else {
            None
        }
    }

    pub fn succeeded(&mut self, name: &str) {
        self.failures.remove(name);
    }
}

/// One logged-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    /// The token every form of this session carries (field `csrf`).
    pub csrf: String,
    last_used: Instant,
}

/// Sessions by the SHA-256 of their cookie (the cookie itself is not kept).
#[derive(Debug, Default)]
pub struct Sessions {
    by_cookie: HashMap<[u8; 32], Session>,
}

impl Sessions {
    pub fn start(&mut self, cookie: &str, user: &str, csrf: String, now: Instant) {
        self.by_cookie
            .retain(|_, s| now.duration_since(s.last_used) < IDLE_LIMIT);
        self.by_cookie.insert(
            gongwen_common::signed::sha256(cookie.as_bytes()),
            Session {
                user: user.to_owned(),
                csrf,
                last_used: now,
            },
        );
    }

    /// The session of a cookie, if it is live; marks it used.
    pub fn get(&mut self, cookie: &str, now: Instant) -> Option<Session> {
        let key = gongwen_common::signed::sha256(cookie.as_bytes());
        let s = self.by_cookie.get_mut(&key)?;
        if now.duration_since(s.last_used) >= IDLE_LIMIT {
            self.by_cookie.remove(&key);
            return None;
        }
        s.last_used = now;
        Some(s.clone())
    }

    pub fn end(&mut self, cookie: &str) {
        self.by_cookie
            .remove(&gongwen_common::signed::sha256(cookie.as_bytes()));
    }

    /// End every session of a user (removed, or password changed).
    pub fn end_user(&mut self, user: &str) {
        self.by_cookie.retain(|_, s| s.user != user);
    }
}

/// Equal, taking the same time whatever the first difference (CSRF tokens).
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failed_logins_lock_the_account_for_five_minutes_and_others_are_not_touched() {
        let mut g = LoginGuard::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            assert_eq!(g.failed("li.si", t0), None);
            assert!(g.check("li.si", t0).is_ok());
        }
        assert_eq!(g.failed("li.si", t0), Some(LOCKOUT));
        assert_eq!(
            g.check("li.si", t0 + Duration::from_secs(60)),
            Err(LOCKOUT - Duration::from_secs(60))
        );
        assert!(g.check("zhang", t0).is_ok());
        assert!(g.check("li.si", t0 + LOCKOUT).is_ok());
        // A fresh count after the lock.
        assert_eq!(g.failed("li.si", t0 + LOCKOUT), None);
    }

    #[test]
    fn a_success_clears_the_count() {
        let mut g = LoginGuard::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            g.failed("li.si", t0);
        }
        g.succeeded("li.si");
        assert_eq!(g.failed("li.si", t0), None);
    }

    #[test]
    fn a_session_ends_when_idle_too_long_or_logged_out() {
        let mut s = Sessions::default();
        let t0 = Instant::now();
        s.start("cookie-1", "li.si", "csrf-1".into(), t0);
        assert_eq!(
            s.get("cookie-1", t0 + IDLE_LIMIT / 2).unwrap().user,
            "li.si"
        );
        // Used at half the limit: still live at 1.4 limits from the start.
        assert!(s.get("cookie-1", t0 + IDLE_LIMIT * 7 / 5).is_some());
        assert!(s.get("cookie-1", t0 + IDLE_LIMIT * 3).is_none());
        s.start("cookie-2", "li.si", "csrf-2".into(), t0);
        s.end("cookie-2");
        assert!(s.get("cookie-2", t0).is_none());
        assert!(s.get("no such cookie", t0).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
