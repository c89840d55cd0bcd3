//! A throwaway PostgreSQL cluster for the tests: `initdb` into a temporary
//! folder, `pg_ctl start` listening on a Unix socket in that folder only
//! (no TCP port, nothing shared with other tests), stopped and removed
//! when dropped. PostgreSQL refuses to run as root, so as root the cluster
//! is the `postgres` user's (the Debian package creates that user).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Debian package the PostgreSQL tests need.
pub const PACKAGE: &str = "postgresql";

/// Where the server programs are: Debian keeps them out of PATH, under
/// /usr/lib/postgresql/<major>/bin.
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

/// Whether the PostgreSQL tests can run here (see [`crate::tools::require`]).
pub fn available() -> bool {
    crate::tools::require("a PostgreSQL server", PACKAGE, bin_dir().is_some())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL server of the test's own.
#[derive(Debug)]
pub struct Cluster {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    /// The data directory.
    data: PathBuf,
    /// Where its socket is (also the `host` of its connection string).
    socket_dir: PathBuf,
    port: u16,
    log: PathBuf,
    running: bool,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        }
    }
}

impl Cluster {
    /// `initdb` and start a cluster with a database `gongwen` owned by the
    /// superuser `gongwen`.
    pub fn start() -> Cluster {
        Self::start_with(&[])
    }

    /// Like [`Cluster::start`], with extra `postgresql.conf` lines.
    pub fn start_with(conf: &[&str]) -> Cluster {
        let bin = bin_dir().expect("PostgreSQL is installed (checked by pg::available)");
        let dir = tempfile::Builder::new()
            .prefix("gongwen-pg")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let c = Cluster {
            socket_dir: dir.path().to_owned(),
            log: dir.path().join("server.log"),
            _dir: dir,
            bin,
            data,
            port: 5432,
            running: false,
        };
        c.own_dir();
        let out = c
            .as_server(&c.bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "gongwen",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&c.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.configure(conf);
        let mut c = c;
        c.start_server();
        c.createdb("gongwen");
        c
    }

    /// The folder the server writes, owned by `postgres` when we are root.
    fn own_dir(&self) {
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&self.socket_dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown to postgres failed");
        }
    }

    fn configure(&self, extra: &[&str]) {
        let mut conf = format!(
            "listen_addresses = ''\nunix_socket_directories = '{}'\nport = {}\n\
             fsync = off\nfull_page_writes = off\nmax_connections = 200\n\
             wal_level = replica\nmax_wal_senders = 4\n",
            self.socket_dir.display(),
            self.port
        );
        for line in extra {
            conf.push_str(line);
            conf.push('\n');
        }
        let path = self.data.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&conf);
        std::fs::write(&path, text).unwrap();
        self.own_dir();
    }

    fn as_server(&self, program: &Path) -> Command {
        if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        self.as_server(&self.bin.join("pg_ctl"))
            .args(args)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn start_server(&mut self) {
        let out = self.pg_ctl(&["start", "-w", "-t", "60"]);
        assert!(
            out.status.success(),
            "PostgreSQL did not start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        self.running = true;
    }

    fn createdb(&self, name: &str) {
        let out = self
            .as_server(&self.bin.join("createdb"))
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", "gongwen", name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "createdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The `[store] postgres` connection string for its `gongwen` database.
    pub fn conn(&self) -> String {
        format!(
            "host={} port={} dbname=gongwen user=gongwen",
            self.socket_dir.display(),
            self.port
        )
    }

    /// The host part of the connection string (its socket folder).
    pub fn host(&self) -> String {
        self.socket_dir.display().to_string()
    }

    /// Stop the server at once, as a crash would (`-m immediate`).
    pub fn crash(&mut self) {
        let out = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = false;
    }

    /// SIGKILL the server and every process of it, as when its machine is
    /// lost: no shutdown, no goodbye to its clients or its standby.
    pub fn kill9(&mut self) {
        let pid = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().map(str::trim).map(str::to_owned))
            .expect("the server's postmaster.pid");
        let _ = Command::new("pkill").args(["-KILL", "-P", &pid]).status();
        let status = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
        assert!(status.success(), "kill -KILL {pid} failed");
        self.running = false;
    }

    /// Start it again after [`Cluster::crash`].
    pub fn restart(&mut self) {
        self.start_server();
    }

    /// A streaming-replication standby of this cluster (`pg_basebackup -R`),
    /// started, with `synchronous_standby_names` on this primary so a
    /// commit returns only once the standby has it.
    pub fn standby(&mut self) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("gongwen-pg-standby")
            .tempdir()
            .unwrap();
        let mut s = Cluster {
            socket_dir: dir.path().to_owned(),
            log: dir.path().join("server.log"),
            bin: self.bin.clone(),
            data: dir.path().join("data"),
            _dir: dir,
            port: 5432,
            running: false,
        };
        s.own_dir();
        let out = s
            .as_server(&s.bin.join("pg_basebackup"))
            .arg("-h")
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "gongwen",
                "-R",
                "--no-sync",
                // Not a spread checkpoint: that waits minutes.
                "--checkpoint=fast",
                "-d",
            ])
            .arg(format!(
                "host={} port={} user=gongwen application_name=standby",
                self.socket_dir.display(),
                self.port
            ))
            .arg("-D")
            .arg(&s.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The copy carries the primary's settings; its socket is its own.
        s.configure(&[]);
        s.start_server();
        self.sql("ALTER SYSTEM SET synchronous_standby_names = 'standby'");
        self.sql("SELECT pg_reload_conf()");
        s
    }

    /// Promote a standby to primary (`pg_ctl promote`), waiting until it
    /// accepts writes.
    pub fn promote(&self) {
        let out = self.pg_ctl(&["promote", "-w", "-t", "60"]);
        assert!(
            out.status.success(),
            "promote failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Run one SQL statement with psql; its output (unaligned, no header).
    pub fn sql(&self, statement: &str) -> String {
        let out = self
            .as_server(&self.bin.join("psql"))
            .arg("-h")
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "gongwen",
                "-d",
                "gongwen",
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                statement,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {statement:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}
