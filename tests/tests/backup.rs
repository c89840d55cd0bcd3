//! `gongwen-hub backup` while documents flow, `gongwen-hub restore` into a
//! new data folder: the manifest checks with sha256sum, the audit chain of
//! the restored hub verifies, and once the agents have offered again what
//! they sent after the backup, the restored hub's status of every document
//! agrees with the sender's. A damaged backup and a non-empty data folder
//! are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use gongwen_common::Role;
use gongwen_tests::{Net, agent_status, wait_all_delivered, wait_inbox};

fn hub_cli(args: &[&str], config: &Path) -> (bool, String) {
    gongwen_tests::run_cli("gongwen-hub", args, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_traffic_restores_and_the_agents_fill_in_the_rest() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    net.issue("daqing-gov", Role::Node);
    net.issue("qiqihar-gov", Role::Node);
    let hub = net.start_hub().await;
    // qiqihar-gov publishes its key, then goes away: what is sent to it
    // waits at the hub, content and all, through the backup.
    let mut qiqihar = net.start_agent("qiqihar-gov", hub.addr);
    qiqihar.wait_connected().await;
    hub.wait_nodes("qiqihar-gov can receive", |rows| {
        rows.iter().any(|r| r.id == "qiqihar-gov" && r.can_receive)
    })
    .await;
    qiqihar.stop().await;
    let mut harbin = net.start_agent("harbin-gov", hub.addr);
    let mut daqing = net.start_agent("daqing-gov", hub.addr);
    harbin.wait_connected().await;
    daqing.wait_connected().await;
    let (harbin_root, daqing_root) = (net.root("harbin-gov"), net.root("daqing-gov"));

    for i in 0..6 {
        net.drop_file(
            "harbin-gov",
            "daqing-gov",
            &format!("before-{i}.txt"),
            &[i; 50_000],
        );
    }
    wait_all_delivered(&harbin_root, 6).await;
    net.drop_file("harbin-gov", "qiqihar-gov", "waiting.txt", &[9; 300_000]);
    gongwen_tests::wait_status(&harbin_root, "the document to qiqihar-gov accepted", |st| {
        st.iter()
            .any(|d| d.stage == "sent" && d.recipients.iter().any(|r| r.recipient == "qiqihar-gov"))
    })
    .await;
    // More documents on their way while the backup is taken.
    for i in 0..6 {
        net.drop_file(
            "harbin-gov",
            "daqing-gov",
            &format!("during-{i}.txt"),
            &[i; 50_000],
        );
    }
    let backup = net.path().join("backup");
    let (ok, said) = hub_cli(
        &["backup", "--out", &backup.display().to_string()],
        &net.path().join("hub.toml"),
    );
    assert!(ok, "{said}");
    assert!(said.contains("backed up"), "{said}");
    for i in 0..4 {
        net.drop_file(
            "harbin-gov",
            "daqing-gov",
            &format!("after-{i}.txt"),
            &[i; 50_000],
        );
    }
    wait_all_delivered(&harbin_root, 16).await;
    wait_inbox(&daqing_root, "harbin-gov", 16).await;
    assert!(
        std::fs::read_dir(backup.join("spool"))
            .unwrap()
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "ct")),
        "the waiting document's content is not in the backup"
    );
    // The staging folder is gone from the data folder.
    assert!(
        !std::fs::read_dir(&hub.data_dir)
            .unwrap()
            .flatten()
            .any(|e| e
                .file_name()
                .to_string_lossy()
                .starts_with("backup-staging")),
        "staging left behind"
    );
    // sha256sum alone checks the backup.
    let o = Command::new("sha256sum")
        .args(["-c", "--quiet", "MANIFEST.sha256"])
        .current_dir(&backup)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // openssl checks the manifest's signature with the hub's certificate.
    let o = Command::new("sh")
        .arg("-c")
        .arg("openssl x509 -in MANIFEST.sha256.crt -pubkey -noout > hub.pub && openssl dgst -sha256 -verify hub.pub -signature MANIFEST.sha256.sig MANIFEST.sha256; rc=$?; rm -f hub.pub; exit $rc")
        .current_dir(&backup)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let listen = hub.addr;
    hub.stop().await;

    // Restore into a new data folder; a non-empty one is refused.
    let config2 = net.hub_config_as("hub2", listen, "");
    let config2_path = net.path().join("hub2.toml");
    std::fs::create_dir_all(net.path().join("hub2-data/leftover")).unwrap();
    let (ok, said) = hub_cli(
        &["restore", "--from", &backup.display().to_string()],
        &config2_path,
    );
    assert!(!ok && said.contains("is not empty"), "{said}");
    std::fs::remove_dir_all(net.path().join("hub2-data")).unwrap();
    let (ok, said) = hub_cli(
        &["restore", "--from", &backup.display().to_string()],
        &config2_path,
    );
    assert!(ok && said.contains("every SHA-256 matched"), "{said}");
    let (ok, said) = hub_cli(&["audit", "verify"], &config2_path);
    assert!(ok, "{said}");

    // The restored hub, on the same address: the agents see a new
    // generation and offer again what it lacks.
    let hub2 = net
        .start_hub_config(config2, gongwen_common::clock::system())
        .await;
    harbin.wait_connected().await;
    daqing.wait_connected().await;
    // The document that waited for qiqihar-gov reaches it from the
    // restored content.
    let qiqihar = net.start_agent("qiqihar-gov", listen);
    wait_inbox(&net.root("qiqihar-gov"), "harbin-gov", 1).await;
    let sent: Vec<_> = agent_status(&harbin_root)
        .await
        .into_iter()
        .filter(|d| d.recipients.iter().all(|r| r.recipient == "daqing-gov"))
        .collect();
    assert_eq!(sent.len(), 16);
    for d in &sent {
        let doc = d.doc_id.parse().unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            // A document sent after the backup is unknown until offered again.
            let v = gongwen_hub::ops::control::query(
                &hub2.data_dir,
                &gongwen_hub::ops::control::Request::Status { doc },
            )
            .await
            .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
            let state = v["recipients"][0]["state"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            if state == "delivered" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} ({}) at the restored hub: {v}",
                d.doc_id,
                d.title
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    // Nothing doubled at the recipient.
    assert_eq!(
        gongwen_tests::inbox_docs(&daqing_root, "harbin-gov").len(),
        16
    );
    hub2.stop().await;
    let (ok, said) = hub_cli(&["audit", "verify"], &config2_path);
    assert!(ok, "{said}");

    // One changed byte in the backup: refused, naming the file.
    let db = backup.join("store.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&db, bytes).unwrap();
    let _ = net.hub_config_as("hub3", listen, "");
    let (ok, said) = hub_cli(
        &["restore", "--from", &backup.display().to_string()],
        &net.path().join("hub3.toml"),
    );
    assert!(
        !ok && said.contains("store.redb does not match its SHA-256"),
        "{said}"
    );
    assert!(!net.path().join("hub3-data").join("store.redb").exists());
    // ... and with its line in the manifest changed to match: the manifest
    // no longer matches its signature.
    let sum = gongwen_hub::ops::backup::sha256_file(&db).unwrap();
    let manifest = backup.join("MANIFEST.sha256");
    let text: String = std::fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .map(|l| {
            if l.ends_with("  store.redb") {
                format!("{sum}  store.redb\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&manifest, text).unwrap();
    let (ok, said) = hub_cli(
        &["restore", "--from", &backup.display().to_string()],
        &net.path().join("hub3.toml"),
    );
    assert!(
        !ok && said.contains("does not match MANIFEST.sha256"),
        "{said}"
    );
    assert!(!net.path().join("hub3-data").join("store.redb").exists());

    harbin.stop().await;
    daqing.stop().await;
    qiqihar.stop().await;
}

#[test]
fn a_postgresql_hub_is_told_to_use_the_databases_tools() {
    let net = Net::new();
    let _ = net.hub_config_as(
        "hub",
        "127.0.0.1:0".parse().unwrap(),
        "[store]\npostgres = \"host=/nonexistent dbname=gongwen\"\n",
    );
    let config = net.path().join("hub.toml");
    let (ok, said) = hub_cli(&["backup", "--out", "/tmp/never-written"], &config);
    assert!(!ok && said.contains("pg_dump"), "{said}");
    let (ok, said) = hub_cli(&["restore", "--from", "/tmp/never-read"], &config);
    assert!(!ok && said.contains("pg_restore"), "{said}");
}
