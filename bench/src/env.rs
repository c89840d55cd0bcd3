//! A throwaway deployment for benchmarks: a CA, certificates, and the real
//! release binaries started as separate processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gongwen_certs::{Ca, IssueRequest, Validity};
use gongwen_common::suite::Suite;
use gongwen_common::{NodeId, Role};
use time::OffsetDateTime;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    ca: Ca,
    /// A `[store]` table for hub.toml (PostgreSQL), or empty: embedded.
    store: String,
    suite: Suite,
    /// `[tls] directory` for hub.toml.
    directory: Option<PathBuf>,
    /// More hub.toml tables.
    hub_extra: String,
}

/// A daemon process; killed when dropped.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemons' log filter: `GONGWEN_BENCH_LOG` if set (for profiling).
fn log_filter(default: &str) -> String {
    std::env::var("GONGWEN_BENCH_LOG").unwrap_or_else(|_| default.to_owned())
}

/// VmHWM and VmRSS of a process, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

impl Env {
    pub fn new(bin: &Path) -> anyhow::Result<Env> {
        Env::for_suite(bin, Suite::Standard)
    }

    /// A deployment whose CA was made for `suite` (GM: every unit gets its
    /// SM2 keys, and the hub says `[crypto] suite = "gm"`).
    pub fn for_suite(bin: &Path, suite: Suite) -> anyhow::Result<Env> {
        let mut dir = tempfile::Builder::new().prefix("gongwen-bench").tempdir()?;
        if std::env::var_os("GONGWEN_BENCH_KEEP").is_some() {
            // For profiling: keep the logs and data of the run.
            dir.disable_cleanup(true);
            eprintln!("keeping {}", dir.path().display());
        }
        let ca = Ca::init_for(
            &dir.path().join("ca"),
            "bench CA",
            OffsetDateTime::now_utc(),
            30,
            30,
            suite,
        )?;
        let env = Env {
            dir,
            bin: bin.to_owned(),
            ca,
            store: String::new(),
            suite,
            directory: None,
            hub_extra: String::new(),
        };
        env.issue("hub", Role::Hub)?;
        Ok(env)
    }

    /// Like [`Env::new`], its hub keeping its state in the PostgreSQL
    /// database `conn` names.
    pub fn on_postgres(bin: &Path, conn: &str) -> anyhow::Result<Env> {
        let mut env = Env::new(bin)?;
        env.store = format!("[store]\npostgres = \"{conn}\"\n");
        Ok(env)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The hub reads the CA's unit directory at `path` (`[tls] directory`).
    pub fn set_directory(&mut self, path: &Path) {
        self.directory = Some(path.to_owned());
    }

    /// More tables for hub.toml (`[limits]`, say).
    pub fn set_hub_extra(&mut self, toml: &str) {
        self.hub_extra = toml.to_owned();
    }

    /// The CA folder.
    pub fn ca_dir(&self) -> &Path {
        self.ca.dir()
    }

    /// Enroll `id` as `enroll` does: a certificate, an encryption key
    /// (`<id>/enc.key`, which [`Env::start_agent`] then uses) and the CA's
    /// signed unit directory listing it, which the hub reads and hands to
    /// the other domains of a federation.
    pub fn enroll(&mut self, id: &str) -> anyhow::Result<()> {
        let now = OffsetDateTime::now_utc();
        let nid = NodeId::parse(id)?;
        let mut ca = Ca::open(self.ca.dir())?;
        let issued = ca.issue(
            &IssueRequest {
                id: nid.clone(),
                role: Role::Node,
                name: Some(id.to_owned()),
                dns: vec![],
                ips: vec![],
                validity: Validity::days_from(now, 30),
                renew: true,
            },
            now,
        )?;
        ca.write_issued(&self.path().join(id), &nid, &issued)?;
        let (enc, _) = ca.make_encryption_key(&nid, &issued, now)?;
        std::fs::write(self.path().join(id).join("enc.key"), enc.secret_bytes())?;
        ca.write_directory(now)?;
        self.directory = Some(self.ca.dir().join("directory.gwd"));
        Ok(())
    }

    pub fn issue(&self, id: &str, role: Role) -> anyhow::Result<()> {
        let now = OffsetDateTime::now_utc();
        let nid = NodeId::parse(id)?;
        let req = IssueRequest {
            id: nid.clone(),
            role,
            name: None,
            dns: vec![],
            ips: vec![],
            validity: Validity::days_from(now, 30),
            renew: true,
        };
        // The registry is rewritten on each issue; keep the CA in one place.
        let mut ca = Ca::open(self.ca.dir())?;
        let issued = ca.issue(&req, now)?;
        ca.write_issued(&self.path().join(id), &nid, &issued)?;
        if self.suite == Suite::Gm {
            let keys = ca.make_sm2_keys(&nid, &issued, now)?;
            ca.write_sm2_keys(&self.path().join(id), &nid, &keys)?;
        }
        Ok(())
    }

    /// Start the hub with `groups` (name → members) on a free port.
    pub fn start_hub(&self, groups: &[(&str, Vec<String>)]) -> anyhow::Result<(Proc, SocketAddr)> {
        self.start_hub_at(groups, "127.0.0.1:0".parse()?)
    }

    /// Start the hub on `listen` (the same port again after a restart).
    pub fn start_hub_at(
        &self,
        groups: &[(&str, Vec<String>)],
        listen: SocketAddr,
    ) -> anyhow::Result<(Proc, SocketAddr)> {
        let mut text = format!("listen = \"{listen}\"\n");
        text.push_str(
            "data_dir = \"hub-data\"\n[tls]\ncert = \"hub/hub.crt\"\nkey = \"hub/hub.key\"\nca = \"ca/ca.crt\"\ncrl = \"ca/crl.pem\"\n",
        );
        if let Some(d) = &self.directory {
            text.push_str(&format!("directory = \"{}\"\n", d.display()));
        }
        text.push_str("[groups]\n");
        for (name, members) in groups {
            let list: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
            text.push_str(&format!("{name} = [{}]\n", list.join(", ")));
        }
        text.push_str(&self.store);
        text.push_str(&self.hub_extra);
        text.push_str(&format!("[crypto]\nsuite = \"{}\"\n", self.suite));
        let config = self.path().join("hub.toml");
        std::fs::write(&config, text)?;
        let log = self.path().join("hub.log");
        // Appended, so a restarted hub's log follows the first one's.
        let start_at = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) as usize;
        let child = Command::new(self.bin.join("gongwen-hub"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", log_filter("warn,gongwen_hub::server=info"))
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)?,
            )
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start gongwen-hub")?;
        let proc = Proc { child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let all = std::fs::read_to_string(&proc.log).unwrap_or_default();
            let text = all.get(start_at..).unwrap_or("");
            if let Some(rest) = text.split("listening on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("").parse()?;
                return Ok((proc, addr));
            }
            if Instant::now() > deadline {
                bail!("the hub did not start: {text}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn root(&self, id: &str) -> PathBuf {
        self.path().join(format!("{id}-data"))
    }

    pub fn start_agent(&self, id: &str, hub: SocketAddr) -> anyhow::Result<Proc> {
        let config = self.path().join(format!("{id}.toml"));
        // An enrolled unit's key, the one its directory entry names.
        let enc = if self.path().join(id).join("enc.key").exists() {
            format!("encryption_key = \"{id}/enc.key\"\n")
        } else {
            String::new()
        };
        std::fs::write(
            &config,
            format!(
                "node_id = \"{id}\"\nhub = \"{hub}\"\nhub_name = \"hub\"\nroot = \"{id}-data\"\n[tls]\ncert = \"{id}/{id}.crt\"\nkey = \"{id}/{id}.key\"\nca = \"{id}/ca.crt\"\n{enc}"
            ),
        )?;
        let log = self.path().join(format!("{id}.log"));
        let child = Command::new(self.bin.join("gongwen-agent"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", log_filter("warn"))
            .stderr(std::fs::File::create(&log)?)
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start gongwen-agent")?;
        Ok(Proc { child, log })
    }

    /// Wait until the hub lists `n` units that can receive.
    pub async fn wait_ready(&self, n: usize) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let data = self.path().join("hub-data");
        loop {
            if let Ok(v) =
                gongwen_hub::ops::control::query(&data, &gongwen_hub::ops::control::Request::Nodes)
                    .await
            {
                let ready = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|r| r["connected"] == true && r["can_receive"] == true)
                            .count()
                    })
                    .unwrap_or(0);
                if ready >= n {
                    return Ok(start.elapsed());
                }
            }
            if start.elapsed() > Duration::from_secs(120) {
                bail!("only some of {n} units became ready within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Write `size` bytes of incompressible data to `path`, 1 MiB at a time.
    pub fn make_file(path: &Path, size: u64) -> anyhow::Result<()> {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut block = vec![0u8; 1 << 20];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut left = size;
        while left > 0 {
            for chunk in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let b = x.to_le_bytes();
                chunk.copy_from_slice(&b[..chunk.len()]);
            }
            let n = left.min(block.len() as u64) as usize;
            f.write_all(&block[..n])?;
            left -= n as u64;
        }
        f.flush()?;
        Ok(())
    }

    /// Drop a file into `from`'s outbox for `to` by rename (as a careful
    /// program would); returns when the drop is in place.
    pub fn drop_file(
        &self,
        from: &str,
        to: &str,
        name: &str,
        src: &Path,
    ) -> anyhow::Result<PathBuf> {
        let dir = self.root(from).join("outbox").join(to);
        std::fs::create_dir_all(&dir)?;
        let dest = dir.join(name);
        std::fs::rename(src, &dest)?;
        Ok(dest)
    }
}
