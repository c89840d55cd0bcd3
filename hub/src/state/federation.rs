//! The peer domains this hub trusts and the links to their hubs.
//!
//! Each `[[federation.peers]]` entry names a statement our CA signed
//! (`gongwen-certs federate`): the peer's domain and its CA certificate.
//! The statements are read at start and again whenever their files change;
//! a statement that does not verify is refused with the reason and the one
//! held before is kept. Each peer's CRL comes from the peer itself (in its
//! hello or welcome, then pushed on change), is checked against the peer's
//! CA, never replaced by an older one, and kept in
//! `data_dir/federation/<domain>.crl` so a restart does not forget a
//! revocation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gongwen_common::config::{FederationConfig, PeerConfig};
use gongwen_common::federation::{Domain, FederationStatement};
use gongwen_common::pki::{CertChecker, CertIdentity, Crl, Role};
use gongwen_common::suite::Suite;
use gongwen_common::timefmt::rfc3339;
use gongwen_common::wire::RefuseCode;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::rules::admission::Refused;

/// What we know of one peer domain now; replaced whole.
#[derive(Debug)]
pub(crate) struct PeerTrust {
    pub config: PeerConfig,
    pub statement: FederationStatement,
    pub ca: CertificateDer<'static>,
    /// The newest CRL the peer gave us, if any yet.
    pub crl: Option<Crl>,
    /// The CA and that CRL; `None` until a CRL is held (nothing of the
    /// peer's is judged before).
    pub checker: Option<Arc<CertChecker>>,
}

impl PeerTrust {
    fn new(
        config: PeerConfig,
        statement: FederationStatement,
        crl: Option<Crl>,
    ) -> Result<PeerTrust, String> {
        let ca = CertificateDer::from(statement.peer_ca.clone());
        let checker = match &crl {
            Some(crl) => Some(Arc::new(
                CertChecker::new(&ca, Some(crl)).map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        Ok(PeerTrust {
            config,
            statement,
            ca,
            crl,
            checker,
        })
    }
}

/// How a link came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Direction {
    /// We dialed the peer (its `addr`).
    Dialed,
    /// The peer dialed us.
    Accepted,
}

/// One live link to a peer hub.
#[derive(Debug, Clone)]
struct Link {
    ticket: u64,
    conn: quinn::Connection,
    direction: Direction,
    since: OffsetDateTime,
    addr: String,
}

/// Links of one domain, and what went wrong last.
#[derive(Debug, Default)]
struct Links {
    live: Vec<Link>,
    last_problem: Option<(OffsetDateTime, String)>,
}

/// This hub's federation: its domain, the peers it trusts, the live links.
#[derive(Debug)]
pub(crate) struct Federation {
    domain: Domain,
    suite: Suite,
    our_ca: CertificateDer<'static>,
    /// `data_dir/federation`: the peers' CRLs.
    dir: PathBuf,
    peers: Mutex<BTreeMap<Domain, Arc<PeerTrust>>>,
    links: Mutex<BTreeMap<Domain, Links>>,
    next_ticket: std::sync::atomic::AtomicU64,
    /// Bumped when our own CRL changes: every link pushes it to its peer.
    our_crl: tokio::sync::watch::Sender<u64>,
}

/// Read and check the statement of `peer`: signed by our CA (`our_ca`,
/// DER), for the domain the entry names, of our suite.
pub fn load_statement(
    peer: &PeerConfig,
    our_ca: &[u8],
    suite: Suite,
) -> Result<FederationStatement, String> {
    let path = &peer.statement;
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "{}: {e} (make it with gongwen-certs federate --domain {} --peer-ca PEER-CA.crt --out {})",
            path.display(),
            peer.domain,
            path.display()
        )
    })?;
    let statement = FederationStatement::verify(&bytes, our_ca)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if statement.domain != peer.domain {
        return Err(format!(
            "{}: the statement is for the domain {}, but the entry in hub.toml says {}",
            path.display(),
            statement.domain,
            peer.domain
        ));
    }
    let theirs = statement
        .peer_suite()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if theirs != suite {
        return Err(format!(
            "{}: {} uses the {theirs} suite and this hub the {suite} suite; both ends of a federation link must use the same suite",
            path.display(),
            peer.domain
        ));
    }
    Ok(statement)
}

fn crl_path(dir: &Path, domain: &Domain) -> PathBuf {
    dir.join(format!("{domain}.crl"))
}

impl Federation {
    /// Load every peer's statement (an error names the file and what to
    /// do) and the CRLs kept from before.
    pub(crate) fn load(
        config: &FederationConfig,
        our_ca: &CertificateDer<'static>,
        suite: Suite,
        data_dir: &Path,
    ) -> Result<Federation, String> {
        let dir = data_dir.join("federation");
        let mut peers = BTreeMap::new();
        for peer in &config.peers {
            let statement = load_statement(peer, our_ca, suite)?;
            let ca = CertificateDer::from(statement.peer_ca.clone());
            // A kept CRL that no longer fits (the statement changed) is
            // forgotten: the peer sends its own on the next link.
            let crl = std::fs::read(crl_path(&dir, &peer.domain))
                .ok()
                .and_then(|b| Crl::parse(&b, &ca).ok());
            let trust = PeerTrust::new(peer.clone(), statement, crl)?;
            peers.insert(peer.domain.clone(), Arc::new(trust));
        }
        Ok(Federation {
            domain: config.domain.clone(),
            suite,
            our_ca: our_ca.clone(),
            dir,
            peers: Mutex::new(peers),
            links: Mutex::default(),
            next_ticket: Default::default(),
            our_crl: tokio::sync::watch::Sender::new(0),
        })
    }

    pub(crate) fn domain(&self) -> &Domain {
        &self.domain
    }

    pub(crate) fn suite(&self) -> Suite {
        self.suite
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, BTreeMap<Domain, Arc<PeerTrust>>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn links(&self) -> std::sync::MutexGuard<'_, BTreeMap<Domain, Links>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What we trust of `domain` now, if it is a peer.
    pub(crate) fn peer(&self, domain: &Domain) -> Option<Arc<PeerTrust>> {
        self.peers().get(domain).cloned()
    }

    /// Every peer, in domain order.
    pub(crate) fn all(&self) -> Vec<Arc<PeerTrust>> {
        self.peers().values().cloned().collect()
    }

    /// The peers' CA certificates (for the handshake's roots).
    pub(crate) fn peer_cas(&self) -> Vec<CertificateDer<'static>> {
        self.peers().values().map(|p| p.ca.clone()).collect()
    }

    /// Read the statement of `domain` again (its file changed). Returns
    /// whether it changed; an error leaves the one held.
    pub(crate) fn reload_statement(&self, domain: &Domain) -> Result<bool, String> {
        let Some(held) = self.peer(domain) else {
            return Ok(false);
        };
        let statement = load_statement(&held.config, &self.our_ca, self.suite)?;
        if statement == held.statement {
            return Ok(false);
        }
        let crl = if statement.peer_ca == held.statement.peer_ca {
            held.crl.clone()
        } else {
            None
        };
        let trust = PeerTrust::new(held.config.clone(), statement, crl)?;
        self.peers().insert(domain.clone(), Arc::new(trust));
        Ok(true)
    }

    /// Take a CRL `domain`'s hub gave us: checked against its CA, kept
    /// unless older than the one held. Returns whether it is new.
    pub(crate) fn take_crl(&self, domain: &Domain, der: &[u8]) -> Result<bool, String> {
        let Some(held) = self.peer(domain) else {
            return Err(format!("{domain} is not a peer of this hub"));
        };
        let crl = Crl::parse(der, &held.ca)
            .map_err(|e| match e {
                gongwen_common::pki::PkiError::CrlNotFromCa => format!(
                    "the revocation list sent as {domain}'s is not signed by the CA the federation statement for {domain} names"
                ),
                other => format!("the revocation list sent as {domain}'s cannot be used: {other}"),
            })?;
        if let Some(old) = &held.crl {
            if crl.this_update < old.this_update {
                return Err(format!(
                    "{domain} sent a revocation list issued at {}, older than the one held ({}); kept the newer",
                    rfc3339(crl.this_update),
                    rfc3339(old.this_update)
                ));
            }
            if crl.der == old.der {
                return Ok(false);
            }
        }
        std::fs::create_dir_all(&self.dir)
            .and_then(|_| {
                gongwen_common::fsutil::write_atomic(&crl_path(&self.dir, domain), &crl.der, 0o644)
            })
            .map_err(|e| {
                format!(
                    "cannot keep {domain}'s revocation list in {}: {e}",
                    self.dir.display()
                )
            })?;
        let trust = PeerTrust::new(held.config.clone(), held.statement.clone(), Some(crl))?;
        self.peers().insert(domain.clone(), Arc::new(trust));
        Ok(true)
    }

    /// Whether `cert` comes from `domain`'s CA at all (chain and validity,
    /// before any CRL of it is looked at): a hub that claims a domain not
    /// its own is told so in those words, not by a CRL that does not fit.
    pub(crate) fn check_issuer(
        &self,
        domain: &Domain,
        cert: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), Refused> {
        let Some(peer) = self.peer(domain) else {
            return Err(Refused {
                code: RefuseCode::RoleNotAllowed,
                reason: format!(
                    "{domain} is not a federation peer of {} (no [[federation.peers]] entry for it)",
                    self.domain
                ),
            });
        };
        let checker = CertChecker::new(&peer.ca, None).map_err(|e| Refused {
            code: RefuseCode::Other,
            reason: e.to_string(),
        })?;
        match checker.check(cert, now) {
            Err(gongwen_common::pki::PkiError::Invalid {
                problem: gongwen_common::pki::CertProblem::NotFromCa,
                ..
            }) => Err(Refused {
                code: RefuseCode::RoleNotAllowed,
                reason: format!(
                    "the certificate was not issued by the CA the federation statement for {domain} names"
                ),
            }),
            // Everything else is judged with the CRL.
            _ => Ok(()),
        }
    }

    /// Judge a peer hub's certificate as `domain`'s, now: from that
    /// domain's CA, valid, not revoked by its CRL (which must be fresh),
    /// and a hub's.
    pub(crate) fn judge(
        &self,
        domain: &Domain,
        cert: &[u8],
        now: OffsetDateTime,
    ) -> Result<CertIdentity, Refused> {
        let Some(peer) = self.peer(domain) else {
            return Err(Refused {
                code: RefuseCode::RoleNotAllowed,
                reason: format!(
                    "{domain} is not a federation peer of {} (no [[federation.peers]] entry for it)",
                    self.domain
                ),
            });
        };
        let Some(checker) = &peer.checker else {
            return Err(Refused {
                code: RefuseCode::CrlStale,
                reason: format!("no revocation list of {domain} is held yet"),
            });
        };
        let identity = checker.check(cert, now).map_err(|e| {
            use gongwen_common::pki::{CertProblem, PkiError};
            match e {
                PkiError::Invalid {
                    problem: CertProblem::NotFromCa,
                    ..
                } => Refused {
                    code: RefuseCode::RoleNotAllowed,
                    reason: format!(
                        "the certificate was not issued by the CA the federation statement for {domain} names"
                    ),
                },
                PkiError::Invalid {
                    problem: CertProblem::RevocationListStale { since },
                    ..
                } => Refused {
                    code: RefuseCode::CrlStale,
                    reason: format!(
                        "the revocation list of {domain} went stale at {}: traffic from {domain} stops until its hub brings a fresh one (gongwen-certs crl there)",
                        rfc3339(since)
                    ),
                },
                PkiError::Invalid { problem, .. } => Refused {
                    code: match problem {
                        CertProblem::Revoked => RefuseCode::Revoked,
                        CertProblem::Expired | CertProblem::NotYetValid => RefuseCode::Expired,
                        _ => RefuseCode::RoleNotAllowed,
                    },
                    reason: format!("the peer hub's certificate is refused: {problem}"),
                },
                other => Refused {
                    code: RefuseCode::RoleNotAllowed,
                    reason: format!("the certificate names no gongwen hub: {other}"),
                },
            }
        })?;
        if identity.role != Role::Hub {
            return Err(Refused {
                code: RefuseCode::RoleNotAllowed,
                reason: format!(
                    "a {} certificate ({}) cannot link as {domain}'s hub",
                    identity.role, identity.id
                ),
            });
        }
        Ok(identity)
    }

    /// Register a live link; the ticket unregisters it.
    pub(crate) fn connected(
        &self,
        domain: &Domain,
        conn: &quinn::Connection,
        direction: Direction,
        now: OffsetDateTime,
    ) -> u64 {
        let ticket = self
            .next_ticket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut links = self.links();
        let l = links.entry(domain.clone()).or_default();
        l.live.push(Link {
            ticket,
            conn: conn.clone(),
            direction,
            since: now,
            addr: conn.remote_address().to_string(),
        });
        l.last_problem = None;
        ticket
    }

    pub(crate) fn disconnected(&self, domain: &Domain, ticket: u64) {
        if let Some(l) = self.links().get_mut(domain) {
            l.live.retain(|k| k.ticket != ticket);
        }
    }

    /// Remember what went wrong with `domain`'s link last (for `peers`).
    pub(crate) fn problem(&self, domain: &Domain, now: OffsetDateTime, what: String) {
        self.links().entry(domain.clone()).or_default().last_problem = Some((now, what));
    }

    /// Close every live link of `domain` with `code` and `reason`.
    pub(crate) fn cut(&self, domain: &Domain, code: RefuseCode, reason: &str) -> usize {
        let live: Vec<quinn::Connection> = self
            .links()
            .get(domain)
            .map(|l| l.live.iter().map(|k| k.conn.clone()).collect())
            .unwrap_or_default();
        for conn in &live {
            crate::state::registry::close(conn, code, reason);
        }
        live.len()
    }

    /// Our CRL changed: every link pushes it.
    pub(crate) fn our_crl_changed(&self) {
        self.our_crl.send_modify(|n| *n += 1);
    }

    /// Woken when our CRL changes.
    pub(crate) fn watch_our_crl(&self) -> tokio::sync::watch::Receiver<u64> {
        self.our_crl.subscribe()
    }

    /// One row per peer for `gongwen-hub peers`.
    pub(crate) fn rows(&self, now: OffsetDateTime) -> Vec<PeerRow> {
        let peers = self.all();
        let links = self.links();
        peers
            .iter()
            .map(|p| {
                let l = links.get(&p.config.domain);
                let live = l.map(|l| l.live.as_slice()).unwrap_or_default();
                PeerRow {
                    domain: p.config.domain.clone(),
                    connected: !live.is_empty(),
                    links: live
                        .iter()
                        .map(|k| LinkRow {
                            direction: k.direction,
                            addr: k.addr.clone(),
                            since: rfc3339(k.since),
                        })
                        .collect(),
                    dial: p.config.addr.clone(),
                    routes: p.config.routes.clone(),
                    crl_issued: p.crl.as_ref().map(|c| rfc3339(c.this_update)),
                    crl_age_seconds: p
                        .crl
                        .as_ref()
                        .map(|c| (now - c.this_update).whole_seconds().max(0)),
                    crl_next_update: p.crl.as_ref().and_then(|c| c.next_update).map(rfc3339),
                    crl_stale: p.crl.as_ref().is_none_or(|c| c.is_stale(now)),
                    last_problem: l.and_then(|l| l.last_problem.as_ref()).map(|(at, what)| {
                        ProblemRow {
                            at: rfc3339(*at),
                            what: what.clone(),
                        }
                    }),
                }
            })
            .collect()
    }
}

/// `gongwen-hub peers --json`: one object per peer domain.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PeerRow {
    pub domain: Domain,
    pub connected: bool,
    pub links: Vec<LinkRow>,
    /// Where this hub dials it (empty: it dials us).
    pub dial: Vec<String>,
    pub routes: Vec<Domain>,
    pub crl_issued: Option<String>,
    pub crl_age_seconds: Option<i64>,
    pub crl_next_update: Option<String>,
    /// No CRL of the peer is held, or it is past its next update: nothing
    /// of that domain passes.
    pub crl_stale: bool,
    pub last_problem: Option<ProblemRow>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct LinkRow {
    pub direction: Direction,
    pub addr: String,
    pub since: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ProblemRow {
    pub at: String,
    pub what: String,
}
