//! `hub.toml` and `agent.toml`: parsed strictly (unknown keys refused),
//! checked once, with every relative path taken relative to the file.
//! Every error names the file, the key and what is wrong.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::id::NodeId;
use crate::timefmt::parse_duration;

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("configuration file {path}: key `{key}`: {problem}")]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHub {
    listen: String,
    data_dir: PathBuf,
    tls: RawHubTls,
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    deadlines: RawDeadlines,
    #[serde(default)]
    escalation: Vec<RawEscalation>,
    max_document_size: Option<String>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    store: RawStore,
    log_format: Option<String>,
    metrics: Option<RawMetrics>,
    #[serde(default)]
    crypto: RawCrypto,
    federation: Option<RawFederation>,
}

/// `[federation]` in hub.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFederation {
    domain: String,
    #[serde(default)]
    peers: Vec<RawPeer>,
}

/// `[[federation.peers]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    domain: String,
    statement: PathBuf,
    #[serde(default)]
    addr: Vec<String>,
    #[serde(default)]
    routes: Vec<String>,
}

/// `[federation]`: this deployment's domain and the peer hubs it links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederationConfig {
    /// This deployment's name among the domains (`heilongjiang`).
    pub domain: crate::federation::Domain,
    pub peers: Vec<PeerConfig>,
}

/// One `[[federation.peers]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub domain: crate::federation::Domain,
    /// The statement our CA signed for it (`gongwen-certs federate`).
    pub statement: PathBuf,
    /// Where to dial it (`host:port`, tried in order); empty: this hub
    /// only accepts its connections.
    pub addr: Vec<String>,
    /// Domains reached through it (the national hub for the other
    /// provinces).
    pub routes: Vec<crate::federation::Domain>,
}

impl FederationConfig {
    /// The peer a document for `domain` goes to: the peer of that domain,
    /// or the one whose routes name it.
    pub fn next_hop(&self, domain: &crate::federation::Domain) -> Option<&PeerConfig> {
        self.peers
            .iter()
            .find(|p| &p.domain == domain)
            .or_else(|| self.peers.iter().find(|p| p.routes.contains(domain)))
    }
}

fn host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
}

fn federation(
    path: &Path,
    base: &Path,
    raw: Option<RawFederation>,
) -> Result<Option<FederationConfig>, ConfigError> {
    use crate::federation::Domain;
    let Some(raw) = raw else { return Ok(None) };
    let domain = Domain::parse(&raw.domain)
        .map_err(|e| invalid(path, "federation.domain", e.to_string()))?;
    let mut peers: Vec<PeerConfig> = Vec::new();
    for (i, p) in raw.peers.into_iter().enumerate() {
        let key = |k: &str| format!("federation.peers[{i}].{k}");
        let peer_domain =
            Domain::parse(&p.domain).map_err(|e| invalid(path, &key("domain"), e.to_string()))?;
        if peer_domain == domain {
            return Err(invalid(
                path,
                &key("domain"),
                format!("{peer_domain} is this hub's own domain (federation.domain)"),
            ));
        }
        if peers.iter().any(|q| q.domain == peer_domain) {
            return Err(invalid(
                path,
                &key("domain"),
                format!("{peer_domain} is listed twice"),
            ));
        }
        for a in &p.addr {
            if !host_port(a) {
                return Err(invalid(
                    path,
                    &key("addr"),
                    format!("{a:?} is not host:port such as \"10.1.0.1:7443\""),
                ));
            }
        }
        let mut routes = Vec::new();
        for r in &p.routes {
            let r = Domain::parse(r).map_err(|e| invalid(path, &key("routes"), e.to_string()))?;
            if r == domain || r == peer_domain {
                return Err(invalid(
                    path,
                    &key("routes"),
                    format!(
                        "{r} needs no route through {peer_domain}: it is {}",
                        if r == domain {
                            "this hub's own domain"
                        } else {
                            "the peer itself"
                        }
                    ),
                ));
            }
            if !routes.contains(&r) {
                routes.push(r);
            }
        }
        peers.push(PeerConfig {
            domain: peer_domain,
            statement: base.join(p.statement),
            addr: p.addr,
            routes,
        });
    }
    // One way to each domain: a domain routed through two peers, or both
    // routed and a peer itself, would make where a document goes depend on
    // the order of the file.
    let mut seen: BTreeMap<&crate::federation::Domain, &crate::federation::Domain> =
        BTreeMap::new();
    for p in &peers {
        for r in &p.routes {
            if peers.iter().any(|q| &q.domain == r) {
                return Err(invalid(
                    path,
                    "federation.peers",
                    format!(
                        "{r} is a peer of its own and also routed through {}",
                        p.domain
                    ),
                ));
            }
            if let Some(first) = seen.insert(r, &p.domain) {
                return Err(invalid(
                    path,
                    "federation.peers",
                    format!("{r} is routed through both {first} and {}", p.domain),
                ));
            }
        }
    }
    Ok(Some(FederationConfig { domain, peers }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCrypto {
    suite: Option<String>,
}

/// `[limits]` in hub.toml: what one unit may make the hub hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    queued_per_sender: Option<u64>,
    max_connections: Option<usize>,
    handshakes_per_address: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: String,
    per_unit: Option<bool>,
}

/// `[metrics]`: where `/metrics` (Prometheus) and `/healthz` are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// e.g. `127.0.0.1:9464`; plain HTTP, so keep it on loopback or the
    /// management network.
    pub listen: SocketAddr,
    /// `per_unit`: one series per unit for copies waiting and certificate
    /// expiry. `None`: while at most [`PER_UNIT_SERIES_UP_TO`] units are
    /// known (a national hub would otherwise serve 100,000 lines a scrape).
    pub per_unit: Option<bool>,
}

/// Units up to which the hub's /metrics has per-unit series by default.
pub const PER_UNIT_SERIES_UP_TO: usize = 1000;

fn metrics(path: &Path, raw: Option<RawMetrics>) -> Result<Option<MetricsConfig>, ConfigError> {
    raw.map(|m| {
        m.listen
            .parse::<SocketAddr>()
            .map(|listen| MetricsConfig {
                listen,
                per_unit: m.per_unit,
            })
            .map_err(|_| {
                invalid(
                    path,
                    "metrics.listen",
                    format!(
                        "{:?} is not an address:port such as \"127.0.0.1:9464\"",
                        m.listen
                    ),
                )
            })
    })
    .transpose()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    postgres: Option<String>,
    lease: Option<String>,
    poll: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHubTls {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    crl: PathBuf,
    directory: Option<PathBuf>,
    sm2_sign_key: Option<PathBuf>,
    sm2_enc_key: Option<PathBuf>,
    sm2_binding: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadlines {
    normal: Option<String>,
    urgent: Option<String>,
    #[serde(rename = "extra-urgent")]
    extra_urgent: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    after: String,
    action: String,
    #[serde(default)]
    notify: Vec<String>,
}

/// `hub = "a:7443"` or `hub = ["a:7443", "b:7443"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    node_id: String,
    hub: OneOrMany,
    hub_name: String,
    root: PathBuf,
    connect_timeout: Option<String>,
    max_document_size: Option<String>,
    log_format: Option<String>,
    outbox_settle: Option<String>,
    outbox_rescan: Option<String>,
    tls: RawAgentTls,
    console: Option<RawConsole>,
    metrics: Option<RawMetrics>,
    seals: Option<RawSeals>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeals {
    #[serde(default)]
    roots: Vec<PathBuf>,
    #[serde(default)]
    crls: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    listen: String,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgentTls {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    encryption_key: Option<PathBuf>,
    sm2_sign_key: Option<PathBuf>,
    sm2_enc_key: Option<PathBuf>,
    sm2_binding: Option<PathBuf>,
}

/// The hub's TLS material.
#[derive(Debug, Clone)]
pub struct HubTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub crl: PathBuf,
    /// The CA's signed unit directory (`gongwen-certs enroll` writes it):
    /// enrolled units receive before their agent first connects. Reloaded
    /// when it changes, like the CRL.
    pub directory: Option<PathBuf>,
    /// The hub's SM2 keys (GM suite only).
    pub sm2: Sm2Files,
}

/// Where a unit's (or the hub's) SM2 keys and their binding are, used only
/// in a GM deployment: `[tls] sm2_sign_key`, `sm2_enc_key` and
/// `sm2_binding`, by default beside `tls.key` under the names
/// `gongwen-certs issue` and `gongwen-agent keygen` give them
/// (`<id>.sm2-sign.key`, `<id>.sm2-enc.key`, `<id>.sm2.binding`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sm2Files {
    pub sign_key: PathBuf,
    pub enc_key: PathBuf,
    pub binding: PathBuf,
}

impl Sm2Files {
    /// From `[tls] sm2_sign_key`, `sm2_enc_key`, `sm2_binding` as written.
    fn from_raw(base: &Path, key: &Path, raw: [Option<PathBuf>; 3]) -> Sm2Files {
        let [sign_key, enc_key, binding] = raw;
        let beside = Sm2Files::beside(&base.join(key));
        let given = |p: Option<PathBuf>, default: PathBuf| p.map_or(default, |p| base.join(p));
        Sm2Files {
            sign_key: given(sign_key, beside.sign_key),
            enc_key: given(enc_key, beside.enc_key),
            binding: given(binding, beside.binding),
        }
    }

    /// The files beside the certificate key `key` (`<dir>/<id>.key`), as
    /// `gongwen-certs issue` and `gongwen-agent keygen` name them.
    pub fn beside(key: &Path) -> Sm2Files {
        let stem = key
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let named = |suffix: &str| key.with_file_name(format!("{stem}{suffix}"));
        Sm2Files {
            sign_key: named(".sm2-sign.key"),
            enc_key: named(".sm2-enc.key"),
            binding: named(".sm2.binding"),
        }
    }
}

/// Acknowledgment deadline for each urgency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlines {
    pub normal: Duration,
    pub urgent: Duration,
    pub extra_urgent: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            normal: Duration::from_secs(24 * 3600),
            urgent: Duration::from_secs(4 * 3600),
            extra_urgent: Duration::from_secs(3600),
        }
    }
}

/// What an escalation step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscalationAction {
    /// 催办: an urging notice to the unit that has not signed for it.
    Urge,
    /// 督办: an escalation notice to the supervisors listed in `notify`.
    Supervise,
}

/// One `[[escalation]]` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationStep {
    /// How long after the deadline the step runs.
    pub after: Duration,
    pub action: EscalationAction,
    pub notify: Vec<NodeId>,
}

/// A checked `hub.toml`.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The file it came from (for messages).
    pub path: PathBuf,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tls: HubTls,
    pub groups: BTreeMap<String, Vec<NodeId>>,
    pub deadlines: Deadlines,
    pub escalation: Vec<EscalationStep>,
    /// Largest document (ciphertext bytes) the hub takes.
    pub max_document_size: u64,
    /// Most documents one unit may have queued, not yet delivered, for one
    /// unit that is offline; past it the hub asks the sender to retry
    /// later (`[limits] queued_per_sender`, default
    /// [`DEFAULT_MAX_QUEUED_PER_SENDER`]).
    pub max_queued_per_sender: u64,
    /// `[limits] max_connections`: most units connected at once; `None`:
    /// from the enrolled units (the hub's `rules::admission`).
    pub max_connections: Option<usize>,
    /// `[limits] handshakes_per_address`: most unfinished handshakes from
    /// one address (units behind one NAT); `None`: the hub's default.
    pub handshakes_per_address: Option<usize>,
    pub store: StoreConfig,
    /// How the daemon logs (`log_format = "json"`: one JSON object a line).
    pub log_format: LogFormat,
    /// `/metrics` and `/healthz`; off when the section is absent.
    pub metrics: Option<MetricsConfig>,
    /// `[crypto] suite`: the algorithms of documents and receipts; must be
    /// the CA's (see [`crate::suite`]).
    pub suite: crate::suite::Suite,
    /// `[federation]`; `None`: this hub is the whole world.
    pub federation: Option<FederationConfig>,
}

/// How a daemon writes its log to standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines of text, as journald shows them.
    #[default]
    Text,
    /// One JSON object per line: time, level, message, the span fields.
    Json,
}

impl LogFormat {
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

fn log_format(path: &Path, raw: Option<&str>) -> Result<LogFormat, ConfigError> {
    match raw {
        None => Ok(LogFormat::Text),
        Some(s) => LogFormat::parse(s).ok_or_else(|| {
            invalid(
                path,
                "log_format",
                format!("{s:?} is neither \"text\" nor \"json\""),
            )
        }),
    }
}

/// `[store]` in `hub.toml`: where the hub keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// A PostgreSQL connection string (libpq key=value or URL form; several
    /// hosts for failover). `None`: the embedded store in `data_dir`.
    pub postgres: Option<String>,
    /// How long a hub's claim on a delivery or a push lasts without being
    /// renewed: after a hub dies, its claims pass to the others within it.
    pub lease: Duration,
    /// How often a hub looks for work queued by another hub, in case a
    /// notification was lost with a dropped connection.
    pub poll: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            postgres: None,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(5),
        }
    }
}

/// The agent's TLS material.
#[derive(Debug, Clone)]
pub struct AgentTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// The unit's X25519 document key made at enrollment (32 raw bytes,
    /// 0600); absent, the agent makes one in `<root>/state/enc.key`.
    /// Standard suite only.
    pub encryption_key: Option<PathBuf>,
    /// The unit's SM2 keys (GM suite only).
    pub sm2: Sm2Files,
}

/// A checked `agent.toml`.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub path: PathBuf,
    pub node_id: NodeId,
    /// `host:port` of each hub serving the province (one, or several
    /// sharing a store), resolved at each connection attempt; on a lost
    /// link the agent tries the next.
    pub hubs: Vec<String>,
    /// The name the hub's certificate must carry.
    pub hub_name: String,
    pub root: PathBuf,
    /// How long a connection attempt may go unanswered before the hub
    /// counts as unreachable (default 10 s).
    pub connect_timeout: Duration,
    /// Largest document (all files together) the agent sends.
    pub max_document_size: u64,
    /// How long a drop must stay unchanged before it is taken (default 1 s).
    pub outbox_settle: Duration,
    /// How often the outbox is rescanned without file-system events (2 s).
    pub outbox_rescan: Duration,
    pub tls: AgentTls,
    /// The unit's web console; off when the section is absent.
    pub console: Option<ConsoleConfig>,
    /// How the daemon logs (`log_format = "json"`: one JSON object a line).
    pub log_format: LogFormat,
    /// `/metrics` and `/healthz`; off when the section is absent.
    pub metrics: Option<MetricsConfig>,
    /// `[seals]`: what electronic seals (验章) are checked against.
    pub seals: SealsConfig,
}

/// `[seals]` in `agent.toml`: the certificates of the authorities that
/// issue seal makers' and signers' certificates (PEM or DER; roots and any
/// intermediates), and their revocation lists. Without roots, every seal's
/// verdict is 无法验证.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealsConfig {
    pub roots: Vec<PathBuf>,
    pub crls: Vec<PathBuf>,
}

/// `[console]` in `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// Where the console listens, e.g. `127.0.0.1:8480`.
    pub listen: SocketAddr,
    /// HTTPS instead of HTTP: the server certificate (chain) and its key,
    /// PEM, for the unit's LAN.
    pub tls: Option<ConsoleTls>,
}

/// The console's HTTPS certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        // toml's message names the key and shows the line; keep it whole
        // but on as few lines as it needs.
        message: e.to_string().trim_end().to_owned(),
    })
}

fn base_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn invalid(path: &Path, key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        key: key.to_owned(),
        problem: problem.into(),
    }
}

fn duration(path: &Path, key: &str, s: &str) -> Result<Duration, ConfigError> {
    parse_duration(s).map_err(|e| invalid(path, key, e.to_string()))
}

/// Largest document by default: 4 GiB.
pub const DEFAULT_MAX_DOCUMENT: u64 = 4 << 30;
/// Documents one unit may have waiting at the hub for one offline unit, by
/// default: far more than a day's notices, far fewer than a flood that
/// would bury the supervision office's lists.
pub const DEFAULT_MAX_QUEUED_PER_SENDER: u64 = 1000;

/// Parse a size such as `"512KiB"`, `"64MiB"`, `"4GiB"` or a plain byte count.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn size(path: &Path, key: &str, s: &str) -> Result<u64, ConfigError> {
    match parse_size(s) {
        Some(0) | None => Err(invalid(
            path,
            key,
            format!("{s:?} is not a size: write e.g. \"64MiB\" or \"4GiB\""),
        )),
        Some(n) => Ok(n),
    }
}

fn node_id(path: &Path, key: &str, s: &str) -> Result<NodeId, ConfigError> {
    NodeId::parse(s).map_err(|e| invalid(path, key, e.to_string()))
}

impl HubConfig {
    /// Read and check a hub configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(path, &read(path)?)
    }

    /// Check a hub configuration given as text; `path` locates relative paths.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawHub = parse(path, text)?;
        let base = base_dir(path);
        let listen = raw.listen.parse::<SocketAddr>().map_err(|_| {
            invalid(
                path,
                "listen",
                format!(
                    "{:?} is not an address:port such as \"127.0.0.1:7443\" or \"[::]:7443\"",
                    raw.listen
                ),
            )
        })?;
        let mut groups = BTreeMap::new();
        for (name, members) in raw.groups {
            let key = format!("groups.{name}");
            // Group names share the outbox namespace with node ids.
            NodeId::parse(&name).map_err(|e| invalid(path, &key, e.to_string()))?;
            if members.is_empty() {
                return Err(invalid(path, &key, "a group needs at least one member"));
            }
            // A group may name units of other domains (`gov@jilin`).
            let members = members
                .iter()
                .map(|m| NodeId::parse_address(m).map_err(|e| invalid(path, &key, e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            groups.insert(name, members);
        }
        let defaults = Deadlines::default();
        let d = &raw.deadlines;
        let deadlines = Deadlines {
            normal: d
                .normal
                .as_deref()
                .map(|s| duration(path, "deadlines.normal", s))
                .transpose()?
                .unwrap_or(defaults.normal),
            urgent: d
                .urgent
                .as_deref()
                .map(|s| duration(path, "deadlines.urgent", s))
                .transpose()?
                .unwrap_or(defaults.urgent),
            extra_urgent: d
                .extra_urgent
                .as_deref()
                .map(|s| duration(path, "deadlines.extra-urgent", s))
                .transpose()?
                .unwrap_or(defaults.extra_urgent),
        };
        let mut escalation = Vec::new();
        for (i, step) in raw.escalation.iter().enumerate() {
            let key = |k: &str| format!("escalation[{i}].{k}");
            let action = match step.action.as_str() {
                "urge" => EscalationAction::Urge,
                "supervise" => EscalationAction::Supervise,
                other => {
                    return Err(invalid(
                        path,
                        &key("action"),
                        format!("{other:?} is not an action: use \"urge\" or \"supervise\""),
                    ));
                }
            };
            let notify = step
                .notify
                .iter()
                .map(|n| node_id(path, &key("notify"), n))
                .collect::<Result<Vec<_>, _>>()?;
            if action == EscalationAction::Supervise && notify.is_empty() {
                return Err(invalid(
                    path,
                    &key("notify"),
                    "a \"supervise\" step must name at least one supervisor node",
                ));
            }
            let after = duration(path, &key("after"), &step.after)?;
            if let Some(prev) = escalation.last().map(|s: &EscalationStep| s.after)
                && after < prev
            {
                return Err(invalid(
                    path,
                    &key("after"),
                    "steps must be listed in order of `after`",
                ));
            }
            escalation.push(EscalationStep {
                after,
                action,
                notify,
            });
        }
        let max_document_size = match raw.max_document_size.as_deref() {
            Some(s) => size(path, "max_document_size", s)?,
            None => DEFAULT_MAX_DOCUMENT,
        };
        let defaults = StoreConfig::default();
        let postgres = match raw.store.postgres {
            Some(p) if p.trim().is_empty() => {
                return Err(invalid(
                    path,
                    "store.postgres",
                    "is empty: give a connection string such as \"host=db1,db2 dbname=gongwen user=gongwen target_session_attrs=read-write\", or remove the key for the embedded store",
                ));
            }
            p => p,
        };
        let store = StoreConfig {
            postgres,
            lease: raw
                .store
                .lease
                .as_deref()
                .map(|s| duration(path, "store.lease", s))
                .transpose()?
                .unwrap_or(defaults.lease),
            poll: raw
                .store
                .poll
                .as_deref()
                .map(|s| duration(path, "store.poll", s))
                .transpose()?
                .unwrap_or(defaults.poll),
        };
        if store.lease < Duration::from_secs(1) {
            return Err(invalid(path, "store.lease", "must be at least 1s"));
        }
        let log_format = log_format(path, raw.log_format.as_deref())?;
        let suite = match raw.crypto.suite.as_deref() {
            None => crate::suite::Suite::Standard,
            Some(s) => crate::suite::Suite::parse(s)
                .map_err(|e| invalid(path, "crypto.suite", e.to_string()))?,
        };
        let max_queued_per_sender = raw
            .limits
            .queued_per_sender
            .unwrap_or(DEFAULT_MAX_QUEUED_PER_SENDER);
        if max_queued_per_sender == 0 {
            return Err(invalid(
                path,
                "limits.queued_per_sender",
                "must be at least 1 (it is how many documents one unit may have waiting for an offline one)",
            ));
        }
        for (key, value) in [
            ("limits.max_connections", raw.limits.max_connections),
            (
                "limits.handshakes_per_address",
                raw.limits.handshakes_per_address,
            ),
        ] {
            if value == Some(0) {
                return Err(invalid(
                    path,
                    key,
                    "must be at least 1 (leave it out for the default)",
                ));
            }
        }
        Ok(HubConfig {
            federation: federation(path, &base, raw.federation)?,
            suite,
            log_format,
            metrics: metrics(path, raw.metrics)?,
            path: path.to_owned(),
            max_document_size,
            max_queued_per_sender,
            max_connections: raw.limits.max_connections,
            handshakes_per_address: raw.limits.handshakes_per_address,
            store,
            listen,
            data_dir: base.join(raw.data_dir),
            tls: HubTls {
                sm2: Sm2Files::from_raw(
                    &base,
                    &raw.tls.key,
                    [
                        raw.tls.sm2_sign_key,
                        raw.tls.sm2_enc_key,
                        raw.tls.sm2_binding,
                    ],
                ),
                cert: base.join(raw.tls.cert),
                key: base.join(raw.tls.key),
                ca: base.join(raw.tls.ca),
                crl: base.join(raw.tls.crl),
                directory: raw.tls.directory.map(|d| base.join(d)),
            },
            groups,
            deadlines,
            escalation,
        })
    }
}

impl AgentConfig {
    /// Read and check an agent configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(path, &read(path)?)
    }

    /// Check an agent configuration given as text.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawAgent = parse(path, text)?;
        let base = base_dir(path);
        let node_id = node_id(path, "node_id", &raw.node_id)?;
        let hubs = match raw.hub {
            OneOrMany::One(h) => vec![h],
            OneOrMany::Many(h) => h,
        };
        if hubs.is_empty() {
            return Err(invalid(
                path,
                "hub",
                "names no hub; give \"host:port\" or a list of them",
            ));
        }
        for hub in &hubs {
            if hub
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return Err(invalid(
                    path,
                    "hub",
                    format!("{hub:?} is not host:port such as \"127.0.0.1:7443\""),
                ));
            }
        }
        if raw.hub_name.is_empty() {
            return Err(invalid(path, "hub_name", "must name the hub's certificate"));
        }
        let connect_timeout = match raw.connect_timeout.as_deref() {
            Some(s) => duration(path, "connect_timeout", s)?,
            None => Duration::from_secs(10),
        };
        if connect_timeout.is_zero() {
            return Err(invalid(path, "connect_timeout", "must be longer than 0s"));
        }
        let optional = |key: &str, v: &Option<String>, default: Duration| match v.as_deref() {
            Some(s) => duration(path, key, s),
            None => Ok(default),
        };
        let outbox_settle = optional("outbox_settle", &raw.outbox_settle, Duration::from_secs(1))?;
        let outbox_rescan = optional("outbox_rescan", &raw.outbox_rescan, Duration::from_secs(2))?;
        if outbox_rescan.is_zero() {
            return Err(invalid(path, "outbox_rescan", "must be longer than 0s"));
        }
        let max_document_size = match raw.max_document_size.as_deref() {
            Some(s) => size(path, "max_document_size", s)?,
            None => DEFAULT_MAX_DOCUMENT,
        };
        let console = match raw.console {
            None => None,
            Some(c) => {
                let listen = c.listen.parse::<SocketAddr>().map_err(|_| {
                    invalid(
                        path,
                        "console.listen",
                        format!(
                            "{:?} is not an address:port such as \"127.0.0.1:8480\"",
                            c.listen
                        ),
                    )
                })?;
                let tls = match (c.tls_cert, c.tls_key) {
                    (None, None) => None,
                    (Some(cert), Some(key)) => Some(ConsoleTls {
                        cert: base.join(cert),
                        key: base.join(key),
                    }),
                    (Some(_), None) => {
                        return Err(invalid(
                            path,
                            "console.tls_key",
                            "missing: HTTPS needs both tls_cert and tls_key",
                        ));
                    }
                    (None, Some(_)) => {
                        return Err(invalid(
                            path,
                            "console.tls_cert",
                            "missing: HTTPS needs both tls_cert and tls_key",
                        ));
                    }
                };
                Some(ConsoleConfig { listen, tls })
            }
        };
        let log_format = log_format(path, raw.log_format.as_deref())?;
        if raw.metrics.as_ref().is_some_and(|m| m.per_unit.is_some()) {
            return Err(invalid(
                path,
                "metrics.per_unit",
                "is a hub setting: an agent's /metrics speaks only of its own unit",
            ));
        }
        let seals = raw
            .seals
            .map(|s| SealsConfig {
                roots: s.roots.iter().map(|r| base.join(r)).collect(),
                crls: s.crls.iter().map(|c| base.join(c)).collect(),
            })
            .unwrap_or_default();
        Ok(AgentConfig {
            log_format,
            metrics: metrics(path, raw.metrics)?,
            seals,
            path: path.to_owned(),
            max_document_size,
            console,
            outbox_settle,
            outbox_rescan,
            node_id,
            hubs,
            hub_name: raw.hub_name,
            root: base.join(raw.root),
            connect_timeout,
            tls: AgentTls {
                sm2: Sm2Files::from_raw(
                    &base,
                    &raw.tls.key,
                    [
                        raw.tls.sm2_sign_key,
                        raw.tls.sm2_enc_key,
                        raw.tls.sm2_binding,
                    ],
                ),
                cert: base.join(raw.tls.cert),
                key: base.join(raw.tls.key),
                ca: base.join(raw.tls.ca),
                encryption_key: raw.tls.encryption_key.map(|k| base.join(k)),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUB: &str = r#"
listen   = "127.0.0.1:7443"
data_dir = "hub-data"
[tls]
cert = "hub.crt"
key  = "hub.key"
ca   = "ca.crt"
crl  = "crl.pem"
[groups]
cities = ["harbin-gov", "daqing-gov"]
[deadlines]
normal       = "24h"
urgent       = "4h"
extra-urgent = "1h"
[[escalation]]
after  = "0s"
action = "urge"
[[escalation]]
after  = "2h"
action = "supervise"
notify = ["prov-supervision"]
"#;

    const AGENT: &str = r#"
node_id   = "harbin-gov"
hub       = "127.0.0.1:7443"
hub_name  = "hub"
root      = "harbin-data"
[tls]
cert = "harbin-gov.crt"
key  = "harbin-gov.key"
ca   = "ca.crt"
"#;

    #[test]
    fn the_design_documents_hub_example_loads() {
        let c = HubConfig::from_toml(Path::new("/etc/gongwen/hub.toml"), HUB).unwrap();
        assert_eq!(c.listen.port(), 7443);
        assert_eq!(c.data_dir, Path::new("/etc/gongwen/hub-data"));
        assert_eq!(c.tls.crl, Path::new("/etc/gongwen/crl.pem"));
        assert_eq!(c.groups["cities"].len(), 2);
        assert_eq!(c.deadlines.urgent, Duration::from_secs(4 * 3600));
        assert_eq!(c.escalation[1].action, EscalationAction::Supervise);
        assert_eq!(c.escalation[1].notify[0].as_str(), "prov-supervision");
    }

    #[test]
    fn the_design_documents_agent_example_loads() {
        let c = AgentConfig::from_toml(Path::new("conf/agent.toml"), AGENT).unwrap();
        assert_eq!(c.node_id.as_str(), "harbin-gov");
        assert_eq!(c.root, Path::new("conf/harbin-data"));
        assert_eq!(c.tls.key, Path::new("conf/harbin-gov.key"));
        // The SM2 files default to beside the key, named as issued.
        assert_eq!(
            c.tls.sm2,
            Sm2Files {
                sign_key: "conf/harbin-gov.sm2-sign.key".into(),
                enc_key: "conf/harbin-gov.sm2-enc.key".into(),
                binding: "conf/harbin-gov.sm2.binding".into(),
            }
        );
    }

    /// The examples the Debian packages install in /etc/gongwen load, with
    /// the Debian paths.
    #[test]
    fn the_packaged_examples_load() {
        let hub = HubConfig::from_toml(
            Path::new("/etc/gongwen/hub.toml"),
            include_str!("../../deploy/config/hub.toml.example"),
        )
        .unwrap();
        assert_eq!(hub.data_dir, Path::new("/var/lib/gongwen-hub"));
        assert_eq!(
            hub.tls.directory.as_deref(),
            Some(Path::new("/etc/gongwen/directory.gwd"))
        );
        assert_eq!(
            hub.metrics.map(|m| m.listen.to_string()).as_deref(),
            Some("127.0.0.1:9464")
        );
        let agent = AgentConfig::from_toml(
            Path::new("/etc/gongwen/agent.toml"),
            include_str!("../../deploy/config/agent.toml.example"),
        )
        .unwrap();
        assert_eq!(agent.root, Path::new("/var/lib/gongwen-agent"));
        assert_eq!(
            agent.tls.encryption_key.as_deref(),
            Some(Path::new("/etc/gongwen/harbin-gov.enc.key"))
        );
    }

    #[test]
    fn the_design_documents_federation_example_loads_and_routes() {
        let text = format!(
            "{HUB}\n[federation]\ndomain = \"heilongjiang\"\n[[federation.peers]]\ndomain = \"national\"\nstatement = \"federation/national.fed\"\naddr = [\"10.1.0.1:7443\"]\nroutes = [\"jilin\"]\n[[federation.peers]]\ndomain = \"harbin-city\"\nstatement = \"federation/harbin-city.fed\"\n"
        );
        let c = HubConfig::from_toml(Path::new("/etc/gongwen/hub.toml"), &text).unwrap();
        let f = c.federation.unwrap();
        assert_eq!(f.domain.as_str(), "heilongjiang");
        assert_eq!(
            f.peers[0].statement,
            Path::new("/etc/gongwen/federation/national.fed")
        );
        let hop = |d: &str| {
            f.next_hop(&crate::federation::Domain::parse(d).unwrap())
                .map(|p| p.domain.to_string())
        };
        assert_eq!(hop("jilin").as_deref(), Some("national"));
        assert_eq!(hop("national").as_deref(), Some("national"));
        assert_eq!(hop("harbin-city").as_deref(), Some("harbin-city"));
        assert_eq!(hop("liaoning"), None);
    }

    #[test]
    fn federation_mistakes_are_named() {
        let peer = |domain: &str, extra: &str| {
            format!(
                "[[federation.peers]]\ndomain = \"{domain}\"\nstatement = \"{domain}.fed\"\n{extra}\n"
            )
        };
        for (peers, says) in [
            (peer("heilongjiang", ""), "this hub's own domain"),
            (
                format!("{}{}", peer("national", ""), peer("national", "")),
                "listed twice",
            ),
            (peer("national", "addr = [\"10.1.0.1\"]"), "host:port"),
            (
                peer("national", "routes = [\"national\"]"),
                "the peer itself",
            ),
            (
                format!(
                    "{}{}",
                    peer("national", "routes = [\"jilin\"]"),
                    peer("east", "routes = [\"jilin\"]")
                ),
                "routed through both national and east",
            ),
            (
                format!(
                    "{}{}",
                    peer("national", "routes = [\"jilin\"]"),
                    peer("jilin", "")
                ),
                "a peer of its own",
            ),
            (peer("Jilin", ""), "not a valid domain"),
        ] {
            let text = format!("{HUB}\n[federation]\ndomain = \"heilongjiang\"\n{peers}");
            let e = hub_error(&text);
            assert!(e.contains(says), "{says:?} not in {e}");
        }
    }

    #[test]
    fn a_bad_metrics_address_is_named() {
        let text = format!("{HUB}\n[metrics]\nlisten = \"localhost\"\n");
        let e = hub_error(&text);
        assert!(
            e.contains("metrics.listen") && e.contains("127.0.0.1:9464"),
            "{e}"
        );
    }

    fn hub_error(text: &str) -> String {
        HubConfig::from_toml(Path::new("hub.toml"), text)
            .unwrap_err()
            .to_string()
    }

    fn agent_error(text: &str) -> String {
        AgentConfig::from_toml(Path::new("agent.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn invalid_hub_configs_name_file_and_key() {
        let cases = [
            (HUB.replace("data_dir", "dta_dir"), "dta_dir"),
            (format!("{HUB}\n[extra]\nx = 1\n"), "extra"),
            (HUB.replace("127.0.0.1:7443", "localhost"), "listen"),
            (HUB.replace("\"4h\"", "\"4 hours\""), "deadlines.urgent"),
            (HUB.replace("\"urge\"", "\"nag\""), "escalation[0].action"),
            (
                HUB.replace("\"harbin-gov\",", "\"Harbin\","),
                "groups.cities",
            ),
            (
                HUB.replace("notify = [\"prov-supervision\"]", ""),
                "escalation[1].notify",
            ),
            (HUB.replace("crl  = \"crl.pem\"", ""), "crl"),
            (format!("log_format = \"xml\"\n{HUB}"), "log_format"),
        ];
        for (text, key) in cases {
            let e = hub_error(&text);
            assert!(e.contains("hub.toml"), "{e}");
            assert!(e.contains(key), "{key} not named in: {e}");
        }
    }

    #[test]
    fn an_agent_names_one_hub_or_several() {
        let one = AgentConfig::from_toml(Path::new("agent.toml"), AGENT).unwrap();
        assert_eq!(one.hubs, ["127.0.0.1:7443"]);
        let two = AGENT.replace(
            "\"127.0.0.1:7443\"",
            "[\"10.0.0.1:7443\", \"10.0.0.2:7443\"]",
        );
        let two = AgentConfig::from_toml(Path::new("agent.toml"), &two).unwrap();
        assert_eq!(two.hubs, ["10.0.0.1:7443", "10.0.0.2:7443"]);
    }

    #[test]
    fn invalid_agent_configs_name_file_and_key() {
        let cases = [
            (
                AGENT.replace("harbin-gov\"\nhub", "Harbin\"\nhub"),
                "node_id",
            ),
            (AGENT.replace("127.0.0.1:7443", "127.0.0.1"), "hub"),
            (AGENT.replace("\"127.0.0.1:7443\"", "[]"), "hub"),
            (
                AGENT.replace("\"127.0.0.1:7443\"", "[\"10.0.0.1:7443\", \"10.0.0.2\"]"),
                "hub",
            ),
            (format!("{AGENT}\nspeed = 3\n"), "speed"),
            (AGENT.replace("[tls]", "[tsl]"), "tsl"),
            (
                format!("{AGENT}\n[console]\nlisten = \"8480\"\n"),
                "console.listen",
            ),
            (
                format!("{AGENT}\n[console]\nlisten = \"127.0.0.1:8480\"\ntls_cert = \"c.pem\"\n"),
                "console.tls_key",
            ),
            (
                format!("{AGENT}\n[console]\nlisten = \"127.0.0.1:8480\"\ntls_key = \"k.pem\"\n"),
                "console.tls_cert",
            ),
        ];
        for (text, key) in cases {
            let e = agent_error(&text);
            assert!(e.contains("agent.toml"), "{e}");
            assert!(e.contains(key), "{key} not named in: {e}");
        }
    }
}
