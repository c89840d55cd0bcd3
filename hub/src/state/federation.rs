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

use gongwen_common::NodeId;
use gongwen_common::config::{FederationConfig, PeerConfig};
use gongwen_common::directory::UnitDirectory;
use gongwen_common::federation::{Chain, Domain, FederationStatement, MAX_CHAIN};
use gongwen_common::pki::{CertChecker, CertIdentity, Crl, Role};
use gongwen_common::suite::Suite;
use gongwen_common::timefmt::rfc3339;
use gongwen_common::wire::PeerOfferKind;
use gongwen_common::wire::RefuseCode;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::rules::admission::Refused;

/// What we know of one peer domain now; replaced whole.
#[derive(Debug)]
pub(crate) struct PeerTrust {
    pub config: PeerConfig,
    pub statement: FederationStatement,
    /// The statement as our CA signed it: the first link of every chain
    /// we hand on for this peer.
    pub statement_bytes: Vec<u8>,
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
        (statement, statement_bytes): (FederationStatement, Vec<u8>),
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
            statement_bytes,
            ca,
            crl,
            checker,
        })
    }
}

/// A domain reached through a peer, trusted as the chain from that peer's
/// CA to its own says ([`Chain`]).
#[derive(Debug)]
pub(crate) struct RoutedTrust {
    /// The peer it is reached through (its `routes`).
    pub via: Domain,
    /// The peer's chain for it, from the peer's CA.
    pub chain: Chain,
    pub ca: CertificateDer<'static>,
    pub crl: Option<Crl>,
}

/// A domain's unit directory as its CA signed it (handed on verbatim).
#[derive(Debug)]
pub(crate) struct HeldDirectory {
    pub bytes: Arc<Vec<u8>>,
    pub directory: Arc<UnitDirectory>,
    /// Its groups (units.csv's `groups`), as units here name them:
    /// `group@domain`, of `unit@domain`s.
    pub groups: BTreeMap<String, Vec<NodeId>>,
}

impl HeldDirectory {
    fn new(bytes: &[u8], directory: UnitDirectory, domain: &Domain) -> HeldDirectory {
        let groups = directory
            .groups()
            .into_iter()
            .map(|(g, members)| {
                let members = members.iter().map(|m| NodeId::remote(m, domain)).collect();
                (format!("{g}@{domain}"), members)
            })
            .collect();
        HeldDirectory {
            bytes: Arc::new(bytes.to_vec()),
            directory: Arc::new(directory),
            groups,
        }
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
    config: FederationConfig,
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
    /// Domains reached through a peer.
    routed: Mutex<BTreeMap<Domain, Arc<RoutedTrust>>>,
    /// The unit directories of the other domains.
    directories: Mutex<BTreeMap<Domain, Arc<HeldDirectory>>>,
    /// Bumped when anything we hand our peers changed (a chain, a CRL, a
    /// directory): every link offers what changed.
    offers: tokio::sync::watch::Sender<u64>,
    /// Per peer: wakes its link's relay (something was queued for it).
    relay_wakes: Mutex<BTreeMap<Domain, Arc<tokio::sync::Notify>>>,
    /// One update of the trust of a domain at a time ([`Federation::updating`]).
    updates: Mutex<()>,
}

/// Read and check the statement of `peer`: signed by our CA (`our_ca`,
/// DER), for the domain the entry names, of our suite.
pub fn load_statement(
    peer: &PeerConfig,
    our_ca: &[u8],
    suite: Suite,
) -> Result<(FederationStatement, Vec<u8>), String> {
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
    Ok((statement, bytes))
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
            let ca = CertificateDer::from(statement.0.peer_ca.clone());
            // A kept CRL that no longer fits (the statement changed) is
            // forgotten: the peer sends its own on the next link.
            let crl = std::fs::read(crl_path(&dir, &peer.domain))
                .ok()
                .and_then(|b| Crl::parse(&b, &ca).ok());
            let trust = PeerTrust::new(peer.clone(), statement, crl)?;
            peers.insert(peer.domain.clone(), Arc::new(trust));
        }
        let federation = Federation {
            config: config.clone(),
            domain: config.domain.clone(),
            suite,
            our_ca: our_ca.clone(),
            dir,
            peers: Mutex::new(peers),
            links: Mutex::default(),
            next_ticket: Default::default(),
            our_crl: tokio::sync::watch::Sender::new(0),
            routed: Mutex::default(),
            directories: Mutex::default(),
            offers: tokio::sync::watch::Sender::new(0),
            relay_wakes: Mutex::default(),
            updates: Mutex::default(),
        };
        federation.load_kept();
        Ok(federation)
    }

    /// What earlier links brought, kept in `data_dir/federation`: each
    /// routed domain's chain and CRL, each domain's directory — each
    /// checked again, and forgotten if it no longer verifies.
    fn load_kept(&self) {
        for p in &self.config.peers {
            for r in &p.routes {
                let Ok(bytes) = std::fs::read(self.dir.join(format!("{r}.chain"))) else {
                    continue;
                };
                if let Err(e) = self.take_offer(&p.domain, PeerOfferKind::Statement, r, &bytes) {
                    tracing::warn!("forgot the kept trust of {r}: {e}");
                    continue;
                }
                if let Ok(crl) = std::fs::read(crl_path(&self.dir, r)) {
                    let _ = self.take_offer(&p.domain, PeerOfferKind::Crl, r, &crl);
                }
            }
        }
        let known: Vec<(Domain, Domain)> = self
            .config
            .peers
            .iter()
            .flat_map(|p| {
                std::iter::once((p.domain.clone(), p.domain.clone()))
                    .chain(p.routes.iter().map(|r| (p.domain.clone(), r.clone())))
            })
            .collect();
        for (via, d) in known {
            if let Ok(bytes) = std::fs::read(self.dir.join(format!("{d}.gwd")))
                && let Err(e) = self.take_offer(&via, PeerOfferKind::Directory, &d, &bytes)
            {
                tracing::warn!("forgot the kept unit directory of {d}: {e}");
            }
        }
    }

    fn routed(&self) -> std::sync::MutexGuard<'_, BTreeMap<Domain, Arc<RoutedTrust>>> {
        self.routed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn directories(&self) -> std::sync::MutexGuard<'_, BTreeMap<Domain, Arc<HeldDirectory>>> {
        self.directories.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The CA of `domain`, a peer or reached through one.
    pub(crate) fn ca_of(&self, domain: &Domain) -> Option<CertificateDer<'static>> {
        if let Some(p) = self.peer(domain) {
            return Some(p.ca.clone());
        }
        self.routed().get(domain).map(|r| r.ca.clone())
    }

    /// Checks signers of `domain` (its CA and CRL); `None` while its
    /// trust or its CRL is not held.
    pub(crate) fn checker_of(&self, domain: &Domain) -> Option<Arc<CertChecker>> {
        if let Some(p) = self.peer(domain) {
            return p.checker.clone();
        }
        let r = self.routed().get(domain).cloned()?;
        let crl = r.crl.as_ref()?;
        CertChecker::new(&r.ca, Some(crl)).ok().map(Arc::new)
    }

    /// Every other domain trusted now: the peers, then those reached
    /// through them.
    pub(crate) fn known_domains(&self) -> Vec<Domain> {
        let mut out: Vec<Domain> = self.peers().keys().cloned().collect();
        out.extend(self.routed().keys().cloned());
        out
    }

    /// The peer a document or receipt for `domain` goes to.
    pub(crate) fn next_hop(&self, domain: &Domain) -> Option<Domain> {
        self.config.next_hop(domain).map(|p| p.domain.clone())
    }

    /// The domains whose units' documents and receipts the hub of `from`
    /// may hand us: its own, and those our configuration reaches through
    /// it.
    pub(crate) fn carried_by(&self, from: &Domain) -> Vec<Domain> {
        let mut out = vec![from.clone()];
        if let Some(p) = self.config.peers.iter().find(|p| &p.domain == from) {
            out.extend(p.routes.iter().cloned());
        }
        out
    }

    /// The domains a link to `peer` carries our queues for.
    pub(crate) fn relayed_through(&self, peer: &Domain) -> Vec<Domain> {
        self.carried_by(peer)
    }

    /// Whether `address` (`unit@domain`) is a unit this hub can reach: a
    /// domain it routes to, whose directory lists the unit.
    pub(crate) fn knows(&self, address: &NodeId) -> bool {
        let Some(domain) = address.domain() else {
            return false;
        };
        if self.next_hop(&domain).is_none() {
            return false;
        }
        let Ok(unit) = NodeId::parse(address.unit()) else {
            return false;
        };
        self.directories()
            .get(&domain)
            .is_some_and(|h| h.directory.get(&unit).is_some())
    }

    /// Something was queued for `domain`'s units: wake the link that
    /// carries it.
    pub(crate) fn wake_relay(&self, domain: &Domain) {
        if let Some(hop) = self.next_hop(domain) {
            self.relay_wake(&hop).notify_one();
        }
    }

    /// What wakes the relay of the link to `peer`.
    pub(crate) fn relay_wake(&self, peer: &Domain) -> Arc<tokio::sync::Notify> {
        self.relay_wakes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(peer.clone())
            .or_default()
            .clone()
    }

    /// Something we hand our peers changed.
    pub(crate) fn offers_changed(&self) {
        self.offers.send_modify(|n| *n += 1);
    }

    /// How many times what we offer (and hand agents) has changed.
    pub(crate) fn offers_version(&self) -> u64 {
        *self.offers.borrow()
    }

    /// Woken when something we hand our peers changed.
    pub(crate) fn watch_offers(&self) -> tokio::sync::watch::Receiver<u64> {
        self.offers.subscribe()
    }

    /// Held while what is trusted of a domain is compared and replaced.
    fn updating(&self) -> std::sync::MutexGuard<'_, ()> {
        self.updates.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep `bytes` as `name` in the federation folder.
    fn keep(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir)
            .and_then(|_| gongwen_common::fsutil::write_atomic(&self.dir.join(name), bytes, 0o644))
            .map_err(|e| format!("cannot keep {name} in {}: {e}", self.dir.display()))
    }

    /// Take what the hub of `from` offered about `domain`. `Ok(true)`: it
    /// is new and kept; `Ok(false)`: held already. A statement (chain) is
    /// taken only for a domain our configuration routes through `from`; a
    /// CRL or directory only for `from` itself or such a domain, and only
    /// as signed by that domain's CA.
    pub(crate) fn take_offer(
        &self,
        from: &Domain,
        kind: PeerOfferKind,
        domain: &Domain,
        bytes: &[u8],
    ) -> Result<bool, String> {
        // Each update compares with what is held and then replaces it: two
        // at once (links both ways to one peer) could put an older list
        // back over a newer one.
        let _one_at_a_time = self.updating();
        let routed_via_from = self
            .config
            .peers
            .iter()
            .any(|p| &p.domain == from && p.routes.contains(domain));
        if domain != from && !routed_via_from {
            return Err(format!(
                "{domain} is not reached through {from} here (no routes entry for it)"
            ));
        }
        match kind {
            PeerOfferKind::Statement => {
                if domain == from {
                    return Err(format!("{from} needs no chain for itself"));
                }
                let chain = Chain::decode(bytes).map_err(|e| e.to_string())?;
                let from_ca = self
                    .peer(from)
                    .map(|p| p.ca.clone())
                    .ok_or_else(|| format!("{from} is not a peer"))?;
                let ca = chain
                    .verify(from_ca.as_ref(), domain, self.suite)
                    .map_err(|e| format!("the chain {from} offered for {domain}: {e}"))?;
                if chain.0.len() >= MAX_CHAIN {
                    return Err(format!("{domain} is more than {MAX_CHAIN} hops from here"));
                }
                if ca == self.our_ca.as_ref() {
                    return Err(format!("{from} offered our own CA as {domain}'s"));
                }
                let held = self.routed().get(domain).cloned();
                if let Some(h) = &held
                    && h.chain == chain
                {
                    return Ok(false);
                }
                let ca = CertificateDer::from(ca);
                let crl = held.filter(|h| h.ca == ca).and_then(|h| h.crl.clone());
                self.keep(&format!("{domain}.chain"), bytes)?;
                self.routed().insert(
                    domain.clone(),
                    Arc::new(RoutedTrust {
                        via: from.clone(),
                        chain,
                        ca,
                        crl,
                    }),
                );
                self.offers_changed();
                Ok(true)
            }
            PeerOfferKind::Crl if domain == from => {
                let new = self.take_crl_now(from, bytes)?;
                if new {
                    self.offers_changed();
                }
                Ok(new)
            }
            PeerOfferKind::Crl => {
                let Some(held) = self.routed().get(domain).cloned() else {
                    return Err(format!("no trust of {domain} is held yet"));
                };
                let crl = Crl::parse(bytes, &held.ca).map_err(|e| {
                    format!("the revocation list offered as {domain}'s cannot be used: {e}")
                })?;
                if let Some(old) = &held.crl {
                    if crl.this_update < old.this_update {
                        return Err(format!(
                            "the revocation list offered as {domain}'s is older than the one held"
                        ));
                    }
                    if crl.der == old.der {
                        return Ok(false);
                    }
                }
                self.keep(&format!("{domain}.crl"), &crl.der)?;
                self.routed().insert(
                    domain.clone(),
                    Arc::new(RoutedTrust {
                        via: held.via.clone(),
                        chain: held.chain.clone(),
                        ca: held.ca.clone(),
                        crl: Some(crl),
                    }),
                );
                self.offers_changed();
                Ok(true)
            }
            PeerOfferKind::Directory => {
                let ca = self
                    .ca_of(domain)
                    .ok_or_else(|| format!("no trust of {domain} is held yet"))?;
                let directory = UnitDirectory::verify(bytes, ca.as_ref())
                    .map_err(|e| format!("the unit directory offered as {domain}'s: {e}"))?;
                if let Some(held) = self.directories().get(domain).cloned() {
                    if held.bytes.as_slice() == bytes {
                        return Ok(false);
                    }
                    if directory.issued_ms < held.directory.issued_ms {
                        return Err(format!(
                            "the unit directory offered as {domain}'s is older than the one held"
                        ));
                    }
                }
                self.keep(&format!("{domain}.gwd"), bytes)?;
                self.directories().insert(
                    domain.clone(),
                    Arc::new(HeldDirectory::new(bytes, directory, domain)),
                );
                self.offers_changed();
                Ok(true)
            }
        }
    }

    /// What we hand the hub of `to`: for every other domain we trust, our
    /// chain for it, its CRL and its directory; and our own directory
    /// (`own_directory`, as our CA signed it). In a fixed order.
    pub(crate) fn offers_for(
        &self,
        to: &Domain,
        own_directory: Option<Vec<u8>>,
    ) -> Vec<(PeerOfferKind, Domain, Arc<Vec<u8>>)> {
        let mut out = Vec::new();
        if let Some(bytes) = own_directory {
            out.push((
                PeerOfferKind::Directory,
                self.domain.clone(),
                Arc::new(bytes),
            ));
        }
        out.extend(self.trust_items(Some(to), true));
        out
    }

    /// What our agents are handed: for every other domain, our chain for
    /// it (from our CA, which is theirs) and its CRL, so that they check
    /// signatures, key bindings and receipts of its units themselves.
    pub(crate) fn trust_for_agents(&self) -> Vec<(PeerOfferKind, Domain, Arc<Vec<u8>>)> {
        self.trust_items(None, false)
    }

    fn trust_items(
        &self,
        except: Option<&Domain>,
        with_directories: bool,
    ) -> Vec<(PeerOfferKind, Domain, Arc<Vec<u8>>)> {
        let mut out = Vec::new();
        let directories = self.directories().clone();
        let mut add = |d: &Domain, chain: Chain, crl: Option<&Crl>| {
            out.push((
                PeerOfferKind::Statement,
                d.clone(),
                Arc::new(chain.encode()),
            ));
            if let Some(crl) = crl {
                out.push((PeerOfferKind::Crl, d.clone(), Arc::new(crl.der.to_vec())));
            }
            if with_directories && let Some(dir) = directories.get(d) {
                out.push((PeerOfferKind::Directory, d.clone(), dir.bytes.clone()));
            }
        };
        for p in self.all() {
            if Some(&p.config.domain) == except {
                continue;
            }
            add(
                &p.config.domain,
                Chain(vec![p.statement_bytes.clone()]),
                p.crl.as_ref(),
            );
        }
        let routed: Vec<(Domain, Arc<RoutedTrust>)> = self
            .routed()
            .iter()
            .map(|(d, r)| (d.clone(), r.clone()))
            .collect();
        for (d, r) in routed {
            if Some(&d) == except || Some(&r.via) == except || r.chain.0.len() + 1 > MAX_CHAIN {
                continue;
            }
            let Some(via) = self.peer(&r.via) else {
                continue;
            };
            let mut chain = vec![via.statement_bytes.clone()];
            chain.extend(r.chain.0.iter().cloned());
            add(&d, Chain(chain), r.crl.as_ref());
        }
        out
    }

    /// The key binding of a remote address, from its domain's directory
    /// (signed by the unit itself: the sender checks it against that
    /// domain's CA).
    pub(crate) fn remote_binding(&self, address: &NodeId) -> Option<Vec<u8>> {
        let domain = address.domain()?;
        let unit = NodeId::parse(address.unit()).ok()?;
        let dirs = self.directories();
        dirs.get(&domain)?
            .directory
            .get(&unit)
            .map(|e| e.binding.clone())
    }

    /// The other domains' groups among `names` (`group@domain`), with
    /// their members.
    pub(crate) fn groups_named(&self, names: &[String]) -> BTreeMap<String, Vec<NodeId>> {
        let directories = self.directories();
        let mut out = BTreeMap::new();
        for name in names {
            let Some((_, domain)) = name.rsplit_once('@') else {
                continue;
            };
            let Ok(domain) = Domain::parse(domain) else {
                continue;
            };
            if let Some(members) = directories.get(&domain).and_then(|h| h.groups.get(name)) {
                out.insert(name.clone(), members.clone());
            }
        }
        out
    }

    /// Every group of the other domains (`group@domain`), for the address
    /// book.
    pub(crate) fn remote_groups(&self) -> Vec<(String, Vec<NodeId>)> {
        self.directories()
            .values()
            .flat_map(|h| h.groups.iter().map(|(g, m)| (g.clone(), m.clone())))
            .collect()
    }

    /// Every unit of the other domains we hold a directory of, as an
    /// address (`unit@domain`), with its name and role.
    pub(crate) fn remote_units(&self) -> Vec<(NodeId, String, gongwen_common::Role)> {
        let mut out = Vec::new();
        for (d, held) in self.directories().iter() {
            for e in &held.directory.entries {
                out.push((NodeId::remote(&e.id, d), e.name.clone(), e.role));
            }
        }
        out
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
        let _one_at_a_time = self.updating();
        let Some(held) = self.peer(domain) else {
            return Ok(false);
        };
        let statement = load_statement(&held.config, &self.our_ca, self.suite)?;
        if statement.0 == held.statement {
            return Ok(false);
        }
        let crl = if statement.0.peer_ca == held.statement.peer_ca {
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
        let _one_at_a_time = self.updating();
        self.take_crl_now(domain, der)
    }

    /// [`Federation::take_crl`], the update lock held by the caller.
    fn take_crl_now(&self, domain: &Domain, der: &[u8]) -> Result<bool, String> {
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
        self.keep(&format!("{domain}.crl"), &crl.der)?;
        let trust = PeerTrust::new(
            held.config.clone(),
            (held.statement.clone(), held.statement_bytes.clone()),
            Some(crl),
        )?;
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

    /// The peers linked now.
    pub(crate) fn linked(&self) -> Vec<Domain> {
        self.links()
            .iter()
            .filter(|(_, l)| !l.live.is_empty())
            .map(|(d, _)| d.clone())
            .collect()
    }

    /// A live link to `peer`, to ask it something.
    pub(crate) fn link_to(&self, peer: &Domain) -> Option<quinn::Connection> {
        self.links()
            .get(peer)
            .and_then(|l| l.live.first())
            .map(|k| k.conn.clone())
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

    /// One row per peer for `gongwen-hub peers`, then one per domain
    /// reached through a peer.
    pub(crate) fn rows(&self, now: OffsetDateTime) -> Vec<PeerRow> {
        let peers = self.all();
        let routed: Vec<(Domain, Arc<RoutedTrust>)> = self
            .routed()
            .iter()
            .map(|(d, r)| (d.clone(), r.clone()))
            .collect();
        let units: BTreeMap<Domain, usize> = self
            .directories()
            .iter()
            .map(|(d, h)| (d.clone(), h.directory.entries.len()))
            .collect();
        let links = self.links();
        let crl_fields = |crl: Option<&Crl>| {
            (
                crl.map(|c| rfc3339(c.this_update)),
                crl.map(|c| (now - c.this_update).whole_seconds().max(0)),
                crl.and_then(|c| c.next_update).map(rfc3339),
                crl.is_none_or(|c| c.is_stale(now)),
            )
        };
        let mut out: Vec<PeerRow> = peers
            .iter()
            .map(|p| {
                let l = links.get(&p.config.domain);
                let live = l.map(|l| l.live.as_slice()).unwrap_or_default();
                let (crl_issued, crl_age_seconds, crl_next_update, crl_stale) =
                    crl_fields(p.crl.as_ref());
                PeerRow {
                    domain: p.config.domain.clone(),
                    via: None,
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
                    units: units.get(&p.config.domain).copied(),
                    queued: 0,
                    crl_issued,
                    crl_age_seconds,
                    crl_next_update,
                    crl_stale,
                    last_problem: l.and_then(|l| l.last_problem.as_ref()).map(|(at, what)| {
                        ProblemRow {
                            at: rfc3339(*at),
                            what: what.clone(),
                        }
                    }),
                }
            })
            .collect();
        for (d, r) in routed {
            let (crl_issued, crl_age_seconds, crl_next_update, crl_stale) =
                crl_fields(r.crl.as_ref());
            out.push(PeerRow {
                connected: links.get(&r.via).is_some_and(|l| !l.live.is_empty()),
                units: units.get(&d).copied(),
                queued: 0,
                domain: d,
                via: Some(r.via.clone()),
                links: Vec::new(),
                dial: Vec::new(),
                routes: Vec::new(),
                crl_issued,
                crl_age_seconds,
                crl_next_update,
                crl_stale,
                last_problem: None,
            });
        }
        out
    }
}

/// `gongwen-hub peers --json`: one object per peer domain.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PeerRow {
    pub domain: Domain,
    /// For a domain reached through a peer: that peer.
    pub via: Option<Domain>,
    /// Linked (for a routed domain: the peer it is reached through is).
    pub connected: bool,
    pub links: Vec<LinkRow>,
    /// Where this hub dials it (empty: it dials us).
    pub dial: Vec<String>,
    pub routes: Vec<Domain>,
    /// Units in its CA's directory, if one is held.
    pub units: Option<usize>,
    /// Documents waiting here for its units (filled in by the caller).
    pub queued: u64,
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
