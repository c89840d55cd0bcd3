//! A 特急 document overtakes bulk: dropped while a 256 MiB normal document
//! is being delivered to the same unit, it arrives first — it is claimed
//! first at the hub and its streams (upload and delivery) have a higher
//! QUIC priority than the bulk one on the same connections. Real hub,
//! real agents, real files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::time::Duration;

use gongwen_common::Role;
use gongwen_tests::{Net, inbox_docs, wait_within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_urgent_document_overtakes_a_256_mib_one_to_the_same_unit() {
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let _prov = net.start_agent("prov-gov", hub.addr);
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;

    // 256 MiB, normal urgency, written in place then renamed into the outbox.
    let dir = net.root("prov-gov").join("outbox/harbin-gov");
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(".年度统计资料.bin.part");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
        let block: Vec<u8> = (0..1024 * 1024).map(|i| (i * 31 % 251) as u8).collect();
        for _ in 0..256 {
            f.write_all(&block).unwrap();
        }
        f.flush().unwrap();
    }
    std::fs::rename(&tmp, dir.join("年度统计资料.bin")).unwrap();

    // Once harbin-gov is receiving it, the urgent notice is dropped.
    let incoming = net.root("harbin-gov").join("state/incoming");
    wait_within(
        "the 256 MiB document on its way to harbin-gov",
        Duration::from_secs(300),
        || {
            let receiving = std::fs::read_dir(&incoming)
                .map(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                })
                .unwrap_or(false);
            receiving
                .then_some(())
                .ok_or_else(|| "nothing in state/incoming".to_string())
        },
    )
    .await;
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "特急通知.txt",
        "urgency = \"extra-urgent\"\n",
    );
    net.drop_file("prov-gov", "harbin-gov", "特急通知.txt", &[b'x'; 1024]);

    let first = wait_within(
        "the extra-urgent document at harbin-gov",
        Duration::from_secs(300),
        || {
            let docs = inbox_docs(&net.root("harbin-gov"), "prov-gov");
            (!docs.is_empty())
                .then_some(docs)
                .ok_or_else(|| "nothing yet".to_string())
        },
    )
    .await;
    assert_eq!(first.len(), 1, "both arrived together: {first:?}");
    assert!(
        first[0].join("特急通知.txt").exists(),
        "the bulk document arrived first: {first:?}"
    );
    // The bulk one still arrives, whole.
    let both = wait_within("the 256 MiB document", Duration::from_secs(300), || {
        let docs = inbox_docs(&net.root("harbin-gov"), "prov-gov");
        let n = docs.len();
        (n == 2)
            .then_some(docs)
            .ok_or_else(|| format!("{n} documents"))
    })
    .await;
    let big = both
        .iter()
        .find(|d| d.join("年度统计资料.bin").exists())
        .unwrap();
    let len = std::fs::metadata(big.join("年度统计资料.bin"))
        .unwrap()
        .len();
    assert_eq!(len, 256 * 1024 * 1024);
}
