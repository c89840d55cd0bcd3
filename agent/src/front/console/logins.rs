//! Who may use the console: the accounts file as last read, the sessions
//! of this run, the failed-login guard, and the slots passwords are hashed
//! in. One owner, so the rules between them (a removed user's sessions
//! end; a login is counted before its hash) live in one place.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tracing::warn;

use super::session::{Locked, LoginGuard, Session, Sessions};
use crate::unit::accounts::Accounts;

/// Logins that may wait for a hashing slot; past this a login is refused
/// at once as busy (and not counted as a failure).
pub const MAX_LOGINS_WAITING: usize = 32;

/// The accounts file as last read: its modification time and length then,
/// and what it held.
type ReadAccounts = (Option<(SystemTime, u64)>, Arc<Accounts>);

#[derive(Debug)]
pub struct Logins {
    accounts_path: PathBuf,
    accounts: Mutex<ReadAccounts>,
    sessions: Mutex<Sessions>,
    guard: Mutex<LoginGuard>,
    /// Password hashes being computed (Argon2id takes 19 MiB and tens of
    /// milliseconds each): at most one per core at once.
    hashing: Arc<tokio::sync::Semaphore>,
    /// Logins waiting for a hashing slot.
    waiting: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Logins {
    pub fn new(accounts_path: PathBuf) -> Logins {
        Logins {
            accounts_path,
            accounts: Mutex::new((None, Arc::default())),
            sessions: Mutex::default(),
            guard: Mutex::default(),
            hashing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            )),
            waiting: AtomicUsize::new(0),
        }
    }

    /// The accounts, read again when the file changed; a user removed (or
    /// re-added) since ends their sessions. A file that does not read keeps
    /// the accounts read before.
    pub fn accounts(&self) -> Arc<Accounts> {
        let stamp = std::fs::metadata(&self.accounts_path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let mut held = lock(&self.accounts);
        if held.0 != stamp || stamp.is_none() {
            match Accounts::load(&self.accounts_path) {
                Ok(a) => {
                    let mut sessions = lock(&self.sessions);
                    for old in &held.1.users {
                        let same = a.user(&old.name).is_some_and(|u| u == old);
                        if !same {
                            sessions.end_user(&old.name);
                        }
                    }
                    *held = (stamp, Arc::new(a));
                }
                Err(e) => warn!("console accounts: {e}; keeping the ones read before"),
            }
        }
        held.1.clone()
    }

    /// The live session of this cookie, if any (its idle time starts again).
    pub fn session(&self, cookie: &str) -> Option<Session> {
        lock(&self.sessions).get(cookie, Instant::now())
    }

    pub fn start_session(&self, cookie: &str, user: &str, csrf: String) {
        lock(&self.sessions).start(cookie, user, csrf, Instant::now());
    }

    pub fn end_session(&self, cookie: &str) {
        lock(&self.sessions).end(cookie);
    }

    /// A login begins: counted as a failure now, before its hash, or
    /// refused because the account or address is locked.
    pub fn begin(&self, name: &str, known: bool, addr: IpAddr) -> Result<(), Locked> {
        lock(&self.guard).begin(name, known, addr, Instant::now())
    }

    /// A begun login that was not tried after all (busy): not a failure.
    pub fn not_tried(&self, name: &str, known: bool, addr: IpAddr) {
        lock(&self.guard).not_tried(name, known, addr);
    }

    /// After a wrong password: how long the account is locked, if it is.
    pub fn locked(&self, name: &str, known: bool) -> Option<std::time::Duration> {
        lock(&self.guard).locked(name, known, Instant::now())
    }

    pub fn succeeded(&self, name: &str, addr: IpAddr) {
        lock(&self.guard).succeeded(name, addr);
    }

    /// A slot to hash one password in, waiting behind at most
    /// [`MAX_LOGINS_WAITING`] others; `None` when that many already wait.
    pub async fn hashing_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(slot) = self.hashing.clone().try_acquire_owned() {
            return Some(slot);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_LOGINS_WAITING {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let slot = self.hashing.clone().acquire_owned().await.ok();
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        slot
    }
}
