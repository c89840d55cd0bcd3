//! Federation: the same small documents and latency probes through two
//! hubs (heilongjiang → national → jilin) and, in the same run, through
//! one (two units of heilongjiang), so the cost of the second hop reads as
//! a ratio; and the memory of national while it relays one large document.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use gongwen_common::federation::Domain;
use time::OffsetDateTime;

use crate::cases::{count_entries, percentile, poll};
use crate::env::{Env, memory_kib};
use crate::report::Row;

/// Have `env`'s CA sign a statement for `domain`, whose CA is `peer`'s.
fn federate(env: &Env, domain: &str, peer: &Env) -> anyhow::Result<()> {
    let peer_ca = std::fs::read(peer.ca_dir().join("ca.crt"))?;
    let ca = gongwen_certs::Ca::open(env.ca_dir())?;
    let statement = ca.federate(Domain::parse(domain)?, &peer_ca, OffsetDateTime::now_utc())?;
    let dir = env.path().join("federation");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{domain}.fed")), statement)?;
    Ok(())
}

/// The `[federation]` of a hub of `domain`: (peer, dial address, routes).
fn federation_toml(
    domain: &str,
    peers: &[(&str, Option<std::net::SocketAddr>, &[&str])],
) -> String {
    let mut t = format!("[federation]\ndomain = \"{domain}\"\n");
    for (peer, addr, routes) in peers {
        t.push_str(&format!(
            "[[federation.peers]]\ndomain = \"{peer}\"\nstatement = \"{}\"\n",
            Path::new("federation")
                .join(format!("{peer}.fed"))
                .display()
        ));
        if let Some(a) = addr {
            t.push_str(&format!("addr = [\"{a}\"]\n"));
        }
        if !routes.is_empty() {
            let r: Vec<String> = routes.iter().map(|r| format!("\"{r}\"")).collect();
            t.push_str(&format!("routes = [{}]\n", r.join(", ")));
        }
    }
    t
}

/// Drop `n` 4 KiB files from `from` into `outbox/<to>`; documents a second
/// until all are in `inbox` (the recipient's folder for this sender).
async fn small(env: &Env, from: &str, to: &str, inbox: &Path, n: usize) -> anyhow::Result<f64> {
    let staging = env.path().join(format!("small-{to}"));
    std::fs::create_dir_all(&staging)?;
    for i in 0..n {
        std::fs::write(staging.join(format!("{i:05}.txt")), vec![b'x'; 4096])?;
    }
    let outbox = env.root(from).join("outbox").join(to);
    std::fs::create_dir_all(&outbox)?;
    let before = count_entries(inbox);
    let start = Instant::now();
    for i in 0..n {
        let name = format!("{i:05}.txt");
        std::fs::rename(staging.join(&name), outbox.join(&name))?;
    }
    poll(
        "all small documents delivered",
        Duration::from_secs(1200),
        Duration::from_millis(50),
        || (count_entries(inbox) >= before + n).then_some(()),
    )
    .await?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// One small document at a time: seconds from the drop to the recipient's
/// inbox, each.
async fn latencies(
    env: &Env,
    from: &str,
    to: &str,
    inbox: &Path,
    n: usize,
) -> anyhow::Result<Vec<f64>> {
    let outbox = env.root(from).join("outbox").join(to);
    std::fs::create_dir_all(&outbox)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let staging = env.path().join(format!("lat-{to}-{i}.txt"));
        std::fs::write(&staging, format!("latency probe {i}"))?;
        let before = count_entries(inbox);
        let start = Instant::now();
        std::fs::rename(&staging, outbox.join(format!("lat-{i:04}.txt")))?;
        poll(
            "a latency probe",
            Duration::from_secs(60),
            Duration::from_millis(1),
            || (count_entries(inbox) > before).then_some(()),
        )
        .await?;
        out.push(start.elapsed().as_secs_f64());
    }
    Ok(out)
}

/// The federation rows: `n` small documents, `probes` latency probes, and a
/// relayed document of `big` bytes.
pub async fn rows(bin: &Path, n: usize, probes: usize, big: u64) -> anyhow::Result<Vec<Row>> {
    let (mut nat, mut hlj, mut jil) = (Env::new(bin)?, Env::new(bin)?, Env::new(bin)?);
    federate(&nat, "heilongjiang", &hlj)?;
    federate(&nat, "jilin", &jil)?;
    federate(&hlj, "national", &nat)?;
    federate(&jil, "national", &nat)?;
    nat.enroll("gov-office")?;
    for id in ["bench-a", "bench-c"] {
        hlj.enroll(id)?;
    }
    jil.enroll("bench-b")?;
    nat.set_hub_extra(&federation_toml(
        "national",
        &[("heilongjiang", None, &[]), ("jilin", None, &[])],
    ));
    let (nat_hub, nat_addr) = nat.start_hub(&[])?;
    hlj.set_hub_extra(&federation_toml(
        "heilongjiang",
        &[("national", Some(nat_addr), &["jilin"])],
    ));
    jil.set_hub_extra(&federation_toml(
        "jilin",
        &[("national", Some(nat_addr), &["heilongjiang"])],
    ));
    let (_hlj_hub, hlj_addr) = hlj.start_hub(&[])?;
    let (_jil_hub, jil_addr) = jil.start_hub(&[])?;
    let _a = hlj.start_agent("bench-a", hlj_addr)?;
    let _c = hlj.start_agent("bench-c", hlj_addr)?;
    let _b = jil.start_agent("bench-b", jil_addr)?;
    hlj.wait_ready(2).await?;
    jil.wait_ready(1).await?;
    // The outbox folder for the unit elsewhere: the directories crossed.
    let folder = hlj.root("bench-a").join("outbox").join("bench-b@jilin");
    poll(
        "jilin's units known at heilongjiang",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || folder.is_dir().then_some(()),
    )
    .await
    .context("the federation did not form")?;

    let one_inbox = hlj.root("bench-c").join("inbox").join("bench-a");
    let two_inbox = jil
        .root("bench-b")
        .join("inbox")
        .join("bench-a@heilongjiang");
    eprintln!("federation: {n} small documents through one hub, then through two");
    let one = small(&hlj, "bench-a", "bench-c", &one_inbox, n).await?;
    let two = small(&hlj, "bench-a", "bench-b@jilin", &two_inbox, n).await?;
    eprintln!("federation: latency, {probes} probes each way");
    let lat_one = latencies(&hlj, "bench-a", "bench-c", &one_inbox, probes).await?;
    let lat_two = latencies(&hlj, "bench-a", "bench-b@jilin", &two_inbox, probes).await?;
    let ms = |v: &[f64], p: f64| percentile(v, p) * 1000.0;

    let mib = big as f64 / (1 << 20) as f64;
    eprintln!("federation: one document of {mib:.0} MiB relayed by national");
    let staging = hlj.path().join("big.bin");
    Env::make_file(&staging, big)?;
    let (_, rss_before) = memory_kib(nat_hub.child.id());
    let outbox = hlj.root("bench-a").join("outbox").join("bench-b@jilin");
    let before = count_entries(&two_inbox);
    let start = Instant::now();
    std::fs::rename(&staging, outbox.join("big.bin"))?;
    let mut peak = 0u64;
    poll(
        "the large document at jilin",
        Duration::from_secs(1200),
        Duration::from_millis(20),
        || {
            let (_, rss) = memory_kib(nat_hub.child.id());
            peak = peak.max(rss);
            (count_entries(&two_inbox) > before).then_some(())
        },
    )
    .await?;
    let secs = start.elapsed().as_secs_f64();

    Ok(vec![
        Row::new(
            &format!("Federation: small documents, {n} × 4 KiB through two hubs (heilongjiang → national → jilin), end to end"),
            two,
            "docs/s",
        )
        .vs(one, "one hub", two / one)
        .note("the one-hub baseline: the same sender to a unit of its own hub, same run"),
        Row::new("Federation: latency p50 through two hubs", ms(&lat_two, 50.0), "ms")
            .vs(ms(&lat_one, 50.0), "one hub", ms(&lat_two, 50.0) / ms(&lat_one, 50.0))
            .note("ratio: time through two hubs / through one"),
        Row::new("Federation: latency p99 through two hubs", ms(&lat_two, 99.0), "ms")
            .vs(ms(&lat_one, 99.0), "one hub", ms(&lat_two, 99.0) / ms(&lat_one, 99.0))
            .note("ratio: time through two hubs / through one"),
        Row::new(
            &format!("Federation: memory of national relaying {mib:.0} MiB (RSS peak)"),
            peak as f64 / 1024.0,
            "MiB",
        )
        .note(&format!(
            "RSS {:.0} MiB before; the document took {secs:.1} s from the drop to jilin's inbox",
            rss_before as f64 / 1024.0
        )),
    ])
}
