//! A small HTTP/1.1 client with a cookie jar, for the console's tests: what
//! a browser sends, request by request, without following redirects (the
//! tests look at them).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use gongwen_agent::console::accounts::{Accounts, UserRole};
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
        }
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
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
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

    /// Log in through the form; panics unless it leads to `/`.
    pub async fn log_in(&mut self, user: &str, password: &str) {
        let form = self.get("/login").await;
        let csrf = form.csrf().expect("the login form has a csrf field");
        let done = self
            .post_form(
                "/login",
                &[("username", user), ("password", password), ("csrf", &csrf)],
            )
            .await;
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
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov", "daqing-gov"] {
        net.issue(id, Role::Node);
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
