//! Enrollment in bulk (`gongwen-certs enroll`): a CSV as Excel saves it
//! (BOM, Chinese names, quotes) becomes one bundle per unit; agents started
//! from their bundles connect to a real hub; running it again skips who is
//! enrolled; a bad row stops it before anything is issued.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use gongwen_common::config::AgentConfig;
use gongwen_tests::{Net, RunningAgent, RunningHub, agent_status, bin, wait_inbox};

fn enroll(net: &Net, csv: &Path, hub: &str, out: &Path) -> std::process::Output {
    Command::new(bin("gongwen-certs"))
        .arg("--ca-dir")
        .arg(net.path().join("ca"))
        .args(["enroll", "--units"])
        .arg(csv)
        .args(["--hub", hub, "--out"])
        .arg(out)
        .output()
        .unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The bundle's agent.toml with its Debian paths moved under `root`.
fn bundle_config(bundle: &Path, root: &Path) -> AgentConfig {
    bundle_config_for(bundle, root, None)
}

/// [`bundle_config`], its hub address replaced by `hub` (bundles made
/// before the hub was started).
fn bundle_config_for(bundle: &Path, root: &Path, hub: Option<(&str, SocketAddr)>) -> AgentConfig {
    let toml = std::fs::read_to_string(bundle.join("agent.toml")).unwrap();
    // The console on a port of its own (several agents run here).
    let mut toml = toml
        .replace("/etc/gongwen", &bundle.display().to_string())
        .replace("/var/lib/gongwen-agent", &root.display().to_string())
        .replace(gongwen_certs::enroll::CONSOLE_LAN, "127.0.0.1:0")
        .replace(gongwen_certs::enroll::CONSOLE_LOCAL, "127.0.0.1:0");
    if let Some((placeholder, addr)) = hub {
        toml = toml.replace(placeholder, &addr.to_string());
    }
    let path = bundle.join("agent-test.toml");
    std::fs::write(&path, toml).unwrap();
    AgentConfig::load(&path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_enrolled_from_a_csv_connect_with_their_bundles() {
    let net = Net::new();
    let hub = net.start_hub().await;
    let csv = net.path().join("units.csv");
    std::fs::write(
        &csv,
        "\u{feff}id,name,role\r\nharbin-gov,哈尔滨市人民政府,\r\n\"daqing-gov\",\"大庆市人民政府\",node\r\nprov-supervision,省政府督查室,supervisor\r\n",
    )
    .unwrap();
    let out = net.path().join("bundles");
    let o = enroll(&net, &csv, &hub.addr.to_string(), &out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("3 enrolled, 0 skipped"), "{}", text(&o));

    for id in ["harbin-gov", "daqing-gov", "prov-supervision"] {
        let b = out.join(id);
        for f in [
            format!("{id}.crt"),
            format!("{id}.key"),
            "ca.crt".into(),
            "agent.toml".into(),
            "安装说明.txt".into(),
        ] {
            assert!(b.join(&f).exists(), "{id}: no {f}");
        }
        let mode = std::fs::metadata(b.join(format!("{id}.key")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{id}.key");
        // The archive holds the same files, the key still 0600.
        let listing = Command::new("tar")
            .arg("-tzvf")
            .arg(out.join(format!("{id}.tar.gz")))
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("-rw-------") && l.ends_with(&format!("{id}/{id}.key"))),
            "{listing}"
        );
        assert!(listing.contains(&format!("{id}/agent.toml")), "{listing}");
    }
    let notes = std::fs::read_to_string(out.join("harbin-gov/安装说明.txt")).unwrap();
    assert!(notes.contains("哈尔滨市人民政府") && notes.contains(&hub.addr.to_string()));
    // The display name is in the certificate.
    let subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "utf8", "-in"])
        .arg(out.join("daqing-gov/daqing-gov.crt"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&subject.stdout).contains("大庆市人民政府"),
        "{}",
        String::from_utf8_lossy(&subject.stdout)
    );

    // Agents started from their bundles connect.
    let mut agents = Vec::new();
    for id in ["harbin-gov", "daqing-gov"] {
        let root = net.path().join(format!("{id}-root"));
        agents.push(RunningAgent::start(bundle_config(&out.join(id), &root)));
    }
    hub.wait_ready(&["harbin-gov", "daqing-gov"]).await;

    // Again: everyone is skipped, nothing is issued.
    let o = enroll(&net, &csv, &hub.addr.to_string(), &out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("harbin-gov: already enrolled, skipped")
            && text(&o).contains("0 enrolled, 3 skipped"),
        "{}",
        text(&o)
    );
    for a in agents {
        a.stop().await;
    }
    hub.stop().await;
}

/// A unit enrolled with the `console` column gets its console on the LAN
/// with HTTPS, from a certificate of the province's CA (which openssl
/// accepts as a server's and which names no node), and the first account
/// made as 安装说明.txt says opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_unit_opens_its_console_over_https_with_the_account_its_notes_say_to_make() {
    if !gongwen_tests::tools::have_openssl(false) {
        return;
    }
    let net = Net::new();
    let hub = net.start_hub().await;
    let csv = net.path().join("units.csv");
    std::fs::write(
        &csv,
        "id,name,console\nharbin-gov,哈尔滨市人民政府,gongwen.harbin.gov.cn;127.0.0.1\n",
    )
    .unwrap();
    let out = net.path().join("bundles");
    let o = enroll(&net, &csv, &hub.addr.to_string(), &out);
    assert!(o.status.success(), "{}", text(&o));
    let b = out.join("harbin-gov");
    let mode = std::fs::metadata(b.join("harbin-gov.console.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let verify = Command::new("openssl")
        .args(["verify", "-purpose", "sslserver", "-CAfile"])
        .arg(b.join("ca.crt"))
        .arg(b.join("harbin-gov.console.crt"))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
    let shown = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(b.join("harbin-gov.console.crt"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.contains("DNS:gongwen.harbin.gov.cn") && shown.contains("IP Address:127.0.0.1"),
        "{shown}"
    );
    assert!(
        !shown.contains("URI:"),
        "the console's certificate names a node: {shown}"
    );
    assert!(!shown.contains("TLS Web Client Authentication"), "{shown}");

    let notes = std::fs::read_to_string(b.join("安装说明.txt")).unwrap();
    assert!(
        notes.contains("https://gongwen.harbin.gov.cn:8443/") && notes.contains("user add"),
        "{notes}"
    );
    let root = net.path().join("harbin-root");
    let config = bundle_config(&b, &root);
    let tls = config.console.as_ref().and_then(|c| c.tls.clone());
    assert!(tls.is_some(), "the bundle's console is not HTTPS");
    // The first account, the way the notes say (the password on stdin).
    let mut add = Command::new(bin("gongwen-agent"))
        .args([
            "user",
            "add",
            "zhang.san",
            "--display-name",
            "张三",
            "--role",
            "admin",
        ])
        .arg("--config")
        .arg(b.join("agent-test.toml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = add.stdin.take().unwrap();
        writeln!(stdin, "{}", gongwen_tests::web::PASSWORD).unwrap();
    }
    let added = add.wait_with_output().unwrap();
    assert!(added.status.success(), "{}", text(&added));

    let agent = RunningAgent::start(config);
    hub.wait_ready(&["harbin-gov"]).await;
    let ca = gongwen_common::pki::load_certs(&b.join("ca.crt")).unwrap();
    let mut browser =
        gongwen_tests::web::Browser::new_tls(agent.console.expect("a console"), &ca[0]);
    browser
        .log_in("zhang.san", gongwen_tests::web::PASSWORD)
        .await;
    let home = browser.get("/").await;
    assert_eq!(home.status, 200, "{}", home.text());
    assert!(home.text().contains("哈尔滨市人民政府"), "{}", home.text());
    agent.stop().await;
    hub.stop().await;
}

#[test]
fn a_bad_row_stops_the_enrollment_before_anything_is_issued() {
    let net = Net::new();
    let csv = net.path().join("units.csv");
    std::fs::write(
        &csv,
        "id,name\nharbin-gov,哈尔滨市人民政府\ndaqing-gov,\nqiqihar-gov,齐齐哈尔市人民政府\n",
    )
    .unwrap();
    let out = net.path().join("bundles");
    let o = enroll(&net, &csv, "10.0.0.1:7443", &out);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("line 3") && text(&o).contains("daqing-gov has no name"),
        "{}",
        text(&o)
    );
    assert!(!out.exists(), "bundles were written despite the bad row");
    let list = Command::new(bin("gongwen-certs"))
        .arg("--ca-dir")
        .arg(net.path().join("ca"))
        .arg("list")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains("harbin-gov"),
        "a certificate was issued despite the bad row"
    );
    // A hub address that is not HOST:PORT is refused the same way.
    std::fs::write(&csv, "id,name\nharbin-gov,哈尔滨市人民政府\n").unwrap();
    let o = enroll(&net, &csv, "10.0.0.1", &out);
    assert!(
        !o.status.success() && text(&o).contains("HOST:PORT"),
        "{}",
        text(&o)
    );
}

/// Wait until the hub's `nodes` lists `id`.
async fn wait_listed(hub: &RunningHub, id: &str) -> gongwen_hub::state::registry::NodeRow {
    let rows = hub
        .wait_nodes(&format!("{id} in the hub's nodes"), |rows| {
            rows.iter().any(|r| r.id == id)
        })
        .await;
    rows.into_iter().find(|r| r.id == id).unwrap()
}

/// Wait until the hub accepted the document `root` sent to `to` (it waits
/// there: `to` has never connected).
async fn wait_accepted(root: &Path, to: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let st = agent_status(root).await;
        let doc = st
            .iter()
            .find(|d| d.recipients.iter().any(|r| r.recipient == to));
        if let Some(d) = doc {
            assert_ne!(d.stage, "failed", "the document to {to} failed: {d:?}");
            if d.stage == "sent" {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the document to {to} was not accepted within 30 s: {st:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_unit_receives_before_its_agent_first_connects() {
    let net = Net::new();
    // Bundles are made before the hub exists: its address goes in later.
    const PLACEHOLDER: &str = "hub.example:7443";
    let csv = net.path().join("units.csv");
    std::fs::write(
        &csv,
        "\u{feff}id,name\r\nharbin-gov,哈尔滨市人民政府\r\ndaqing-gov,大庆市人民政府\r\n",
    )
    .unwrap();
    let out = net.path().join("bundles");
    let o = enroll(&net, &csv, PLACEHOLDER, &out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("unit directory:") && text(&o).contains("(2 units)"),
        "{}",
        text(&o)
    );
    // The document key and its binding: X25519, or the SM2 keys (GM).
    let gm = net.suite() == gongwen_common::suite::Suite::Gm;
    let enc_key = |id: &str| match gm {
        false => format!("{id}.enc.key"),
        true => format!("{id}.sm2-enc.key"),
    };
    let binding = |id: &str| match gm {
        false => format!("{id}.binding"),
        true => format!("{id}.sm2.binding"),
    };
    for id in ["harbin-gov", "daqing-gov"] {
        let mode = std::fs::metadata(out.join(id).join(enc_key(id)))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", enc_key(id));
        assert!(out.join(id).join(binding(id)).exists());
    }
    let directory = net.path().join("ca").join("directory.gwd");
    // The first directory, kept to try putting it back at the end.
    let first_directory = std::fs::read(&directory).unwrap();
    let mut config = net.hub_config("127.0.0.1:0".parse().unwrap());
    config.tls.directory = Some(directory.clone());
    let hub = net
        .start_hub_config(config.clone(), gongwen_common::clock::system())
        .await;
    let hub_at = Some((PLACEHOLDER, hub.addr));

    // daqing-gov is enrolled, never connected: listed with its name.
    let row = wait_listed(&hub, "daqing-gov").await;
    assert!(!row.connected && row.can_receive, "{row:?}");
    assert_eq!(row.name.as_deref(), Some("大庆市人民政府"));

    let harbin_root = net.path().join("harbin-root");
    let mut harbin = RunningAgent::start(bundle_config_for(
        &out.join("harbin-gov"),
        &harbin_root,
        hub_at,
    ));
    harbin.wait_connected().await;
    let drop = |to: &str, name: &str| {
        let dir = harbin_root.join("outbox").join(to);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), format!("致{to}的通知").as_bytes()).unwrap();
    };
    drop("daqing-gov", "通知.txt");
    wait_accepted(&harbin_root, "daqing-gov").await;

    // A unit enrolled while the hub runs is known without a restart, with
    // its group from units.csv.
    std::fs::write(
        &csv,
        "id,name,role,groups\nqiqihar-gov,齐齐哈尔市人民政府,node,north;市级\n",
    )
    .unwrap();
    let o = enroll(&net, &csv, PLACEHOLDER, &out);
    assert!(
        o.status.success() && text(&o).contains("(3 units)"),
        "{}",
        text(&o)
    );
    let row = wait_listed(&hub, "qiqihar-gov").await;
    assert_eq!(row.name.as_deref(), Some("齐齐哈尔市人民政府"));
    drop("north", "北部通知.txt");
    wait_accepted(&harbin_root, "qiqihar-gov").await;

    // A unit that made its own key (gongwen-agent keygen) and had its CSR
    // and key binding signed is in the directory too.
    let suihua = net.path().join("suihua-keys");
    let o = Command::new(bin("gongwen-agent"))
        .args([
            "keygen",
            "--id",
            "suihua-gov",
            "--suite",
            net.suite().as_str(),
            "--out",
        ])
        .arg(&suihua)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new(bin("gongwen-certs"))
        .arg("--ca-dir")
        .arg(net.path().join("ca"))
        .args([
            "sign",
            "--role",
            "node",
            "--name",
            "绥化市人民政府",
            "--csr",
        ])
        .arg(suihua.join("suihua-gov.csr"))
        .arg("--binding")
        .arg(suihua.join(binding("suihua-gov")))
        .arg("--out")
        .arg(suihua.join("suihua-gov.crt"))
        .output()
        .unwrap();
    assert!(
        o.status.success() && text(&o).contains("(4 units)"),
        "{}",
        text(&o)
    );
    wait_listed(&hub, "suihua-gov").await;
    drop("suihua-gov", "绥化.txt");
    wait_accepted(&harbin_root, "suihua-gov").await;

    // A binding made by another key is refused by the CA.
    let o = Command::new(bin("gongwen-certs"))
        .arg("--ca-dir")
        .arg(net.path().join("ca"))
        .args(["sign", "--role", "node", "--renew", "--csr"])
        .arg(suihua.join("suihua-gov.csr"))
        .arg("--binding")
        .arg(out.join("daqing-gov").join(binding("daqing-gov")))
        .arg("--out")
        .arg(net.path().join("wrong.crt"))
        .output()
        .unwrap();
    assert!(
        !o.status.success()
            && text(&o).contains("not signed by the key of this certificate request"),
        "{}",
        text(&o)
    );

    // Each unit's agent, started for the first time, finds its document
    // waiting and can open it with the key made at enrollment.
    let mut agents = vec![harbin];
    for id in ["daqing-gov", "qiqihar-gov"] {
        let root = net.path().join(format!("{id}-root"));
        agents.push(RunningAgent::start(bundle_config_for(
            &out.join(id),
            &root,
            hub_at,
        )));
        let docs = wait_inbox(&root, "harbin-gov", 1).await;
        assert_eq!(docs.len(), 1, "{id}: {docs:?}");
    }
    let suihua_root = net.path().join("suihua-root");
    std::fs::write(
        suihua.join("agent.toml"),
        format!(
            "node_id = \"suihua-gov\"\nhub = \"{}\"\nhub_name = \"hub\"\nroot = \"{}\"\n[tls]\ncert = \"suihua-gov.crt\"\nkey = \"suihua-gov.key\"\nca = \"ca.crt\"\n{}",
            hub.addr,
            suihua_root.display(),
            // A GM unit's SM2 files sit beside its key, as keygen named them.
            if gm { "" } else { "encryption_key = \"suihua-gov.enc.key\"\n" }
        ),
    )
    .unwrap();
    agents.push(RunningAgent::start(
        AgentConfig::load(&suihua.join("agent.toml")).unwrap(),
    ));
    wait_inbox(&suihua_root, "harbin-gov", 1).await;
    gongwen_tests::wait_all_delivered(&harbin_root, 3).await;

    for a in agents {
        a.stop().await;
    }
    hub.stop().await;

    // The first directory, put back (a rollback): still validly signed, but
    // older than the one the hub used, so the hub refuses to start with it.
    std::fs::write(&directory, &first_directory).unwrap();
    let refused = gongwen_hub::Hub::bind(config)
        .await
        .expect_err("the hub started");
    let refused = refused.to_string();
    assert!(
        refused.contains("older directory is refused") && refused.contains("directory.issued"),
        "{refused}"
    );
}
