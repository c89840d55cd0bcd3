//! National scale: N simulated units against one real hub.
//!
//! Each unit is enrolled with `gongwen-certs enroll` (certificate, key and
//! key binding, in a group of all of them) and run by one of a few worker
//! processes (this binary with `--swarm-worker`), which does for each what
//! an agent does on connect with the agent's own client code
//! (`gongwen_agent::link::client::say_hello`, its reconnect schedule): hello,
//! welcome, publish its key, hold the connection, answer the hub's pushes,
//! and take each document delivered to it (its content read to the end, a
//! signed `delivered` receipt back). It does not open the documents: the
//! hub's side is what is measured. A real agent sends a 4 KiB notice to the
//! group of all N.
//!
//! Measured: enrollment; admission (time, hub CPU and memory per unit);
//! the hub's idle CPU; the notice (time to the last delivered receipt,
//! bytes on the loopback wire, hub memory); the hub's answers to `nodes`,
//! `status`, `overdue` and `report`; and how long every unit takes to be
//! back after the hub is stopped (SIGTERM) and after it is killed (SIGKILL).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gongwen_agent::rules::backoff::{Backoff, Knock, random_jitter};
use gongwen_agent::rules::link_error::LinkError;
use gongwen_common::material;
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::signed::Signer;
use gongwen_common::stream::{READ_TIMEOUT, read_message, write_message};
use gongwen_common::wire::Message;
use gongwen_common::{NodeId, Role};
use gongwen_hub::ops::control::{Request, query};

use crate::env::{Env, Proc, memory_kib};
use crate::report::Row;

/// Worker processes the units are spread over.
const WORKERS: usize = 4;

/// The hub's CPU time so far (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is 3rd,
    // utime the 14th, stime the 15th of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Bytes sent on the loopback interface so far.
fn loopback_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let (name, rest) = l.trim().split_once(':')?;
            (name == "lo").then(|| rest.split_whitespace().nth(8)?.parse().ok())?
        })
        .unwrap_or(0)
}

struct Swarm {
    env: Env,
    hub: Option<Proc>,
    addr: SocketAddr,
    workers: Vec<Child>,
}

impl Swarm {
    fn hub_pid(&self) -> u32 {
        self.hub.as_ref().map(|h| h.child.id()).unwrap_or(0)
    }

    /// Units welcomed now, and welcomes in all, as the workers count them
    /// (asking the hub would cost it the work being measured).
    fn counts(&self) -> (usize, usize) {
        (0..self.workers.len())
            .map(|w| {
                let text =
                    std::fs::read_to_string(self.env.path().join(format!("worker-{w}.count")))
                        .unwrap_or_default();
                let mut n = text
                    .split_whitespace()
                    .map(|v| v.parse::<usize>().unwrap_or(0));
                (n.next().unwrap_or(0), n.next().unwrap_or(0))
            })
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    }

    /// Wait until `n` units are connected, with at least `welcomes`
    /// welcomes in all since the start; how long it took.
    async fn wait_connected(
        &self,
        n: usize,
        welcomes: usize,
        within: Duration,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let (c, w) = self.counts();
            if c >= n && w >= welcomes {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                bail!("only {c} of {n} units connected within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn restart_hub(&mut self, signal: &str) -> anyhow::Result<()> {
        if let Some(mut hub) = self.hub.take() {
            let _ = Command::new("kill")
                .args([signal, &hub.child.id().to_string()])
                .status();
            let _ = hub.child.wait();
        }
        let (hub, _) = self.env.start_hub_at(&[], self.addr)?;
        self.hub = Some(hub);
        Ok(())
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// Run the swarm of `units` and add its rows.
pub async fn run(
    bin: &Path,
    units: usize,
    idle_minutes: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let env = Env::new(bin)?;
    env.issue("swarm-sender", Role::Node)?;
    // Enrolled as a province enrolls its units.
    let csv = env.path().join("units.csv");
    let mut text = String::from("id,name,role,groups\n");
    for i in 0..units {
        text.push_str(&format!("unit-{i:05},第{i}单位,node,all\n"));
    }
    std::fs::write(&csv, text)?;
    let started = Instant::now();
    let enrolled = Command::new(bin.join("gongwen-certs"))
        .arg("--ca-dir")
        .arg(env.path().join("ca"))
        .args(["enroll", "--units"])
        .arg(&csv)
        .args(["--hub", "127.0.0.1:1", "--out"])
        .arg(env.path().join("bundles"))
        .stdout(Stdio::null())
        .output()
        .context("cannot run gongwen-certs enroll")?;
    if !enrolled.status.success() {
        bail!(
            "enroll failed: {}",
            String::from_utf8_lossy(&enrolled.stderr)
        );
    }
    let enroll_s = started.elapsed().as_secs_f64();
    rows.push(
        Row::new(&format!("Swarm: enroll {units} units"), enroll_s, "s")
            .target("≤ 30 s at 10,000", units < 10_000 || enroll_s <= 30.0),
    );
    // The simulated units all come from 127.0.0.1, like units behind one
    // NAT: the per-address handshake bound is raised as such a deployment
    // would raise it.
    let mut env = env;
    env.set_hub_extra("[limits]\nhandshakes_per_address = 512\n");
    env.set_directory(&env.path().join("ca").join("directory.gwd"));
    let (hub, addr) = env.start_hub(&[])?;
    let hub_base = memory_kib(hub.child.id()).1 as f64 / 1024.0;
    let cpu0 = cpu_seconds(hub.child.id());
    let mut swarm = Swarm {
        env,
        hub: Some(hub),
        addr,
        workers: Vec::new(),
    };

    // ---- admission
    let me = std::env::current_exe()?;
    let started = Instant::now();
    for w in 0..WORKERS {
        let (from, to) = (units * w / WORKERS, units * (w + 1) / WORKERS);
        swarm.workers.push(
            Command::new(&me)
                .arg("--swarm-worker")
                .arg(format!(
                    "{addr},{},{from},{to},{}",
                    swarm.env.path().join("bundles").display(),
                    swarm.env.path().join(format!("worker-{w}.count")).display()
                ))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(
                    swarm.env.path().join(format!("worker-{w}.log")),
                )?)
                .spawn()?,
        );
    }
    swarm
        .wait_connected(units, units, Duration::from_secs(600))
        .await?;
    let admission = started.elapsed().as_secs_f64();
    let pid = swarm.hub_pid();
    let cpu = cpu_seconds(pid) - cpu0;
    let rss = memory_kib(pid).1 as f64 / 1024.0;
    rows.push(Row::new(
        &format!("Swarm: {units} units admitted"),
        admission,
        "s",
    ));
    rows.push(
        Row::new(
            "Swarm: hub CPU per admitted unit",
            cpu * 1000.0 / units as f64,
            "ms",
        )
        .note(&format!("{cpu:.1} CPU-s in all")),
    );
    rows.push(
        Row::new(
            "Swarm: hub memory per connected unit",
            (rss - hub_base) * 1024.0 / units as f64,
            "KiB",
        )
        .note(&format!("RSS {rss:.0} MiB with {units} units")),
    );

    // ---- idle: CPU, and the hub's memory each minute (does it settle?)
    let before = cpu_seconds(pid);
    let mut rss_each_minute = vec![format!("{rss:.0}")];
    for _ in 0..idle_minutes.max(1) {
        tokio::time::sleep(Duration::from_secs(60)).await;
        rss_each_minute.push(format!("{:.0}", memory_kib(pid).1 as f64 / 1024.0));
    }
    let idle = (cpu_seconds(pid) - before) / idle_minutes.max(1) as f64;
    rows.push(
        Row::new("Swarm: hub CPU while idle", idle, "s/min")
            .target("≤ 10 s a minute", idle <= 10.0)
            .note(&format!(
                "RSS each idle minute: {} MiB",
                rss_each_minute.join(" → ")
            )),
    );

    // ---- a notice to every unit
    let sender = swarm.env.start_agent("swarm-sender", addr)?;
    let root = swarm.env.root("swarm-sender");
    // The agent makes the group's folder from the directory.
    let outbox = root.join("outbox").join("all");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !outbox.is_dir() {
        if Instant::now() > deadline {
            bail!("the sender's outbox/all/ did not appear");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wire0 = loopback_bytes();
    let started = Instant::now();
    Env::make_file(&outbox.join("notice.bin"), 4096)?;
    let doc = wait_all_delivered(&root, units, Duration::from_secs(600)).await?;
    let took = started.elapsed().as_secs_f64();
    let wire = (loopback_bytes() - wire0) as f64;
    let hub_hwm = memory_kib(pid).0 as f64 / 1024.0;
    rows.push(
        Row::new(
            &format!("Swarm: 4 KiB notice to {units} units (drop → last delivered)"),
            took,
            "s",
        )
        .target("≤ 60 s", took <= 60.0),
    );
    rows.push(
        Row::new(
            "Swarm: notice bytes on the wire per unit",
            wire / units as f64,
            "bytes",
        )
        .note(&format!("{:.1} MB in all, loopback", wire / 1e6)),
    );
    rows.push(
        Row::new("Swarm: hub memory peak", hub_hwm, "MiB").target("≤ 1 GiB", hub_hwm <= 1024.0),
    );
    drop(sender);

    // ---- questions
    let data = swarm.env.path().join("hub-data");
    for (name, req) in [
        ("nodes", Request::Nodes),
        ("status", Request::Status { doc }),
        ("overdue", Request::Overdue),
        (
            "report",
            Request::Report {
                since: None,
                until: None,
            },
        ),
    ] {
        let t = Instant::now();
        query(&data, &req).await?;
        let s = t.elapsed().as_secs_f64();
        rows.push(
            Row::new(
                &format!("Swarm: `{name}` with {units} units"),
                s * 1000.0,
                "ms",
            )
            .target("≤ 2 s", s <= 2.0),
        );
    }

    // ---- restarts
    for (signal, what) in [("-TERM", "SIGTERM"), ("-KILL", "SIGKILL")] {
        let t = Instant::now();
        // Every unit must be welcomed anew, by the new hub.
        let (_, before) = swarm.counts();
        swarm.restart_hub(signal)?;
        swarm
            .wait_connected(units, before + units, Duration::from_secs(300))
            .await?;
        let back = t.elapsed().as_secs_f64();
        rows.push(
            Row::new(
                &format!("Swarm: every unit back after a {what} restart"),
                back,
                "s",
            )
            .target("≤ 60 s", back <= 60.0),
        );
    }
    Ok(())
}

/// Wait until the document the sender at `root` sent has `n` delivered
/// copies; its id.
async fn wait_all_delivered(
    root: &Path,
    n: usize,
    within: Duration,
) -> anyhow::Result<gongwen_common::DocId> {
    let socket = gongwen_agent::unit::folders::Folders::new(root).control_socket();
    let start = Instant::now();
    loop {
        let st = gongwen_agent::front::control::query(
            &socket,
            &gongwen_agent::front::control::Request::Status { doc: None },
        )
        .await
        .ok()
        .and_then(|v| {
            serde_json::from_value::<Vec<gongwen_agent::front::control::DocStatus>>(v).ok()
        });
        if let Some(doc) = st.as_ref().and_then(|s| s.first()) {
            let delivered = doc
                .recipients
                .iter()
                .filter(|r| r.state != "queued")
                .count();
            if doc.stage == "sent" && delivered >= n {
                return Ok(doc.doc_id.parse()?);
            }
            if doc.stage == "failed" {
                bail!("the notice failed: {:?}", doc.reason);
            }
        }
        if start.elapsed() > within {
            bail!("the notice did not reach all {n} units within {within:?}: {st:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---------------------------------------------------------------- worker

/// `--swarm-worker HUB,BUNDLES,FROM,TO,COUNT_FILE`: run units FROM..TO
/// until killed, writing how many are welcomed to COUNT_FILE.
pub fn worker(arg: &str) -> anyhow::Result<()> {
    let parts: Vec<&str> = arg.split(',').collect();
    let [hub, bundles, from, to, count_file] = parts[..] else {
        bail!("--swarm-worker HUB,BUNDLES,FROM,TO,COUNT_FILE");
    };
    let count_file = PathBuf::from(count_file);
    let hub: SocketAddr = hub.parse()?;
    let (from, to): (usize, usize) = (from.parse()?, to.parse()?);
    let bundles = PathBuf::from(bundles);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        let delivered = Arc::new(AtomicU64::new(0));
        let welcomed = Arc::new(AtomicU64::new(0));
        let welcomes = Arc::new(AtomicU64::new(0));
        {
            let (welcomed, welcomes) = (welcomed.clone(), welcomes.clone());
            tokio::spawn(async move {
                loop {
                    let n = format!(
                        "{} {}",
                        welcomed.load(Ordering::Relaxed),
                        welcomes.load(Ordering::Relaxed)
                    );
                    let tmp = count_file.with_extension("tmp");
                    if std::fs::write(&tmp, n).is_ok() {
                        let _ = std::fs::rename(&tmp, &count_file);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
        let mut tasks = tokio::task::JoinSet::new();
        for i in from..to {
            let id = format!("unit-{i:05}");
            let dir = bundles.join(&id);
            let own = material::load_own_tls(
                &dir.join(format!("{id}.toml")),
                &dir.join(format!("{id}.crt")),
                &dir.join(format!("{id}.key")),
                &dir.join("ca.crt"),
            )?;
            let binding = std::fs::read(dir.join(format!("{id}.binding")))?;
            let unit = Arc::new(Unit {
                id: NodeId::parse(&id)?,
                client: gongwen_common::tls::agent_client_config(
                    own.chain,
                    own.key,
                    &own.ca,
                    gongwen_common::clock::system(),
                )?,
                signer: own.signer,
                binding,
            });
            let counts = Counts {
                delivered: delivered.clone(),
                welcomed: welcomed.clone(),
                welcomes: welcomes.clone(),
            };
            let endpoint = endpoint.clone();
            tasks.spawn(async move { unit.run(&endpoint, hub, &counts).await });
        }
        while tasks.join_next().await.is_some() {}
        endpoint.close(0u32.into(), b"done");
        Ok::<_, anyhow::Error>(())
    })
}

/// What a worker counts: documents delivered, units welcomed now, and
/// welcomes in all.
struct Counts {
    delivered: Arc<AtomicU64>,
    welcomed: Arc<AtomicU64>,
    welcomes: Arc<AtomicU64>,
}

struct Unit {
    id: NodeId,
    client: quinn::ClientConfig,
    signer: Signer,
    binding: Vec<u8>,
}

impl Unit {
    /// Connect, hold, reconnect — for ever.
    async fn run(&self, endpoint: &quinn::Endpoint, hub: SocketAddr, counts: &Counts) {
        let mut backoff = Backoff::default();
        let mut knock = Knock::default();
        loop {
            let error = match self
                .session(endpoint, hub, counts, &mut backoff, &mut knock)
                .await
            {
                Ok(e) | Err(e) => e,
            };
            let pause = knock.after(&error, backoff.next_delay(random_jitter()), random_jitter());
            tokio::time::sleep(pause).await;
        }
    }

    async fn session(
        &self,
        endpoint: &quinn::Endpoint,
        hub: SocketAddr,
        counts: &Counts,
        backoff: &mut Backoff,
        knock: &mut Knock,
    ) -> Result<LinkError, LinkError> {
        let (conn, _send, mut recv) = gongwen_agent::link::client::say_hello(
            endpoint,
            self.client.clone(),
            hub,
            "hub",
            Duration::from_secs(10),
            " (swarm)",
        )
        .await?;
        match read_message(&mut recv, READ_TIMEOUT).await {
            Ok(Message::Welcome { .. }) => {}
            Ok(other) => return Err(LinkError::Protocol(other.describe())),
            Err(e) => return Err(LinkError::Protocol(e.to_string())),
        }
        backoff.reset();
        knock.connected();
        let publish = Message::PublishKey {
            binding: self.binding.clone(),
        };
        let _ = gongwen_common::stream::request_ok(&conn, &publish, READ_TIMEOUT).await;
        counts.welcomed.fetch_add(1, Ordering::Relaxed);
        counts.welcomes.fetch_add(1, Ordering::Relaxed);
        let result = self.serve(&conn, &counts.delivered).await;
        counts.welcomed.fetch_sub(1, Ordering::Relaxed);
        Ok(result)
    }

    /// Answer the hub's pushes until the connection ends; why it ended.
    async fn serve(&self, conn: &quinn::Connection, delivered: &AtomicU64) -> LinkError {
        loop {
            let (mut send, mut recv) = match conn.accept_bi().await {
                Ok(s) => s,
                Err(e) => return gongwen_agent::rules::link_error::classify(&e, "hub"),
            };
            let reply = match read_message(&mut recv, READ_TIMEOUT).await {
                Ok(Message::DeliverBegin {
                    doc_id,
                    header,
                    content_len,
                    ..
                }) => {
                    self.take(&mut send, &mut recv, doc_id, &header, content_len)
                        .await
                }
                Ok(_) => Some(Message::Ok),
                Err(_) => None,
            };
            if let Some(m) = reply {
                if matches!(m, Message::Delivered { .. }) {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
                let _ = write_message(&mut send, &m).await;
                let _ = send.finish();
            }
        }
    }

    /// Read a delivery's content to its end; the signed `delivered`.
    async fn take(
        &self,
        send: &mut quinn::SendStream,
        recv: &mut quinn::RecvStream,
        doc_id: gongwen_common::DocId,
        header: &[u8],
        content_len: u64,
    ) -> Option<Message> {
        let sealed = gongwen_common::envelope::SealedHeader::parse(header).ok()?;
        write_message(send, &Message::DeliverFrom { offset: 0 })
            .await
            .ok()?;
        let mut left = content_len;
        while left > 0 {
            let chunk = recv.read_chunk(left as usize, true).await.ok()??;
            left -= chunk.bytes.len() as u64;
        }
        let receipt = Receipt {
            doc_id,
            kind: ReceiptKind::Delivered,
            recipient: self.id.clone(),
            issuer: self.id.clone(),
            doc_digest: sealed.digest(),
            time_ms: gongwen_common::clock::system().now_ms(),
            by: String::new(),
            reason: String::new(),
            seals: Vec::new(),
        };
        Some(Message::Delivered {
            receipt: receipt.sign(&self.signer).ok()?.encode(),
        })
    }
}
