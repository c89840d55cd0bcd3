//! Who gets in: the decisions, as plain functions over values, and the
//! counters they are made from. The accept loop ([`crate::server`]) applies
//! them to sockets.
//!
//! A connection meets three gates, in order:
//!
//! ```text
//! Initial packet ──▶ [gate]  accept │ Retry (prove your address) │ refuse
//!                      │  refuses at once while every place for an admitted
//!                      │  connection is taken (no handshake: stateless);
//!                      │  counts unfinished handshakes, in total and per address
//! handshake done ──▶ [judge] the certificate, now, by the hub's clock:
//!                      │  chain, validity, revocation, CRL freshness
//!                      │  (resumed or not: TLS's own check may not have run)
//! before welcome ──▶ [hello] at most a few connections per unit wait for
//!                         their hello, each with a small hello and window
//! ```
//!
//! Unfinished handshakes cost the hub state and CPU before anyone is
//! authenticated, so they have their own bound, well below the bound on
//! admitted connections, and a short time limit. When they pile up, new
//! clients must first echo a QUIC Retry token: a flood of Initials from
//! addresses that do not answer (spoofed, or a tool that never reads)
//! then costs the hub one stateless packet each, while a real agent —
//! quinn answers Retry by itself — pays one round trip.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gongwen_common::NodeId;
use gongwen_common::pki::{CertChecker, CertIdentity, CertProblem, PkiError, Role};
use gongwen_common::wire::RefuseCode;
use time::OffsetDateTime;

/// The bounds admission works within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Unfinished handshakes above which a client must prove its address
    /// (QUIC Retry) before the hub keeps any state for it.
    pub retry_above: usize,
    /// Most unfinished handshakes at once, in all.
    pub max_handshakes: usize,
    /// Most unfinished handshakes at once from one address.
    pub max_handshakes_per_addr: usize,
    /// How long a handshake may take.
    pub handshake_timeout: Duration,
    /// Most connections of one unit waiting for their hello at once (a unit
    /// has one connection; a second replaces the first once welcomed).
    pub max_hellos_per_unit: usize,
    /// How long a connection may take to send its hello.
    pub hello_timeout: Duration,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        retry_above: 32,
        max_handshakes: 512,
        max_handshakes_per_addr: 64,
        // A handshake is two round trips; four seconds allow for several
        // lost packets on a provincial network, and let a flooding
        // client's slots go four times sooner than the old 10 s.
        handshake_timeout: Duration::from_secs(4),
        max_hellos_per_unit: 4,
        hello_timeout: Duration::from_secs(4),
    };

    /// The defaults with hub.toml's `[limits] handshakes_per_address`, if
    /// set (many units behind one NAT reconnect together).
    pub fn with_per_address(per_address: Option<usize>) -> Limits {
        let mut l = Limits::DEFAULT;
        if let Some(n) = per_address {
            l.max_handshakes_per_addr = n.max(1);
        }
        l
    }
}

/// The fewest places for admitted connections a hub has by default.
pub const MIN_CONNECTIONS: usize = 1024;

/// The most admitted connections: hub.toml's `[limits] max_connections`,
/// or else room for every enrolled unit and a quarter more (a unit's new
/// connection overlaps its old one for a moment after a network change,
/// and units certified by hand are not in the directory), and never fewer
/// than [`MIN_CONNECTIONS`]. QUIC connections share the hub's one UDP
/// socket, so they cost memory (about 50 KiB each), not descriptors.
pub fn max_connections(configured: Option<usize>, enrolled: usize) -> usize {
    configured.unwrap_or_else(|| (enrolled + enrolled / 4 + 64).max(MIN_CONNECTIONS))
}

/// Whether a new connection must be refused before its handshake because
/// every place is taken: it could not be admitted at its end, and a
/// handshake is the most expensive thing the hub does for a stranger.
pub fn full(open: usize, max: usize) -> bool {
    open >= max
}

// Unfinished handshakes have their own bound, below the one on admitted
// connections, and time limits shorter than the 10 s a flood once used to
// hold every place: checked when the crate compiles.
const _: () = {
    let l = Limits::DEFAULT;
    assert!(l.retry_above < l.max_handshakes);
    assert!(l.max_handshakes < MIN_CONNECTIONS);
    assert!(l.handshake_timeout.as_secs() < 10);
    assert!(l.hello_timeout.as_secs() < 10);
};

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// What to do with a new connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Start the handshake.
    Accept,
    /// Answer with a Retry: the client must come back with the token.
    Retry,
    /// Refuse: every place is taken, or too many unfinished handshakes (in
    /// all, or from its address).
    Refuse(RefuseWhy),
}

/// Why an attempt was refused at the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseWhy {
    /// The hub holds `max_connections` admitted connections.
    Full,
    TooManyHandshakes,
    TooManyFromAddress,
}

/// Decide on a connection attempt from the unfinished handshakes now (in
/// all, and from its address) and whether its address is proven.
pub fn gate(total: usize, from_addr: usize, validated: bool, limits: &Limits) -> Gate {
    if !validated && total >= limits.retry_above {
        Gate::Retry
    } else if total >= limits.max_handshakes {
        Gate::Refuse(RefuseWhy::TooManyHandshakes)
    } else if from_addr >= limits.max_handshakes_per_addr {
        Gate::Refuse(RefuseWhy::TooManyFromAddress)
    } else {
        Gate::Accept
    }
}

/// Why a connection that finished its handshake is not admitted, and the
/// code and words the hub closes it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: RefuseCode,
    pub reason: String,
}

/// Judge a connection's certificate now: the checks TLS makes in a full
/// handshake (chain, validity, revocation, CRL freshness), made again by
/// the hub, because a resumed TLS session skips them; and the role. Returns
/// who the unit is.
pub fn judge(
    cert: &[u8],
    checker: &CertChecker,
    now: OffsetDateTime,
) -> Result<CertIdentity, Refused> {
    let identity = checker.check(cert, now).map_err(|e| match e {
        PkiError::Invalid { problem, .. } => Refused {
            code: match problem {
                CertProblem::Revoked => RefuseCode::Revoked,
                CertProblem::Expired | CertProblem::NotYetValid => RefuseCode::Expired,
                CertProblem::RevocationListStale { .. } => RefuseCode::CrlStale,
                _ => RefuseCode::RoleNotAllowed,
            },
            reason: format!("certificate refused: {problem}"),
        },
        other => Refused {
            code: RefuseCode::RoleNotAllowed,
            reason: format!("certificate names no gongwen node and role: {other}"),
        },
    })?;
    if identity.role == Role::Hub {
        return Err(Refused {
            code: RefuseCode::RoleNotAllowed,
            reason: "a hub certificate cannot connect as a unit".into(),
        });
    }
    Ok(identity)
}

/// How many of something each key holds now, and in all; a [`Held`] gives
/// its one back when dropped.
#[derive(Debug)]
pub struct Counts<K: Hash + Eq + Clone> {
    inner: Mutex<CountsInner<K>>,
}

#[derive(Debug)]
struct CountsInner<K> {
    total: usize,
    by_key: HashMap<K, usize>,
}

impl<K: Hash + Eq + Clone> Default for Counts<K> {
    fn default() -> Self {
        Counts {
            inner: Mutex::new(CountsInner {
                total: 0,
                by_key: HashMap::new(),
            }),
        }
    }
}

impl<K: Hash + Eq + Clone> Counts<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, CountsInner<K>> {
        // Plain counters: a panic elsewhere leaves nothing half-done.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The count in all and for `key`.
    pub fn now(&self, key: &K) -> (usize, usize) {
        let c = self.lock();
        (c.total, c.by_key.get(key).copied().unwrap_or(0))
    }

    /// The count in all.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    /// Count one more for `key` if `admit` agrees, given the counts before
    /// (decided under the same lock, so two callers cannot both take the
    /// last place).
    pub fn enter<T>(
        self: &Arc<Self>,
        key: K,
        admit: impl FnOnce(usize, usize) -> Result<(), T>,
    ) -> Result<Held<K>, T> {
        let mut c = self.lock();
        let mine = c.by_key.get(&key).copied().unwrap_or(0);
        admit(c.total, mine)?;
        c.total += 1;
        *c.by_key.entry(key.clone()).or_insert(0) += 1;
        Ok(Held {
            counts: self.clone(),
            key: Some(key),
        })
    }
}

/// One place counted in [`Counts`], given back when dropped.
#[derive(Debug)]
pub struct Held<K: Hash + Eq + Clone> {
    counts: Arc<Counts<K>>,
    key: Option<K>,
}

impl<K: Hash + Eq + Clone> Drop for Held<K> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut c = self.counts.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_key.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                c.by_key.remove(&key);
            }
        }
    }
}

/// Connections between arriving and being welcomed: unfinished handshakes
/// by address, and connections awaiting their hello by unit.
#[derive(Debug, Default)]
pub struct Pending {
    pub handshakes: Arc<Counts<IpAddr>>,
    pub hellos: Arc<Counts<NodeId>>,
}

/// How often, at most, the hub says that handshakes are piling up.
pub const PRESSURE_REPORT_EVERY: Duration = Duration::from_secs(10);

/// What the gate turned away since it last said so.
#[derive(Debug, Default)]
pub struct Pressure {
    last_report: Option<std::time::Instant>,
    now: PressureReport,
}

/// Attempts sent a Retry, refused for want of a place, and refused for
/// too many unfinished handshakes, since the last report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PressureReport {
    pub retried: u64,
    pub full: u64,
    pub refused: u64,
}

impl Pressure {
    /// Count what the gate decided; returns what to report now, if
    /// anything: the first turn-away at once, then at most one report per
    /// [`PRESSURE_REPORT_EVERY`].
    pub fn note(&mut self, gate: Gate, now: std::time::Instant) -> Option<PressureReport> {
        match gate {
            Gate::Accept => return None,
            Gate::Retry => self.now.retried += 1,
            Gate::Refuse(RefuseWhy::Full) => self.now.full += 1,
            Gate::Refuse(_) => self.now.refused += 1,
        }
        let due = self
            .last_report
            .is_none_or(|at| now.saturating_duration_since(at) >= PRESSURE_REPORT_EVERY);
        if !due {
            return None;
        }
        self.last_report = Some(now);
        Some(std::mem::take(&mut self.now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits::DEFAULT;

    #[test]
    fn a_quiet_hub_accepts_without_a_retry() {
        assert_eq!(gate(0, 0, false, &L), Gate::Accept);
        assert_eq!(gate(L.retry_above - 1, 0, false, &L), Gate::Accept);
    }

    #[test]
    fn piled_up_handshakes_make_unproven_clients_retry_and_let_proven_ones_in() {
        assert_eq!(gate(L.retry_above, 0, false, &L), Gate::Retry);
        // Even far beyond every bound an unproven client costs only a Retry.
        assert_eq!(gate(L.max_handshakes * 10, 1000, false, &L), Gate::Retry);
        assert_eq!(gate(L.retry_above, 0, true, &L), Gate::Accept);
    }

    #[test]
    fn proven_clients_are_refused_beyond_the_bounds_in_all_and_per_address() {
        assert_eq!(
            gate(L.max_handshakes, 0, true, &L),
            Gate::Refuse(RefuseWhy::TooManyHandshakes)
        );
        assert_eq!(
            gate(L.retry_above, L.max_handshakes_per_addr, true, &L),
            Gate::Refuse(RefuseWhy::TooManyFromAddress)
        );
        assert_eq!(
            gate(L.retry_above, L.max_handshakes_per_addr - 1, true, &L),
            Gate::Accept
        );
    }

    #[test]
    fn the_place_count_follows_the_enrolled_units_unless_configured() {
        assert_eq!(max_connections(None, 0), MIN_CONNECTIONS);
        assert_eq!(max_connections(None, 194), MIN_CONNECTIONS);
        assert_eq!(max_connections(None, 10_000), 12_564);
        assert_eq!(max_connections(Some(3), 10_000), 3);
        assert!(!full(2, 3));
        assert!(full(3, 3));
        assert_eq!(
            Limits::with_per_address(Some(500)).max_handshakes_per_addr,
            500
        );
        assert_eq!(Limits::with_per_address(None), Limits::DEFAULT);
    }

    #[test]
    fn turn_aways_are_reported_at_once_then_summed_at_most_every_interval() {
        let mut p = Pressure::default();
        let t0 = std::time::Instant::now();
        assert_eq!(p.note(Gate::Accept, t0), None);
        assert_eq!(
            p.note(Gate::Retry, t0),
            Some(PressureReport {
                retried: 1,
                ..Default::default()
            })
        );
        for _ in 0..5999 {
            assert_eq!(p.note(Gate::Retry, t0), None);
        }
        assert_eq!(p.note(Gate::Refuse(RefuseWhy::TooManyHandshakes), t0), None);
        assert_eq!(p.note(Gate::Refuse(RefuseWhy::Full), t0), None);
        assert_eq!(
            p.note(Gate::Retry, t0 + PRESSURE_REPORT_EVERY),
            Some(PressureReport {
                retried: 6000,
                full: 1,
                refused: 1
            })
        );
    }

    #[test]
    fn counts_give_places_back_when_dropped_and_never_exceed_what_enter_allows() {
        let counts: Arc<Counts<&str>> = Arc::default();
        let at_most_two = |_total: usize, mine: usize| if mine < 2 { Ok(()) } else { Err(()) };
        let a1 = counts.enter("a", at_most_two).unwrap();
        let a2 = counts.enter("a", at_most_two).unwrap();
        assert!(counts.enter("a", at_most_two).is_err());
        let b = counts.enter("b", at_most_two).unwrap();
        assert_eq!(counts.now(&"a"), (3, 2));
        drop(a1);
        assert_eq!(counts.now(&"a"), (2, 1));
        let _a3 = counts.enter("a", at_most_two).unwrap();
        drop((a2, b));
        assert_eq!(counts.now(&"b"), (1, 0));
        assert_eq!(counts.total(), 1);
    }

    /// A CA in a temporary folder and certificates from it, as DER.
    struct Pki {
        dir: tempfile::TempDir,
        ca: gongwen_certs::Ca,
    }

    impl Pki {
        fn new(now: OffsetDateTime) -> Pki {
            let dir = tempfile::tempdir().unwrap();
            let ca =
                gongwen_certs::Ca::init(&dir.path().join("ca"), "test CA", now, 365, 30).unwrap();
            Pki { dir, ca }
        }

        fn issue(&mut self, id: &str, role: Role, now: OffsetDateTime, days: u32) -> Vec<u8> {
            let req = gongwen_certs::IssueRequest {
                id: NodeId::parse(id).unwrap(),
                role,
                name: None,
                dns: Vec::new(),
                ips: Vec::new(),
                validity: gongwen_certs::Validity::days_from(now, days),
                renew: true,
            };
            let issued = self.ca.issue(&req, now).unwrap();
            let pem = issued.cert_pem.into_bytes();
            let path = self.dir.path().join(format!("{id}.crt"));
            std::fs::write(&path, pem).unwrap();
            gongwen_common::pki::load_certs(&path)
                .unwrap()
                .remove(0)
                .to_vec()
        }

        fn checker(&self) -> CertChecker {
            let ca = self.ca.cert_der().clone();
            let crl =
                gongwen_common::pki::Crl::load(&self.dir.path().join("ca/crl.pem"), &ca).unwrap();
            CertChecker::new(&ca, Some(&crl)).unwrap()
        }
    }

    fn refused(cert: &[u8], checker: &CertChecker, now: OffsetDateTime) -> RefuseCode {
        judge(cert, checker, now).unwrap_err().code
    }

    #[test]
    fn a_valid_unit_certificate_is_admitted_as_the_unit_it_names() {
        let now = OffsetDateTime::now_utc();
        let mut pki = Pki::new(now);
        let cert = pki.issue("harbin-gov", Role::Node, now, 30);
        let who = judge(&cert, &pki.checker(), now).unwrap();
        assert_eq!(who.id.as_str(), "harbin-gov");
        assert_eq!(who.role, Role::Node);
    }

    #[test]
    fn a_certificate_that_expired_is_refused_even_after_it_once_passed() {
        let now = OffsetDateTime::now_utc();
        let mut pki = Pki::new(now);
        let cert = pki.issue("harbin-gov", Role::Node, now, 2);
        let checker = pki.checker();
        assert!(judge(&cert, &checker, now).is_ok());
        let later = now + time::Duration::days(3);
        assert_eq!(refused(&cert, &checker, later), RefuseCode::Expired);
    }

    #[test]
    fn a_stale_crl_refuses_a_certificate_that_passed_while_it_was_fresh() {
        let now = OffsetDateTime::now_utc();
        let mut pki = Pki::new(now);
        let cert = pki.issue("harbin-gov", Role::Node, now, 365);
        let checker = pki.checker();
        assert!(judge(&cert, &checker, now).is_ok());
        // The test CA's CRL is fresh for 30 days.
        let later = now + time::Duration::days(31);
        assert_eq!(refused(&cert, &checker, later), RefuseCode::CrlStale);
    }

    #[test]
    fn revoked_other_ca_and_hub_certificates_are_refused() {
        let now = OffsetDateTime::now_utc();
        let mut pki = Pki::new(now);
        let cert = pki.issue("daqing-gov", Role::Node, now, 30);
        let hub = pki.issue("hub", Role::Hub, now, 30);
        pki.ca
            .revoke(
                &NodeId::parse("daqing-gov").unwrap(),
                "key-compromise",
                now,
                30,
            )
            .unwrap();
        let checker = pki.checker();
        assert_eq!(refused(&cert, &checker, now), RefuseCode::Revoked);
        assert_eq!(refused(&hub, &checker, now), RefuseCode::RoleNotAllowed);
        let mut other = Pki::new(now);
        let foreign = other.issue("harbin-gov", Role::Node, now, 30);
        let r = judge(&foreign, &checker, now).unwrap_err();
        assert!(
            r.reason.contains("not issued by this deployment's CA"),
            "{r:?}"
        );
    }
}
