//! Reading /metrics the way Prometheus would: with the Prometheus project's
//! own Python parser (Debian `python3-prometheus-client`), not ours — a
//! test that parsed our output with our own assumptions could not fail
//! where Prometheus would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

/// The system Python (the parser is a Debian package; a pyenv shim would
/// not see it).
const PYTHON: &str = "/usr/bin/python3";

const PARSER: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}}\t{family.type}\t{s.value!r}")
"#;

/// Whether the parser is installed (see [`crate::tools::require`]).
pub fn available() -> bool {
    crate::tools::require(
        "the Prometheus project's Python parser",
        "python3-prometheus-client",
        crate::tools::python_has("prometheus_client.openmetrics.parser"),
    )
}

/// One scrape, parsed: `name{label=value,…}` → (type, value).
#[derive(Debug, Clone)]
pub struct Scrape {
    pub samples: BTreeMap<String, (String, f64)>,
    pub text: String,
}

impl Scrape {
    /// The value of a series (labels sorted, as `name{a=x,b=y}`).
    pub fn value(&self, series: &str) -> f64 {
        match self.samples.get(series) {
            Some((_, v)) => *v,
            None => panic!("no series {series} in the scrape:\n{}", self.text),
        }
    }

    pub fn kind(&self, series: &str) -> &str {
        &self.samples[series].0
    }
}

/// Parse exposition text with the Prometheus parser; panics with its
/// complaint when it refuses the text.
pub fn parse(text: &str) -> Scrape {
    use std::io::Write;
    let mut child = Command::new(PYTHON)
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut samples = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut parts = line.split('\t');
        let (Some(series), Some(kind), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let series = series.strip_suffix("{}").unwrap_or(series).to_owned();
        samples.insert(series, (kind.to_owned(), value.parse().unwrap()));
    }
    Scrape {
        samples,
        text: text.to_owned(),
    }
}

/// GET `path` from a plain HTTP server: (status, body).
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let page = crate::web::Browser::new(addr).get(path).await;
    (page.status, page.text())
}

/// Scrape `/metrics` at `addr` and parse it.
pub async fn scrape(addr: SocketAddr) -> Scrape {
    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    parse(&text)
}

/// Wait (bounded) until `/healthz` at `addr` answers 503; its text.
pub async fn wait_unhealthy(addr: SocketAddr) -> String {
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    loop {
        let (status, text) = get(addr, "/healthz").await;
        if status == 503 {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz still answers {status} {text:?} after {:?}",
            crate::WAIT
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Wait (bounded) until `/healthz` at `addr` answers 200 again.
pub async fn wait_healthy(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    loop {
        let (status, text) = get(addr, "/healthz").await;
        if status == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz still answers {status} {text:?} after {:?}",
            crate::WAIT
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
