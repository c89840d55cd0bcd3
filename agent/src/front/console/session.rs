//! Logged-in sessions and the limit on failed logins, as plain values with
//! `now` passed in. Both live in the running agent's memory: a restart logs
//! everyone out and forgets failed attempts, which costs a unit nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failed logins that lock an account.
pub const MAX_FAILURES: u32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT: Duration = Duration::from_secs(5 * 60);
/// Failed logins from one client address, whatever the names, that make
/// it wait: one machine trying many names (or one name from many tabs).
pub const MAX_ADDRESS_FAILURES: u32 = 20;
/// How long such an address waits.
pub const ADDRESS_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// A session unused this long ends.
pub const IDLE_LIMIT: Duration = Duration::from_secs(8 * 3600);
/// Unknown names, and client addresses, whose failures are remembered at
/// most. Known accounts are always remembered: there are only as many as
/// the administrator made, so no flood of junk names can push a real
/// account's failures out of the table.
const MAX_TRACKED: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

impl Failures {
    fn locked(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .filter(|until| now < *until)
            .map(|until| until - now)
    }
}

/// Why a login is not even tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// The account (or the name, known or not) failed too often.
    Account(Duration),
    /// This client address failed too often.
    Address(Duration),
}

/// Failed logins per account name (known or not, so an unknown name looks
/// like a known one) and per client address. Pure: `now` comes in.
///
/// A login is counted as failed when it *begins* ([`LoginGuard::begin`]),
/// before its password is hashed, and forgiven when it succeeds: so
/// attempts in flight at once can never number more than the lock allows
/// (hashing takes a while; counted after it, forty guesses sent together
/// would all be tried).
#[derive(Debug, Default)]
pub struct LoginGuard {
    accounts: HashMap<String, Failures>,
    unknown: HashMap<String, Failures>,
    addresses: HashMap<IpAddr, Failures>,
}

/// Count one failure in `table` under `key` (made room for, if the table
/// is bounded and full); returns whether that locked it.
fn count<K: std::hash::Hash + Eq + Clone>(
    table: &mut HashMap<K, Failures>,
    key: &K,
    bounded: bool,
    max: u32,
    lockout: Duration,
    now: Instant,
) {
    if bounded && !table.contains_key(key) && table.len() >= MAX_TRACKED {
        // Forget the entry least recently failed among those not locked;
        // if every one is locked, this one goes untracked (a known
        // account is never in a bounded table).
        let oldest = table
            .iter()
            .filter(|(_, f)| f.locked(now).is_none())
            .min_by_key(|(_, f)| f.last)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => {
                table.remove(&k);
            }
            None => return,
        }
    }
    let f = table.entry(key.clone()).or_insert(Failures {
        count: 0,
        locked_until: None,
        last: now,
    });
    if f.locked_until.is_some_and(|until| now >= until) {
        // The lock ran out: a fresh start.
        *f = Failures {
            count: 0,
            locked_until: None,
            last: now,
        };
    }
    f.count += 1;
    f.last = now;
    if f.count >= max && f.locked_until.is_none() {
        f.locked_until = Some(now + lockout);
    }
}

impl LoginGuard {
    /// The table of `name`'s failures: known accounts apart from the rest.
    fn names(&mut self, known: bool) -> &mut HashMap<String, Failures> {
        if known {
            &mut self.accounts
        } else {
            &mut self.unknown
        }
    }

    /// Begin a login for `name` (`known`: an account of that name exists)
    /// from `addr`: refused while either is locked, otherwise counted as a
    /// failure now (see [`LoginGuard::succeeded`]).
    pub fn begin(
        &mut self,
        name: &str,
        known: bool,
        addr: IpAddr,
        now: Instant,
    ) -> Result<(), Locked> {
        if let Some(left) = self.addresses.get(&addr).and_then(|f| f.locked(now)) {
            return Err(Locked::Address(left));
        }
        let names = self.names(known);
        if let Some(left) = names.get(name).and_then(|f| f.locked(now)) {
            return Err(Locked::Account(left));
        }
        let name = name.to_owned();
        count(names, &name, !known, MAX_FAILURES, LOCKOUT, now);
        count(
            &mut self.addresses,
            &addr,
            true,
            MAX_ADDRESS_FAILURES,
            ADDRESS_LOCKOUT,
            now,
        );
        Ok(())
    }

    /// How long `name` is locked now, if it is (after a failure, to say so).
    pub fn locked(&self, name: &str, known: bool, now: Instant) -> Option<Duration> {
        let names = if known { &self.accounts } else { &self.unknown };
        names.get(name).and_then(|f| f.locked(now))
    }

    /// The login begun for `name` from `addr` succeeded: the account starts
    /// afresh, and the address is forgiven that one attempt (only that: one
    /// good password must not wipe out a machine's guesses at others).
    pub fn succeeded(&mut self, name: &str, addr: IpAddr) {
        self.accounts.remove(name);
        if let Some(f) = self.addresses.get_mut(&addr) {
            f.count = f.count.saturating_sub(1);
        }
    }

    /// A login begun for `name` from `addr` was never tried (the console
    /// was too busy to hash it): not a failure after all.
    pub fn not_tried(&mut self, name: &str, known: bool, addr: IpAddr) {
        let names = if known {
            &mut self.accounts
        } else {
            &mut self.unknown
        };
        // (Both tables at once: `names()` would borrow all of self.)
        for f in [names.get_mut(name), self.addresses.get_mut(&addr)]
            .into_iter()
            .flatten()
        {
            f.count = f.count.saturating_sub(1);
        }
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
    use crate::unit::accounts::same_bytes;
    same_bytes(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 20));
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 21));

    #[test]
    fn five_failed_logins_lock_the_account_for_five_minutes_and_others_are_not_touched() {
        let mut g = LoginGuard::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(g.begin("li.si", true, HERE, t0), Ok(()));
        }
        assert_eq!(g.locked("li.si", true, t0), Some(LOCKOUT));
        assert_eq!(
            g.begin("li.si", true, THERE, t0 + Duration::from_secs(60)),
            Err(Locked::Account(LOCKOUT - Duration::from_secs(60))),
            "the lock holds from any address"
        );
        assert_eq!(g.begin("zhang", true, HERE, t0), Ok(()));
        assert_eq!(g.begin("li.si", true, HERE, t0 + LOCKOUT), Ok(()));
        // A fresh count after the lock.
        assert_eq!(g.locked("li.si", true, t0 + LOCKOUT), None);
    }

    #[test]
    fn attempts_in_flight_count_before_they_are_hashed() {
        // Forty guesses sent together: only the first five are tried,
        // even though none has finished (and so failed) yet.
        let mut g = LoginGuard::default();
        let t0 = Instant::now();
        let begun = (0..40)
            .filter(|_| g.begin("li.si", true, HERE, t0).is_ok())
            .count();
        assert_eq!(begun, MAX_FAILURES as usize);
    }

    #[test]
    fn a_success_clears_the_count_but_only_its_own_attempt_at_the_address() {
        let mut g = LoginGuard::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            g.begin("li.si", true, HERE, t0).unwrap();
        }
        g.begin("li.si", true, HERE, t0).unwrap();
        g.succeeded("li.si", HERE);
        for _ in 0..MAX_FAILURES - 1 {
            g.begin("li.si", true, HERE, t0).unwrap();
        }
        assert_eq!(g.locked("li.si", true, t0), None);
        assert_eq!(g.addresses[&HERE].count, 2 * (MAX_FAILURES - 1));
    }

    #[test]
    fn junk_names_cannot_flush_a_real_accounts_failures() {
        let mut g = LoginGuard::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            g.begin("li.si", true, HERE, t0).unwrap();
        }
        // Ten thousand junk names from ten thousand addresses.
        for i in 0..10_000u32 {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = g.begin(&format!("junk-{i}"), false, addr, t0);
        }
        assert!(g.unknown.len() <= MAX_TRACKED && g.addresses.len() <= MAX_TRACKED);
        g.begin("li.si", true, THERE, t0).unwrap();
        assert_eq!(
            g.locked("li.si", true, t0),
            Some(LOCKOUT),
            "the fifth failure still locks"
        );
    }

    #[test]
    fn one_address_trying_many_names_is_made_to_wait() {
        let mut g = LoginGuard::default();
        let t0 = Instant::now();
        for i in 0..MAX_ADDRESS_FAILURES {
            assert_eq!(g.begin(&format!("name-{i}"), false, HERE, t0), Ok(()));
        }
        assert_eq!(
            g.begin("li.si", true, HERE, t0),
            Err(Locked::Address(ADDRESS_LOCKOUT))
        );
        assert_eq!(
            g.begin("li.si", true, THERE, t0),
            Ok(()),
            "others may go on"
        );
    }

    #[test]
    fn an_unknown_name_locks_like_a_known_one() {
        let mut g = LoginGuard::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            g.begin("nobody", false, HERE, t0).unwrap();
        }
        assert_eq!(
            g.begin("nobody", false, THERE, t0),
            Err(Locked::Account(LOCKOUT))
        );
    }

    #[test]
    fn a_login_never_tried_is_not_counted() {
        let mut g = LoginGuard::default();
        let t0 = Instant::now();
        for _ in 0..3 * MAX_FAILURES {
            g.begin("li.si", true, HERE, t0).ok();
            g.not_tried("li.si", true, HERE);
        }
        assert_eq!(g.locked("li.si", true, t0), None);
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
