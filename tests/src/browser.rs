//! A real browser for the console's tests: Debian's headless Chromium,
//! driven through chromedriver over W3C WebDriver (JSON over HTTP, with the
//! same hyper client as [`crate::web`]). Each test gets its own
//! chromedriver on a free port and its own empty profile.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::web::Browser;

/// The Debian packages the browser tests need.
pub const PACKAGES: &str = "chromium chromium-driver";

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The WebDriver name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether the browser tests can run here (see [`crate::tools::require`]).
pub fn available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    crate::tools::require("headless Chromium and chromedriver", PACKAGES, present)
}

/// A headless Chromium session.
#[derive(Debug)]
pub struct Chrome {
    driver: Child,
    http: Browser,
    session: String,
    _profile: tempfile::TempDir,
    /// Where screenshots go: target/console-screenshots/.
    shots: PathBuf,
}

impl Drop for Chrome {
    fn drop(&mut self) {
        kill_group(self.driver.id());
        let _ = self.driver.wait();
    }
}

/// Kill every process of the group `pgid`: chromedriver and the Chromium
/// it started, with all of Chromium's own helpers. Killing chromedriver
/// alone left its browsers running after the tests.
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// The processes still in the group `pgid`.
fn group_members(pgid: u32) -> Vec<String> {
    Command::new("pgrep")
        .args(["-g", &pgid.to_string()])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Chrome {
    /// Start chromedriver and a headless Chromium session.
    pub async fn start() -> Chrome {
        let port = free_port();
        // In a process group of its own, which the browser joins: when the
        // test ends, the whole group goes (see Chrome::quit).
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver starts")
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut http = Browser::new(addr);
        // Ready when it answers /status.
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            let up = tokio::net::TcpStream::connect(addr).await.is_ok();
            if up {
                let st = http.get("/status").await;
                if st.status == 200 {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not come up on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--disable-quic", "--window-size=1280,900",
                        "--lang=zh-CN",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                },
            } }
        });
        let v = call(&mut http, "POST", "/session", Some(caps)).await;
        let session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Chrome {
            driver,
            http,
            session,
            _profile: profile,
            shots,
        }
    }

    /// End the browser and its driver, and check (bounded) that not one
    /// of their processes is left behind.
    pub async fn quit(mut self) {
        let _ = call(
            &mut self.http,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        )
        .await;
        let pgid = self.driver.id();
        kill_group(pgid);
        let _ = self.driver.wait();
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            let left = group_members(pgid);
            if left.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "browser processes left behind: {left:?}"
            );
            kill_group(pgid);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn cmd(&mut self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        call(&mut self.http, method, &path, body).await
    }

    pub async fn goto(&mut self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// The element a CSS selector finds, waiting (bounded) for it.
    pub async fn find(&mut self, css: &str) -> String {
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            let v = self
                .cmd(
                    "POST",
                    "/element",
                    Some(json!({ "using": "css selector", "value": css })),
                )
                .await;
            if let Some(id) = v[ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no element {css:?} on the page: {}",
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn type_into(&mut self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.cmd("POST", &format!("/element/{el}/clear"), Some(json!({})))
            .await;
        self.cmd(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Choose a file for a file input.
    pub async fn choose_file(&mut self, css: &str, path: &Path) {
        let el = self.find(css).await;
        self.cmd(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": path.display().to_string() })),
        )
        .await;
    }

    pub async fn click(&mut self, css: &str) {
        let el = self.find(css).await;
        self.cmd("POST", &format!("/element/{el}/click"), Some(json!({})))
            .await;
    }

    /// Click `css` (a form's button) and wait (bounded) until the browser
    /// is on a page whose address contains `to`: the form was sent and
    /// answered, and what follows cannot cut it short.
    pub async fn click_and_land(&mut self, css: &str, to: &str) -> String {
        self.click(css).await;
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            let url = self.url().await;
            if url.contains(to) {
                return url;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "clicking {css:?} did not lead to {to:?}: on {url}: {}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The computed value of a CSS property of the element `css` finds
    /// (colours as `rgba(r, g, b, a)`).
    pub async fn css_value(&mut self, css: &str, property: &str) -> String {
        let el = self.find(css).await;
        self.cmd("GET", &format!("/element/{el}/css/{property}"), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The page's HTML now.
    pub async fn source(&mut self) -> String {
        self.cmd("GET", "/source", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The text of the page's body (what a person reads).
    pub async fn text(&mut self) -> String {
        let body = self.find("body").await;
        self.cmd("GET", &format!("/element/{body}/text"), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub async fn url(&mut self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Wait until the page's text contains `what`, reloading it.
    pub async fn wait_for_text(&mut self, url: &str, what: &str) -> String {
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            self.goto(url).await;
            let text = self.text().await;
            if text.contains(what) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{url} never showed {what:?}; it shows:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The page as the browser prints it (print media, A4), as PDF bytes.
    pub async fn print_pdf(&mut self) -> Vec<u8> {
        let v = self
            .cmd(
                "POST",
                "/print",
                Some(json!({ "page": { "width": 21.0, "height": 29.7 }, "background": false })),
            )
            .await;
        let pdf = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .unwrap_or_else(|_| panic!("the browser printed no PDF: {v}"));
        assert!(pdf.starts_with(b"%PDF"), "the print is not a PDF");
        pdf
    }

    /// Save a PNG screenshot as target/console-screenshots/<name>.png.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let v = self.cmd("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Log in through the form, as a person would.
    pub async fn log_in(&mut self, base: &str, user: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        self.type_into("input[name=username]", user).await;
        self.type_into("input[name=password]", password).await;
        self.click("form.login button[type=submit]").await;
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        while self.url().await.ends_with("/login") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "login did not leave /login: {}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One WebDriver command; its `value`.
async fn call(http: &mut Browser, method: &str, path: &str, body: Option<Value>) -> Value {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let page = http
        .send(
            method,
            path,
            &[("content-type", "application/json; charset=utf-8")],
            bytes,
        )
        .await;
    let v: Value = serde_json::from_slice(&page.body).unwrap_or(Value::Null);
    v.get("value").cloned().unwrap_or(v)
}
