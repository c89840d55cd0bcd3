//! A small HTTP/1.1 client with a cookie jar, for the console's tests: what
//! a browser sends, request by request, without following redirects (the
//! tests look at them).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use gongwen_agent::unit::accounts::{Accounts, UserRole};
use gongwen_common::Role;

use crate::{Net, RunningAgent, RunningHub};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{HeaderMap, HeaderValue};

/// An answer from the console.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Page {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Every `Set-Cookie` line.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// Where a redirect points.
    pub fn location(&self) -> Option<String> {
        self.header("location")
    }

    /// The value of the hidden `csrf` input of the page's first form.
    pub fn csrf(&self) -> Option<String> {
        let text = self.text();
        let at = text.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
        let rest = &text[at..];
        Some(rest[..rest.find('"')?].to_owned())
    }
}

/// A browser's worth of state: the console's address and its cookies.
#[derive(Clone)]
pub struct Browser {
    pub addr: SocketAddr,
    pub cookies: BTreeMap<String, String>,
    /// HTTPS: how to reach the console over TLS.
    tls: Option<tokio_rustls::TlsConnector>,
    /// The address it connects from (any of 127.0.0.0/8 reaches loopback:
    /// another machine on the LAN), if not the default.
    source: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("addr", &self.addr)
            .field("https", &self.tls.is_some())
            .finish()
    }
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Browser {
        Browser {
            addr,
            cookies: BTreeMap::new(),
            tls: None,
            source: None,
        }
    }

    /// A browser on another machine of the LAN: it connects from `source`.
    pub fn from_address(addr: SocketAddr, source: std::net::IpAddr) -> Browser {
        Browser {
            source: Some(source),
            ..Browser::new(addr)
        }
    }

    /// Its cookies as a `Cookie` header's value.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A browser that speaks HTTPS to a console whose certificate is `cert`
    /// (DER), and trusts nothing else.
    pub fn new_tls(addr: SocketAddr, cert: &[u8]) -> Browser {
        use quinn::rustls;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(cert.to_vec()))
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(gongwen_common::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Browser {
            addr,
            cookies: BTreeMap::new(),
            tls: Some(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
                config,
            ))),
            source: None,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, &[], Vec::new()).await
    }

    /// POST an HTML form (`application/x-www-form-urlencoded`).
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect();
        self.send(
            "POST",
            path,
            &[("content-type", "application/x-www-form-urlencoded")],
            body.join("&").into_bytes(),
        )
        .await
    }

    /// POST a `multipart/form-data` form: text fields in order, then files
    /// (field name, file name, bytes).
    pub async fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
    ) -> Page {
        let boundary = "gongwen-test-boundary-7d1c";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        for (name, file, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        self.send("POST", path, &[("content-type", &content_type)], body)
            .await
    }

    /// Any request; cookies from the jar are sent and the answer's kept.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Page {
        let stream = match self.source {
            Some(from) => {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(SocketAddr::new(from, 0)).unwrap();
                socket.connect(self.addr).await.unwrap()
            }
            None => tokio::net::TcpStream::connect(self.addr).await.unwrap(),
        };
        let mut sender = match &self.tls {
            Some(connector) => {
                let name = quinn::rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
                let tls = connector.connect(name, stream).await.unwrap();
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                sender
            }
            None => {
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                sender
            }
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, HeaderValue::from_str(v).unwrap());
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        let page = Page {
            status,
            headers,
            body,
        };
        for line in page.set_cookies() {
            let first = line.split(';').next().unwrap_or("");
            if let Some((k, v)) = first.split_once('=') {
                let removed = line.contains("Max-Age=0") || v.is_empty();
                if removed {
                    self.cookies.remove(k.trim());
                } else {
                    self.cookies
                        .insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
        }
        page
    }

    /// Try to log in through the form (as a browser does: the form first,
    /// for its token); the answer.
    pub async fn try_log_in(&mut self, user: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        let csrf = form.csrf().expect("the login form has a csrf field");
        self.post_form(
            "/login",
            &[("username", user), ("password", password), ("csrf", &csrf)],
        )
        .await
    }

    /// Log in through the form; panics unless it leads to `/`.
    pub async fn log_in(&mut self, user: &str, password: &str) {
        let done = self.try_log_in(user, password).await;
        assert_eq!(done.status, 303, "login failed: {}", done.text());
        assert_eq!(done.location().as_deref(), Some("/"));
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*') => {
                out.push(b as char)
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The password of every test console account.
pub const PASSWORD: &str = "正确的密码-2026";

/// prov-gov (clerk `wang`, 王五) and harbin-gov (clerk `li.si`, 李四), each
/// with a console on port 0; daqing-gov without one (it is in the group
/// `cities` with harbin-gov).
#[derive(Debug)]
pub struct Units {
    pub net: Net,
    pub hub: RunningHub,
    pub prov: RunningAgent,
    pub harbin: RunningAgent,
    pub daqing: RunningAgent,
}

pub async fn units() -> Units {
    units_as(false).await
}

/// The units of [`units`], their certificates naming them as enrollment
/// does: 黑龙江省人民政府, 哈尔滨市人民政府, 大庆市人民政府.
pub async fn named_units() -> Units {
    units_as(true).await
}

/// The 单位名称 [`named_units`] gives each unit.
pub const UNIT_NAMES: [(&str, &str); 3] = [
    ("prov-gov", "黑龙江省人民政府"),
    ("harbin-gov", "哈尔滨市人民政府"),
    ("daqing-gov", "大庆市人民政府"),
];

async fn units_as(named: bool) -> Units {
    let net = Net::new();
    for (id, name) in UNIT_NAMES {
        if named {
            net.issue_named(id, Role::Node, name);
        } else {
            net.issue(id, Role::Node);
        }
    }
    let hub = net.start_hub().await;
    let daqing = net.start_agent("daqing-gov", hub.addr);
    let console = "[console]\nlisten = \"127.0.0.1:0\"";
    let mut agents = Vec::new();
    for (id, clerk, name) in [
        ("prov-gov", "wang", "王五"),
        ("harbin-gov", "li.si", "李四"),
    ] {
        let accounts = net.root(id).join("state").join("accounts.json");
        Accounts::edit(&accounts, |a| {
            a.add_user(clerk, name, UserRole::Clerk, PASSWORD, 0)
        })
        .unwrap();
        agents.push(RunningAgent::start(
            net.agent_config_with(id, hub.addr, console),
        ));
    }
    hub.wait_ready(&["prov-gov", "harbin-gov", "daqing-gov"])
        .await;
    let harbin = agents.pop().unwrap();
    let prov = agents.pop().unwrap();
    Units {
        net,
        hub,
        prov,
        harbin,
        daqing,
    }
}

/// The console address of an agent, as a URL base (`http://127.0.0.1:N`).
pub fn base(agent: &RunningAgent) -> String {
    format!("http://{}", agent.console.expect("the agent has a console"))
}

/// What a hostile client's request got: the status line's code, if an
/// answer came, and how many body bytes it managed to send first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hostile {
    pub status: Option<u16>,
    pub body_sent: u64,
}

/// POST a multipart form whose field `field`, after the small fields
/// `before`, is `len` bytes of filler, streamed, from a client with the
/// given cookies: the way a hostile client tries to make the console
/// buffer a huge field. Stops sending when the console answers or closes
/// the connection.
pub async fn post_huge_field(
    addr: SocketAddr,
    path: &str,
    cookies: &str,
    before: &[(&str, &str)],
    field: &str,
    len: u64,
) -> Hostile {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let boundary = "hostile-boundary-3f9a";
    let mut opening = String::new();
    for (name, value) in before {
        opening.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    opening.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n"
    ));
    let closing = format!("\r\n--{boundary}--\r\n");
    let total = opening.len() as u64 + len + closing.len() as u64;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\nCookie: {cookies}\r\n\r\n{opening}"
    );
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = async move {
        let mut sent = 0u64;
        if write.write_all(head.as_bytes()).await.is_err() {
            return sent;
        }
        let chunk = vec![b'A'; 256 * 1024];
        while sent < len {
            let n = chunk.len().min((len - sent) as usize);
            if write.write_all(&chunk[..n]).await.is_err() {
                return sent;
            }
            sent += n as u64;
        }
        let _ = write.write_all(closing.as_bytes()).await;
        sent
    };
    let reader = async move {
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
        let text = String::from_utf8_lossy(&got).into_owned();
        text.split_whitespace().nth(1).and_then(|c| c.parse().ok())
    };
    tokio::pin!(writer, reader);
    let mut body_sent = None;
    let status = loop {
        tokio::select! {
            sent = &mut writer, if body_sent.is_none() => body_sent = Some(sent),
            status = &mut reader => break status,
        }
    };
    Hostile {
        status,
        body_sent: body_sent.unwrap_or(0),
    }
}

/// Up to `n` connections to `addr` from the source address `from` that
/// send nothing: what a slowloris holds open. Stops early once a connection
/// is not even taken into the listen backlog within a moment (the console
/// is at its limit and the backlog full).
pub async fn idle_connections(
    addr: SocketAddr,
    from: std::net::IpAddr,
    n: usize,
) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        match tokio::time::timeout(std::time::Duration::from_millis(300), socket.connect(addr))
            .await
        {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(_)) => {}
            Err(_) => break,
        }
    }
    held
}

/// A browser that connects from the source address `from` (any of
/// 127.0.0.0/8 reaches loopback): another machine on the LAN.
pub async fn get_from(
    addr: SocketAddr,
    from: std::net::IpAddr,
    path: &str,
) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let mut s = socket.connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head).await?;
    String::from_utf8_lossy(&head[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))
}
