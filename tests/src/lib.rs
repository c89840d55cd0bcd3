//! Test fixtures: a real CA, a real hub and real agents on 127.0.0.1 with
//! port 0, each in its own temporary directory. Everything is waited for
//! through readiness signals with a bounded wait and a clear message.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test fixtures: failing loudly is the point

pub mod browser;
pub mod federation;
pub mod flood;
pub mod pg;
pub mod prom;
pub mod proxy;
pub mod raw;
pub mod resume;
pub mod tools;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use gongwen_agent::{Agent, LinkState};
use gongwen_certs::{Ca, IssueRequest, Validity};
use gongwen_common::config::{AgentConfig, HubConfig};
use gongwen_common::suite::Suite;
use gongwen_common::{NodeId, Role};
use gongwen_hub::Hub;
use gongwen_hub::ops::control::{self, Request};
use gongwen_hub::state::registry::NodeRow;
use tempfile::TempDir;
use time::OffsetDateTime;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The longest any single readiness wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Log to the test's captured output (shown when a test fails).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// The suite the integration tests run on: `GONGWEN_TEST_SUITE=gm` runs
/// the same tests on SM2/SM3/SM4 (CI runs the exchange, receipt, sign-for,
/// recall and escalation tests both ways); standard otherwise.
pub fn test_suite() -> Suite {
    match std::env::var("GONGWEN_TEST_SUITE") {
        Ok(s) => Suite::parse(&s).unwrap_or_else(|e| panic!("GONGWEN_TEST_SUITE: {e}")),
        Err(_) => Suite::Standard,
    }
}

/// A deployment in a temporary directory: a CA and the hub's certificate.
#[derive(Debug)]
pub struct Net {
    pub dir: TempDir,
    ca: Mutex<Ca>,
    suite: Suite,
}

impl Net {
    /// A deployment on the suite [`test_suite`] names.
    pub fn new() -> Net {
        Net::for_suite(test_suite())
    }

    /// A deployment whose CA was made for `suite`: in a GM one every
    /// certificate comes with the unit's SM2 keys and their binding, and
    /// the hub's configuration says `[crypto] suite = "gm"`.
    pub fn for_suite(suite: Suite) -> Net {
        init_logging();
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let ca = Ca::init_for(&dir.path().join("ca"), "test CA", now, 30, 30, suite).unwrap();
        let net = Net {
            dir,
            ca: Mutex::new(ca),
            suite,
        };
        net.issue("hub", Role::Hub);
        net
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn ca(&self) -> std::sync::MutexGuard<'_, Ca> {
        self.ca.lock().unwrap()
    }

    /// Issue a certificate valid from now for 30 days into `<dir>/<id>/`.
    pub fn issue(&self, id: &str, role: Role) -> PathBuf {
        let now = OffsetDateTime::now_utc();
        self.issue_with(id, role, Validity::days_from(now, 30))
    }

    pub fn issue_with(&self, id: &str, role: Role, validity: Validity) -> PathBuf {
        self.issue_as(id, role, None, validity)
    }

    /// Issue a certificate that names the unit (哈尔滨市人民政府), as
    /// enrollment does: what the directory and the console show.
    pub fn issue_named(&self, id: &str, role: Role, name: &str) -> PathBuf {
        let now = OffsetDateTime::now_utc();
        self.issue_as(id, role, Some(name), Validity::days_from(now, 30))
    }

    fn issue_as(&self, id: &str, role: Role, name: Option<&str>, validity: Validity) -> PathBuf {
        let out = self.path().join(id);
        let id = NodeId::parse(id).unwrap();
        let req = IssueRequest {
            id: id.clone(),
            role,
            name: name.map(str::to_owned),
            dns: Vec::new(),
            ips: Vec::new(),
            validity,
            renew: true,
        };
        let mut ca = self.ca();
        let now = OffsetDateTime::now_utc();
        let issued = ca.issue(&req, now).unwrap();
        ca.write_issued(&out, &id, &issued).unwrap();
        if self.suite == Suite::Gm {
            let keys = ca.make_sm2_keys(&id, &issued, now).unwrap();
            ca.write_sm2_keys(&out, &id, &keys).unwrap();
        }
        out
    }

    pub fn revoke(&self, id: &str) {
        let id = NodeId::parse(id).unwrap();
        self.ca()
            .revoke(&id, "key-compromise", OffsetDateTime::now_utc(), 30)
            .unwrap();
    }

    /// Write a CRL whose next update passed a second ago: stale now.
    pub fn let_crl_go_stale(&self) {
        let now = OffsetDateTime::now_utc();
        self.ca()
            .write_crl_until(
                now - time::Duration::days(2),
                now - time::Duration::seconds(1),
            )
            .unwrap();
    }

    /// Write `hub.toml` listening on `listen` and load it.
    pub fn hub_config(&self, listen: SocketAddr) -> HubConfig {
        self.hub_config_as("hub", listen, "")
    }

    /// The config of a hub named `name` (`<name>.toml`, data in
    /// `<name>-data`; same certificate as every hub here), with `extra`
    /// TOML appended (e.g. a `[store]` table).
    pub fn hub_config_as(&self, name: &str, listen: SocketAddr, extra: &str) -> HubConfig {
        let path = self.path().join(format!("{name}.toml"));
        let text = format!(
            r#"
listen   = "{listen}"
data_dir = "{name}-data"
max_document_size = "300MiB"
[tls]
cert = "hub/hub.crt"
key  = "hub/hub.key"
ca   = "ca/ca.crt"
crl  = "ca/crl.pem"
[groups]
cities = ["harbin-gov", "daqing-gov"]
reporting = ["harbin-gov", "daqing-gov", "qiqihar-gov", "mudanjiang-gov"]
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
{crypto}
{extra}
"#,
            crypto = match self.suite {
                Suite::Standard => "",
                Suite::Gm => "[crypto]\nsuite = \"gm\"",
            }
        );
        std::fs::write(&path, text).unwrap();
        HubConfig::load(&path).unwrap()
    }

    /// Write `<id>.toml` for an agent whose certificate is in `<dir>/<id>/`.
    pub fn agent_config(&self, id: &str, hub: SocketAddr) -> AgentConfig {
        self.agent_config_with(id, hub, "")
    }

    /// [`Net::agent_config`] with more TOML at its end (sections such as
    /// `[console]`).
    pub fn agent_config_with(&self, id: &str, hub: SocketAddr, extra: &str) -> AgentConfig {
        self.agent_config_hubs(id, &[hub], extra)
    }

    /// An agent config naming several hubs (`hub = ["a", "b"]`; one hub is
    /// written as a plain string, as most configs have it).
    pub fn agent_config_hubs(&self, id: &str, hubs: &[SocketAddr], extra: &str) -> AgentConfig {
        let path = self.path().join(format!("{id}.toml"));
        let hub = match hubs {
            [one] => format!("\"{one}\""),
            many => format!(
                "[{}]",
                many.iter()
                    .map(|h| format!("\"{h}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let text = format!(
            r#"
node_id  = "{id}"
hub      = {hub}
hub_name = "hub"
root     = "{id}-data"
outbox_settle = "100ms"
outbox_rescan = "200ms"
[tls]
cert = "{id}/{id}.crt"
key  = "{id}/{id}.key"
ca   = "{id}/ca.crt"
{extra}
"#
        );
        std::fs::write(&path, text).unwrap();
        AgentConfig::load(&path).unwrap()
    }

    pub async fn start_hub(&self) -> RunningHub {
        self.start_hub_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Start a hub on `listen`. A port given explicitly (a restart on the
    /// same port) may still be held for a moment by the previous hub's
    /// QUIC driver task, which releases the socket after the hub is gone;
    /// wait for it, bounded.
    pub async fn start_hub_on(&self, listen: SocketAddr) -> RunningHub {
        self.start_hub_with(listen, gongwen_common::clock::system())
            .await
    }

    /// Start a hub whose deadlines follow `clock`.
    pub async fn start_hub_with(
        &self,
        listen: SocketAddr,
        clock: std::sync::Arc<dyn gongwen_common::clock::Clock>,
    ) -> RunningHub {
        self.start_hub_config(self.hub_config(listen), clock).await
    }

    /// Start a hub from `config` (see [`Net::hub_config_as`]).
    pub async fn start_hub_config(
        &self,
        config: HubConfig,
        clock: std::sync::Arc<dyn gongwen_common::clock::Clock>,
    ) -> RunningHub {
        let listen = config.listen;
        let data_dir = config.data_dir.clone();
        let deadline = tokio::time::Instant::now() + WAIT;
        let hub = loop {
            match Hub::bind_with_clock(config.clone(), clock.clone()).await {
                Ok(hub) => break hub,
                Err(gongwen_hub::HubError::AddressInUse { .. })
                    if listen.port() != 0 && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("the hub did not start on {listen}: {e}"),
            }
        };
        let addr = hub.local_addr();
        let metrics = hub.metrics_addr();
        let handle = hub.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(hub.run(async {
            let _ = stopped.await;
        }));
        RunningHub {
            addr,
            metrics,
            data_dir,
            handle,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The agent root of `id`.
    pub fn root(&self, id: &str) -> PathBuf {
        self.path().join(format!("{id}-data"))
    }

    /// Drop a file the way a careful program does: write it under a
    /// temporary name, then rename it into `outbox/<to>/`.
    pub fn drop_file(&self, from: &str, to: &str, name: &str, bytes: &[u8]) -> PathBuf {
        let dir = self.root(from).join("outbox").join(to);
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!(".{name}.part"));
        std::fs::write(&tmp, bytes).unwrap();
        let dest = dir.join(name);
        std::fs::rename(&tmp, &dest).unwrap();
        dest
    }

    /// Write a sidecar for a drop (before the drop itself).
    pub fn sidecar(&self, from: &str, to: &str, name: &str, toml: &str) {
        let dir = self.root(from).join("outbox").join(to);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.meta.toml")), toml).unwrap();
    }

    /// Start an agent whose certificate was issued with [`Net::issue`].
    pub fn start_agent(&self, id: &str, hub: SocketAddr) -> RunningAgent {
        RunningAgent::start(self.agent_config(id, hub))
    }
}

impl Default for Net {
    fn default() -> Self {
        Net::new()
    }
}

/// A hub running in this process.
#[derive(Debug)]
pub struct RunningHub {
    pub addr: SocketAddr,
    /// Where /metrics and /healthz answer, when `[metrics]` is configured.
    pub metrics: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub handle: gongwen_hub::HubHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), gongwen_hub::HubError>>>,
}

impl RunningHub {
    /// Stop and wait until the socket is released.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(WAIT, t)
                .await
                .expect("hub did not stop within the wait")
                .unwrap()
                .unwrap();
        }
    }

    pub async fn nodes(&self) -> Vec<NodeRow> {
        let v = control::query(&self.data_dir, &Request::Nodes)
            .await
            .unwrap();
        serde_json::from_value(v).unwrap()
    }

    /// Wait until every id in `ids` is connected and can receive.
    pub async fn wait_ready(&self, ids: &[&str]) {
        self.wait_nodes("every unit connected with a published key", |rows| {
            ids.iter().all(|id| {
                rows.iter()
                    .any(|r| r.id == *id && r.connected && r.can_receive)
            })
        })
        .await;
    }

    /// Wait until `nodes` satisfies `pred`.
    pub async fn wait_nodes(&self, what: &str, pred: impl Fn(&[NodeRow]) -> bool) -> Vec<NodeRow> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let rows = self.nodes().await;
            if pred(&rows) {
                return rows;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {WAIT:?} for the hub to show {what}; it shows {rows:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// An agent running in this process.
#[derive(Debug)]
pub struct RunningAgent {
    pub link: watch::Receiver<LinkState>,
    /// The agent's owners, to look inside.
    pub parts: gongwen_agent::parts::Parts,
    /// Where its console listens, if it has one.
    pub console: Option<SocketAddr>,
    /// Where its /metrics and /healthz answer, if configured.
    pub metrics: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), gongwen_agent::AgentError>>>,
}

impl RunningAgent {
    /// Wait until this agent's store records `doc` as received: its inbox
    /// folder appears a moment before that record is durable, and the
    /// console and clerk acts read the record.
    pub async fn wait_received(&self, doc: gongwen_common::DocId) {
        wait_until(&format!("{doc} recorded as received"), || {
            self.parts.store().received(doc).ok().flatten().map(|_| ())
        })
        .await;
    }
    pub fn start(config: AgentConfig) -> RunningAgent {
        Self::start_with_clock(config, gongwen_common::clock::system())
    }

    /// Start an agent on a machine whose clock is `clock`.
    pub fn start_with_clock(
        config: AgentConfig,
        clock: std::sync::Arc<dyn gongwen_common::clock::Clock>,
    ) -> RunningAgent {
        let agent = Agent::with_clock(config, clock).unwrap();
        let link = agent.link();
        let parts = agent.parts();
        let console = agent.console_addr();
        let metrics = agent.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(agent.run(async {
            let _ = stopped.await;
        }));
        RunningAgent {
            link,
            parts,
            console,
            metrics,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Wait until the link state satisfies `pred`; return that state.
    pub async fn wait(&mut self, what: &str, pred: impl Fn(&LinkState) -> bool) -> LinkState {
        wait_link(&mut self.link, what, pred).await
    }

    pub async fn wait_connected(&mut self) -> LinkState {
        self.wait("connected", |s| matches!(s, LinkState::Connected { .. }))
            .await
    }

    /// Wait for the first failure and return its error.
    pub async fn wait_error(&mut self) -> gongwen_agent::LinkError {
        match self
            .wait("a connection failure", |s| {
                matches!(s, LinkState::Disconnected { .. })
            })
            .await
        {
            LinkState::Disconnected { error, .. } => error,
            _ => unreachable!(),
        }
    }

    /// Stop, and wait until nothing of the agent's still holds its state:
    /// tasks its run aborted, and blocking work they started, can outlive
    /// the run by a moment, and an agent started on the same folder before
    /// they end would find its store in use.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(WAIT, t).await;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.parts.in_use() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the stopped agent still holds its state after {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn wait_link(
    rx: &mut watch::Receiver<LinkState>,
    what: &str,
    pred: impl Fn(&LinkState) -> bool,
) -> LinkState {
    wait_link_within(rx, what, WAIT, pred).await
}

/// [`wait_link`] with its own bound (for waits that outlast [`WAIT`] by
/// design, such as a QUIC idle timeout).
pub async fn wait_link_within(
    rx: &mut watch::Receiver<LinkState>,
    what: &str,
    within: Duration,
    pred: impl Fn(&LinkState) -> bool,
) -> LinkState {
    let r = tokio::time::timeout(within, async {
        rx.wait_for(|s| pred(s)).await.map(|state| state.clone())
    })
    .await;
    match r {
        Ok(Ok(state)) => state,
        Ok(Err(_)) => panic!("the agent stopped while we waited for it to be {what}"),
        Err(_) => panic!(
            "waited {within:?} for the agent to be {what}; its link is {:?}",
            *rx.borrow()
        ),
    }
}

/// Wait until `probe` returns something, polling; fail with `what`.
pub async fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait up to `limit` (for work longer than [`WAIT`]) until `probe`
/// returns `Ok`; fail with `what` and the last state it described.
pub async fn wait_within<T>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(state) => assert!(
                tokio::time::Instant::now() < deadline,
                "waited {limit:?} for {what}; {state}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first finished file in `dir`: not a hidden one, such as the
/// temporary file `write_atomic` fills before renaming it into place.
pub fn first_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
}
/// How many entries (not hidden ones) a folder has; 0 if it is missing.
pub fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

/// How many sent documents have every recipient's `delivered` receipt.
fn fully_delivered(status: &[gongwen_agent::front::control::DocStatus]) -> usize {
    status
        .iter()
        .filter(|d| d.stage == "sent" && d.recipients.iter().all(|r| r.state == "delivered"))
        .count()
}

/// Wait up to `limit` until exactly `n` documents `root` sent have every
/// recipient's `delivered` receipt.
pub async fn wait_delivered_within(root: &Path, n: usize, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let done = fully_delivered(&agent_status(root).await);
        if done == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "receipts complete for {done} of {n} documents at {}",
            root.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The document folders in `<root>/inbox/<sender>/`.
pub fn inbox_docs(root: &Path, sender: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("inbox").join(sender))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
    });
    v.sort();
    v
}

/// Wait for exactly `n` documents from `sender` in `root`'s inbox.
pub async fn wait_inbox(root: &Path, sender: &str, n: usize) -> Vec<PathBuf> {
    wait_until(
        &format!("{n} document(s) from {sender} in {}", root.display()),
        || {
            let docs = inbox_docs(root, sender);
            (docs.len() >= n).then_some(docs)
        },
    )
    .await
}

/// Ask the agent at `root` anything its control socket answers.
pub async fn ask_agent(
    root: &Path,
    request: &gongwen_agent::front::control::Request,
) -> Result<serde_json::Value, gongwen_agent::AgentError> {
    let socket = gongwen_agent::unit::folders::Folders::new(root).control_socket();
    gongwen_agent::front::control::query(&socket, request).await
}

/// Ask the hub a control question.
pub async fn ask_hub(
    data_dir: &Path,
    request: &gongwen_hub::ops::control::Request,
) -> serde_json::Value {
    gongwen_hub::ops::control::query(data_dir, request)
        .await
        .unwrap()
}

/// `gongwen-agent status --json` for the agent at `root`.
pub async fn agent_status(root: &Path) -> Vec<gongwen_agent::front::control::DocStatus> {
    try_agent_status(root)
        .await
        .unwrap_or_else(|e| panic!("status of {}: {e}", root.display()))
}

/// Like [`agent_status`], for an agent that may be down or restarting.
pub async fn try_agent_status(
    root: &Path,
) -> Result<Vec<gongwen_agent::front::control::DocStatus>, String> {
    let socket = gongwen_agent::unit::folders::Folders::new(root).control_socket();
    let v = gongwen_agent::front::control::query(
        &socket,
        &gongwen_agent::front::control::Request::Status { doc: None },
    )
    .await
    .map_err(|e| e.to_string())?;
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Wait (bounded) until the status of what the agent at `root` sent
/// satisfies `pred`; that status.
pub async fn wait_status(
    root: &Path,
    what: &str,
    pred: impl Fn(&[gongwen_agent::front::control::DocStatus]) -> bool,
) -> Vec<gongwen_agent::front::control::DocStatus> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let st = agent_status(root).await;
        if pred(&st) {
            return st;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT:?} for {what}; the status is {st:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until the agent at `root` has nothing left to send and every copy
/// of everything it sent has reached its recipient (or further): from then
/// on nothing more from it can arrive anywhere — the positive barrier
/// before checking that something did not happen. Its status then.
pub async fn wait_sender_settled(root: &Path) -> Vec<gongwen_agent::front::control::DocStatus> {
    wait_status(root, "everything sent to have arrived", |st| {
        st.iter()
            .all(|d| d.stage == "sent" && d.recipients.iter().all(|r| r.state != "queued"))
    })
    .await
}

/// Run a workspace binary with `args` and `--config config`: whether it
/// succeeded, and what it printed (standard output and error).
pub fn run_cli(name: &str, args: &[&str], config: &Path) -> (bool, String) {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.extend([std::ffi::OsStr::new("--config"), config.as_os_str()]);
    run_in(None, name, &all)
}

/// Run a workspace binary with `args` (in `dir`, if given): whether it
/// succeeded, and what it printed (standard output and error).
pub fn run_in<S: AsRef<std::ffi::OsStr>>(
    dir: Option<&Path>,
    name: &str,
    args: &[S],
) -> (bool, String) {
    let mut command = std::process::Command::new(bin(name));
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let o = command.args(args).output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// A workbook's sheet 汇总表 as openpyxl (Debian `python3-openpyxl`), not
/// the library that wrote it, reads it: `header` (row 2), `rows` (from row
/// 3, each a list of cell values) and `red` (each row's first-cell font
/// colour, ARGB, or null).
pub fn read_summary_workbook(path: &Path) -> serde_json::Value {
    let script = r#"
import json, sys
from openpyxl import load_workbook
ws = load_workbook(sys.argv[1])["汇总表"]
rows = [[c.value for c in r] for r in ws.iter_rows(min_row=3)]
def color(cell):
    c = cell.font.color if cell.font else None
    rgb = c.rgb if c is not None else None
    return rgb if isinstance(rgb, str) else None
red = [color(r[0]) for r in ws.iter_rows(min_row=3)]
print(json.dumps({"header": [c.value for c in ws[2]], "rows": rows, "red": red}, ensure_ascii=False))
"#;
    let o = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openpyxl (Debian python3-openpyxl) could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Wait until the sender at `root` holds `delivered` from every recipient
/// of `n` sent documents.
pub async fn wait_all_delivered(
    root: &Path,
    n: usize,
) -> Vec<gongwen_agent::front::control::DocStatus> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let st = agent_status(root).await;
        let done = fully_delivered(&st);
        if done >= n {
            return st;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT:?} for {n} fully delivered document(s); status is {st:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Run `fut` with the standard bound, failing with `what` on timeout.
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {WAIT:?}"))
}

/// Path of a workspace binary, building it if this test run did not.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let path = dir.join(name);
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--bin", name])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .unwrap();
        assert!(status.success(), "cargo build --bin {name} failed");
    }
    path
}

/// The hub as a separate process (so it can be killed with SIGKILL).
#[derive(Debug)]
pub struct HubProcess {
    child: std::process::Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl HubProcess {
    /// Start `gongwen-hub serve` on `listen` and wait for its address.
    pub async fn start(net: &Net, listen: SocketAddr) -> HubProcess {
        Self::start_armed(net, listen, None).await
    }

    /// Like [`HubProcess::start`], with a crash point armed
    /// (`GONGWEN_FAILPOINT`, see `gongwen_common::failpoint`).
    pub async fn start_armed(net: &Net, listen: SocketAddr, failpoint: Option<&str>) -> HubProcess {
        Self::start_config(net, net.hub_config(listen), failpoint).await
    }

    /// Start `gongwen-hub serve` with `config` (see [`Net::hub_config_as`]).
    pub async fn start_config(net: &Net, config: HubConfig, failpoint: Option<&str>) -> HubProcess {
        let name = config
            .data_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log = net
            .path()
            .join(format!("{name}-{}.log", std::process::id()));
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let _ = std::fs::remove_file(&log);
            let mut cmd = std::process::Command::new(bin("gongwen-hub"));
            cmd.args(["serve", "--config"])
                .arg(&config.path)
                .stderr(std::fs::File::create(&log).unwrap());
            if let Some(point) = failpoint {
                cmd.env("GONGWEN_FAILPOINT", point);
            }
            let mut child = cmd.spawn().unwrap();
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if let Some(rest) = text.split("listening on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
                    return HubProcess {
                        child,
                        addr,
                        data_dir: config.data_dir.clone(),
                        log,
                    };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    // The previous process may still hold the port for a moment.
                    assert!(
                        text.contains("already in use") && tokio::time::Instant::now() < deadline,
                        "the hub exited ({status}): {text}"
                    );
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the hub did not start: {text}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The hub's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, as an operator's `systemctl stop` would: the hub shuts down
    /// cleanly (closing its store) and exits. Bounded.
    pub async fn terminate(&mut self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "the hub exited with {status} on SIGTERM");
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hub did not stop within {WAIT:?} of SIGTERM; the end of its log:\n{}",
                log_tail(&self.log, 40)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until the process ended by itself (an armed crash point).
    pub async fn wait_crash(&mut self, what: &str) {
        wait_exit(&mut self.child, what, &self.log).await;
    }

    /// Wait until `units` units are connected with a published key.
    pub async fn wait_units(&self, units: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let rows: Vec<NodeRow> = control::query(&self.data_dir, &Request::Nodes)
                .await
                .ok()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            if rows.iter().filter(|r| r.can_receive && r.connected).count() == units {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "units never ready: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn wait_exit(child: &mut std::process::Child, what: &str, log: &Path) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(
                !status.success(),
                "{what}: exited cleanly instead of crashing"
            );
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still running after {WAIT:?}; the end of its log ({}):\n{}",
            log.display(),
            log_tail(log, 40)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The last `lines` lines of a process's log.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An agent as a separate process (so it can be killed with SIGKILL).
#[derive(Debug)]
pub struct AgentProcess {
    child: std::process::Child,
    pub id: String,
    pub log: PathBuf,
}

impl AgentProcess {
    /// Start `gongwen-agent run` for `id` against the hub at `hub`. Does
    /// not wait for the link: the hub may itself be down at the moment.
    pub fn start(net: &Net, id: &str, hub: SocketAddr) -> AgentProcess {
        Self::start_armed(net, id, hub, None)
    }

    /// Like [`AgentProcess::start`], with a crash point armed.
    pub fn start_armed(
        net: &Net,
        id: &str,
        hub: SocketAddr,
        failpoint: Option<&str>,
    ) -> AgentProcess {
        let config = net.agent_config(id, hub);
        Self::spawn(net, id, &config, failpoint, None)
    }

    /// `gongwen-agent run` with `extra` TOML in its config (a `[console]`,
    /// say), allowed to open at most `open_files` files (as systemd's
    /// `LimitNOFILE` would set it) when given.
    pub fn start_with(
        net: &Net,
        id: &str,
        hub: SocketAddr,
        extra: &str,
        open_files: Option<u64>,
    ) -> AgentProcess {
        let config = net.agent_config_with(id, hub, extra);
        Self::spawn(net, id, &config, None, open_files)
    }

    fn spawn(
        net: &Net,
        id: &str,
        config: &AgentConfig,
        failpoint: Option<&str>,
        open_files: Option<u64>,
    ) -> AgentProcess {
        let log_path = net.path().join(format!("{id}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut cmd = match open_files {
            // The shell's own ulimit, then exec: the agent runs under it.
            Some(n) => {
                let mut c = std::process::Command::new("/bin/sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(bin("gongwen-agent"));
                c
            }
            None => std::process::Command::new(bin("gongwen-agent")),
        };
        cmd.args(["run", "--config"]).arg(&config.path).stderr(log);
        if let Some(point) = failpoint {
            cmd.env("GONGWEN_FAILPOINT", point);
        }
        let child = cmd.spawn().unwrap();
        AgentProcess {
            child,
            id: id.to_owned(),
            log: log_path,
        }
    }

    /// Wait (bounded) for a line of its log that contains `text`; the line.
    pub async fn wait_log(&self, text: &str) -> String {
        wait_until(&format!("{} to log {text:?}", self.id), || {
            std::fs::read_to_string(&self.log)
                .ok()?
                .lines()
                .find(|l| l.contains(text))
                .map(str::to_owned)
        })
        .await
    }

    /// Where its console listens, from its log (it binds port 0).
    pub async fn console_addr(&self) -> SocketAddr {
        let line = self.wait_log("console on http").await;
        let at = line.find("://").unwrap() + 3;
        let rest = &line[at..];
        rest[..rest.find('/').unwrap()].parse().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The most memory the process has held (VmHWM), in KiB.
    pub fn peak_memory_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait until the process ended by itself (an armed crash point).
    pub async fn wait_crash(&mut self, what: &str) {
        wait_exit(&mut self.child, what, &self.log).await;
    }
}

/// A `VmXxx:` line of /proc/<pid>/status, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A small deterministic generator for fault schedules: the seed is
/// printed so a failing schedule can be replayed (`GONGWEN_FAULT_SEED`).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn from_env() -> Rng {
        let seed = std::env::var("GONGWEN_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("fault schedule seed: GONGWEN_FAULT_SEED={seed}");
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}
