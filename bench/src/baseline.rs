//! The baselines every gongwen figure is compared with, measured in the
//! same run: raw QUIC with the same quinn/rustls configurations and socket
//! settings, scp/sftp over loopback, and fsync of small records.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gongwen_common::pki::{self, Crl};
use gongwen_common::tls::{agent_client_config, hub_server_config};

use crate::env::Env;

/// Seconds to move `per_conn` bytes over each of `conns` connections at
/// once, hub-side socket as the hub's, client side as the agents'.
pub async fn raw_quic(env: &Env, conns: usize, per_conn: u64) -> anyhow::Result<f64> {
    let dir = env.path();
    let ca = pki::load_certs(&dir.join("ca/ca.crt"))?.remove(0);
    let crl = Crl::load(&dir.join("ca/crl.pem"), &ca)?;
    let server_config = hub_server_config(
        pki::load_certs(&dir.join("hub/hub.crt"))?,
        pki::load_private_key(&dir.join("hub/hub.key"))?,
        &ca,
        &crl,
        gongwen_common::clock::system(),
        &[],
    )?;
    let socket = gongwen_hub::server::udp_socket("127.0.0.1:0".parse()?)?;
    let server = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server_config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )?;
    let addr = server.local_addr()?;
    let accept = server.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accept.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                // As the hub raises them once it welcomes a unit.
                gongwen_common::tls::admitted_limits(&conn);
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 256 * 1024];
                        while let Ok(Some(_)) = recv.read(&mut buf).await {}
                        let _ = send.write_all(b"k").await;
                        let _ = send.finish();
                    });
                }
            });
        }
    });
    env.issue("bench-client", gongwen_common::Role::Node)?;
    let client_config = agent_client_config(
        pki::load_certs(&dir.join("bench-client/bench-client.crt"))?,
        pki::load_private_key(&dir.join("bench-client/bench-client.key"))?,
        &ca,
        gongwen_common::clock::system(),
    )?;
    // One client endpoint per connection, as each agent has its own.
    let mut links = Vec::new();
    for _ in 0..conns {
        let ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        let conn = ep.connect_with(client_config.clone(), addr, "hub")?.await?;
        links.push((ep, conn));
    }
    let block = bytes_block();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (_, conn) in &links {
        let conn = conn.clone();
        let block = block.clone();
        tasks.spawn(async move {
            let (mut send, mut recv) = conn.open_bi().await?;
            let mut left = per_conn;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                send.write_chunk(block.slice(..n)).await?;
                left -= n as u64;
            }
            send.finish()?;
            let mut ack = [0u8; 1];
            recv.read_exact(&mut ack).await?;
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let secs = start.elapsed().as_secs_f64();
    for (ep, conn) in links {
        conn.close(0u32.into(), b"done");
        ep.wait_idle().await;
    }
    server.close(0u32.into(), b"done");
    Ok(secs)
}

/// 1 MiB of incompressible bytes, shared by every send.
fn bytes_block() -> bytes::Bytes {
    let mut v = vec![0u8; 1 << 20];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for chunk in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    bytes::Bytes::from(v)
}

/// Records per second: append 4 KiB and `sync_data` each time.
pub fn fsync_rate(dir: &Path, records: usize) -> anyhow::Result<f64> {
    use std::io::Write;
    let path = dir.join("fsync.bin");
    let mut f = std::fs::File::create(&path)?;
    let rec = vec![7u8; 4096];
    let start = Instant::now();
    for _ in 0..records {
        f.write_all(&rec)?;
        f.sync_data()?;
    }
    let rate = records as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(path);
    Ok(rate)
}

/// MiB/s writing `bytes` sequentially in 1 MiB blocks and syncing at the
/// end: the most a durable copy on this disk can go.
pub fn disk_write(dir: &Path, bytes: u64) -> anyhow::Result<f64> {
    use std::io::Write;
    let path = dir.join("disk.bin");
    let block = vec![7u8; 1 << 20];
    let start = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    let rate = bytes as f64 / 1048576.0 / start.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(path);
    Ok(rate)
}

/// Seconds for `scp -c aes128-gcm@openssh.com` of `file` to 127.0.0.1,
/// against a throwaway sshd; `Ok(None)` if openssh is not installed.
pub fn scp(dir: &Path, file: &Path) -> anyhow::Result<Option<f64>> {
    let sshd = Path::new("/usr/sbin/sshd");
    if !sshd.exists() || Command::new("scp").arg("-V").output().is_err() {
        return Ok(None);
    }
    let d = dir.join("ssh");
    std::fs::create_dir_all(&d)?;
    let keygen = |path: &Path| {
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .status()
    };
    keygen(&d.join("host_key"))?;
    keygen(&d.join("user_key"))?;
    std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys"))?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nSubsystem sftp internal-sftp\n",
        hk = d.join("host_key").display(),
        ak = d.join("authorized_keys").display(),
        pid = d.join("sshd.pid").display()
    );
    std::fs::write(d.join("sshd_config"), config)?;
    std::fs::create_dir_all("/run/sshd").ok();
    let mut daemon = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stderr(std::fs::File::create(d.join("sshd.log"))?)
        .spawn()
        .context("cannot start sshd")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let _ = daemon.kill();
            bail!(
                "sshd did not start: {}",
                std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let dest = d.join("received.bin");
    let start = Instant::now();
    let status = Command::new("scp")
        .args([
            "-q",
            "-c",
            "aes128-gcm@openssh.com",
            "-P",
            &port.to_string(),
            "-i",
        ])
        .arg(d.join("user_key"))
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
        ])
        .arg(file)
        .arg(format!("root@127.0.0.1:{}", dest.display()))
        .status();
    let secs = start.elapsed().as_secs_f64();
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = std::fs::remove_file(&dest);
    match status {
        Ok(s) if s.success() => Ok(Some(secs)),
        Ok(s) => bail!("scp failed ({s}); see {}", d.join("sshd.log").display()),
        Err(e) => bail!("scp failed: {e}"),
    }
}
