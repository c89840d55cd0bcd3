//! How long the console takes to render a page when the agent's store holds
//! many documents, against the same pages over a small store in the same
//! run. The agent runs as a release process; requests are plain HTTP/1.1
//! over loopback, timed from the request to the last byte.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gongwen_agent::unit::accounts::{Accounts, UserRole};
use gongwen_agent::unit::store::{ReceivedRecord, ReceivedState, Store};
use gongwen_common::envelope::Urgency;
use gongwen_common::{DocId, NodeId};

use crate::env::Env;

const PASSWORD: &str = "bench-password";

/// Fill a store with `n` received documents: every `pending_every`-th
/// still to sign for, the rest signed for.
fn fill(root: &Path, n: usize, pending_every: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(root.join("state"))?;
    let store = Store::open(&root.join("state").join("agent.redb"), true)?;
    let sender = NodeId::parse("prov-gov")?;
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        batch.push(ReceivedRecord {
            doc_id: DocId::generate(),
            sender: sender.clone(),
            title: format!("关于做好第{i}项工作的通知"),
            doc_number: format!("黑政发〔2026〕{i}号"),
            doc_type: "通知".into(),
            urgency: Urgency::Normal,
            deadline: Some(1_900_000_000),
            received_ms: 1_796_000_000_000 + i as i64,
            state: if i % pending_every == 0 {
                ReceivedState::Delivered
            } else {
                ReceivedState::Acknowledged
            },
            reason: None,
            digest: String::new(),
            urge_count: 0,
            answer: None,
            answered_ms: None,
            recall_reason: None,
            sender_name: Some("黑龙江省人民政府".into()),
        });
        if batch.len() == 10_000 || i + 1 == n {
            let items: Vec<(&ReceivedRecord, &[u8], &[u8])> =
                batch.iter().map(|r| (r, &b"r"[..], &b"h"[..])).collect();
            store.record_received_all(&items)?;
            batch.clear();
        }
    }
    Ok(())
}

/// One HTTP/1.1 request; the status and the whole answer.
fn request(addr: SocketAddr, head: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "{head}\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, text))
}

fn header<'a>(answer: &'a str, name: &str) -> Vec<&'a str> {
    answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

/// Log in; the session cookie.
fn log_in(addr: SocketAddr) -> anyhow::Result<String> {
    let (_, form) = request(addr, "GET /login HTTP/1.1", "")?;
    let login_cookie = header(&form, "set-cookie")
        .into_iter()
        .find_map(|c| c.split(';').next())
        .context("no login cookie")?
        .to_owned();
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .context("no csrf field")?;
    let body = format!("username=clerk&password={PASSWORD}&csrf={csrf}");
    let (status, answer) = request(
        addr,
        &format!(
            "POST /login HTTP/1.1\r\nCookie: {login_cookie}\r\nContent-Type: application/x-www-form-urlencoded"
        ),
        &body,
    )?;
    if status != 303 {
        bail!("login answered {status}");
    }
    header(&answer, "set-cookie")
        .into_iter()
        .find(|c| c.starts_with("gongwen_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .context("no session cookie")
}

/// Median milliseconds of `times` GETs of `path`.
fn median_ms(addr: SocketAddr, cookie: &str, path: &str, times: usize) -> anyhow::Result<f64> {
    let mut all = Vec::with_capacity(times);
    for _ in 0..times {
        let start = Instant::now();
        let (status, _) = request(
            addr,
            &format!("GET {path} HTTP/1.1\r\nCookie: {cookie}"),
            "",
        )?;
        if status != 200 {
            bail!("{path} answered {status}");
        }
        all.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    all.sort_by(f64::total_cmp);
    Ok(all[all.len() / 2])
}

/// The pages measured: what each is and its path.
pub const PAGES: [(&str, &str); 4] = [
    ("/ (待签收, newest 50 pending)", "/"),
    ("/inbox first page", "/inbox"),
    ("/inbox page 1000 (skips 49,950)", "/inbox?page=1000"),
    (
        "/inbox text filter that matches nothing (reads all)",
        "/inbox?q=%E6%97%A0%E6%AD%A4",
    ),
];

/// Start an agent with a console over a store of `n` documents (one in
/// `pending_every` still to sign for); for each page, the median ms.
pub fn measure(
    env: &Env,
    bin: &Path,
    id: &str,
    n: usize,
    pending_every: usize,
) -> anyhow::Result<Vec<f64>> {
    env.issue(id, gongwen_common::Role::Node)?;
    let root = env.root(id);
    fill(&root, n, pending_every)?;
    Accounts::edit(&root.join("state").join("accounts.json"), |a| {
        a.add_user("clerk", "李四", UserRole::Clerk, PASSWORD, 0)
    })?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let config = env.path().join(format!("{id}.toml"));
    std::fs::write(
        &config,
        format!(
            "node_id = \"{id}\"\nhub = \"127.0.0.1:9\"\nhub_name = \"hub\"\nroot = \"{id}-data\"\n[tls]\ncert = \"{id}/{id}.crt\"\nkey = \"{id}/{id}.key\"\nca = \"{id}/ca.crt\"\n[console]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )?;
    let mut child = Command::new(bin.join("gongwen-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start gongwen-agent")?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let result = (|| {
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("the console did not listen within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let cookie = log_in(addr)?;
        PAGES
            .iter()
            .map(|(_, path)| median_ms(addr, &cookie, path, 7))
            .collect()
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}
