//! `gongwen-bench`: measures the real hub and agents against baselines in
//! the same run and writes BENCHMARKS.md and bench-results.json.
//! Run it through `scripts/bench.sh` (release build).

mod baseline;
mod cases;
mod console;
mod crypto;
mod env;
mod federation;
mod report;
mod swarm;

use anyhow::Context as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use gongwen_common::Role;

use crate::env::{Env, memory_kib};
use crate::report::{Results, Row};

/// Benchmarks of gongwen against raw QUIC, scp and fsync.
#[derive(Debug, Parser)]
#[command(name = "gongwen-bench")]
struct Cli {
    /// Small sizes: finishes in about two minutes.
    #[arg(long)]
    quick: bool,
    /// Where the release binaries are.
    #[arg(long, default_value = "target/release")]
    bin: PathBuf,
    /// Where to write BENCHMARKS.md and bench-results.json (default: the
    /// repository's own files for a full run; target/bench-quick/ for
    /// --quick or --only, so a partial run never replaces the committed
    /// full-run figures).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only these parts (for profiling one path): big, small, latency,
    /// fanout, console, crypto, gm, swarm, federation. Baselines needed for their ratios run
    /// too (gm: the standard big and small rows it is read beside).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Simulated units in the swarm (default: 10,000; 1,000 with --quick).
    #[arg(long)]
    units: Option<usize>,
    /// Minutes the swarm stays idle while the hub's CPU and memory are
    /// watched.
    #[arg(long, default_value_t = 1)]
    idle_minutes: usize,
    /// Internal: run as one of the swarm's worker processes.
    #[arg(long, hide = true)]
    swarm_worker: Option<String>,
}

struct Sizes {
    big: u64,
    fan_out: usize,
    fan_size: u64,
    small: usize,
    latency: usize,
    fsync: usize,
}

const MIB: f64 = 1048576.0;

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    format!(
        "{cpus} cores ({model}), {} GiB RAM, loopback",
        mem / 1048576
    )
}

/// Why the PostgreSQL rows are missing.
const PG_SKIPPED: &str = "skipped: install the Debian package postgresql";

/// A throwaway PostgreSQL cluster that makes its commits durable (fsync
/// on, as the embedded store does), or `None` when PostgreSQL is absent.
fn postgres() -> Option<gongwen_tests::pg::Cluster> {
    gongwen_tests::pg::available()
        .then(|| gongwen_tests::pg::Cluster::start_with(&["fsync = on", "full_page_writes = on"]))
}

/// What one fan-out run measured.
struct FanOut {
    /// The hub's RSS with every agent connected.
    hub_mib: f64,
    /// Drop → last delivered receipt.
    secs: f64,
    /// All agents back after a hub restart.
    storm: f64,
}

/// Start a hub and a sender plus `ids` in `env`, fan one document of
/// `size` out to all of them, then restart the hub under them.
async fn fan_out(env: &Env, ids: &[String], size: u64) -> anyhow::Result<FanOut> {
    let n = ids.len();
    let (hub, addr) = env.start_hub(&[("all", ids.to_vec())])?;
    let mut agents = vec![env.start_agent("fan-sender", addr)?];
    for id in ids {
        agents.push(env.start_agent(id, addr)?);
    }
    env.wait_ready(n + 1).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, hub_rss) = memory_kib(hub.child.id());
    eprintln!("fan-out: {} MiB to {n} units", size >> 20);
    let (_, secs) = cases::one_document(env, "fan-sender", "all", size, n).await?;
    eprintln!("reconnect storm: restarting the hub under {n} agents");
    drop(hub);
    let (hub, _) = env.start_hub_at(&[("all", ids.to_vec())], addr)?;
    let storm = env.wait_ready(n + 1).await?;
    drop(agents);
    drop(hub);
    Ok(FanOut {
        hub_mib: hub_rss as f64 / 1024.0,
        secs,
        storm: storm.as_secs_f64(),
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(arg) = &cli.swarm_worker {
        return swarm::worker(arg);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(cli))
}

async fn bench(cli: Cli) -> anyhow::Result<()> {
    let out = cli.out.clone().unwrap_or_else(|| {
        if cli.quick || !cli.only.is_empty() {
            PathBuf::from("target/bench-quick")
        } else {
            PathBuf::from(".")
        }
    });
    // Made (and checked writable) first, not after minutes of measuring.
    std::fs::create_dir_all(&out)
        .with_context(|| format!("cannot create the output folder {}", out.display()))?;
    eprintln!("results go to {}", out.join("BENCHMARKS.md").display());
    let s = if cli.quick {
        Sizes {
            big: 256 << 20,
            fan_out: 20,
            fan_size: 10 << 20,
            small: 300,
            latency: 30,
            fsync: 300,
        }
    } else {
        Sizes {
            big: 1 << 30,
            fan_out: 194,
            fan_size: 10 << 20,
            small: 10_000,
            latency: 200,
            fsync: 2000,
        }
    };
    let bin = std::fs::canonicalize(&cli.bin)?;
    let want = |part: &str| cli.only.is_empty() || cli.only.iter().any(|o| o == part);
    let mut rows = Vec::new();
    let big_mib = s.big as f64 / MIB;

    // ---- one sender, one recipient
    let env = Env::new(&bin)?;
    for id in ["bench-a", "bench-b"] {
        env.issue(id, Role::Node)?;
    }
    // The GM rows are read beside the standard ones of the same run.
    let (want_big, want_small) = (want("big") || want("gm"), want("small") || want("gm"));
    let pair = want_big || want_small || want("latency");
    let mut small_embedded = None;
    let mut big_standard = None;
    if pair {
        eprintln!("baseline C: fsync of 4 KiB records");
        let fsync = baseline::fsync_rate(env.path(), s.fsync)?;
        rows.push(
            Row::new("Baseline C: write 4 KiB + fsync", fsync, "records/s")
                .note("the disk's durable-write ceiling"),
        );

        eprintln!("baseline D: durable sequential write, {big_mib:.0} MiB");
        let disk = baseline::disk_write(env.path(), s.big)?;
        rows.push(
            Row::new(
                &format!("Baseline D: write {big_mib:.0} MiB + fsync"),
                disk,
                "MiB/s",
            )
            .note("the disk's durable-write bandwidth: accepted needs one such copy at the hub"),
        );

        eprintln!("baseline A: raw QUIC, one connection, {big_mib:.0} MiB");
        let raw1 = baseline::raw_quic(&env, 1, s.big).await?;
        let raw1_mbs = big_mib / raw1;
        rows.push(
            Row::new(
                &format!("Baseline A: raw QUIC, 1 connection, {big_mib:.0} MiB"),
                raw1_mbs,
                "MiB/s",
            )
            .note("same quinn/rustls configs and hub socket"),
        );

        eprintln!("baseline B: scp");
        let scp_file = env.path().join("scp.bin");
        Env::make_file(&scp_file, s.big)?;
        let scp = baseline::scp(env.path(), &scp_file);
        let _ = std::fs::remove_file(&scp_file);
        let scp_mbs = match &scp {
            Ok(Some(secs)) => {
                let v = big_mib / secs;
                rows.push(
                    Row::new(
                        &format!("Baseline B: scp -c aes128-gcm, {big_mib:.0} MiB"),
                        v,
                        "MiB/s",
                    )
                    .note("loopback sshd"),
                );
                Some(v)
            }
            Ok(None) => {
                rows.push(
                    Row::new("Baseline B: scp", 0.0, "MiB/s")
                        .note("skipped: openssh-server not installed"),
                );
                None
            }
            Err(e) => {
                rows.push(Row::new("Baseline B: scp", 0.0, "MiB/s").note(&format!("skipped: {e}")));
                None
            }
        };

        let (hub, addr) = env.start_hub(&[])?;
        let idle = env.start_agent("bench-a", addr)?;
        let recv = env.start_agent("bench-b", addr)?;
        env.wait_ready(2).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (_, idle_rss) = memory_kib(idle.child.id());
        rows.push(
            Row::new("Memory: idle agent (RSS)", idle_rss as f64 / 1024.0, "MiB")
                .target("≤ 10 MiB", idle_rss as f64 / 1024.0 <= 10.0),
        );

        if want_big {
            eprintln!("upload and end to end: {big_mib:.0} MiB");
            let (up, e2e) = cases::one_document(&env, "bench-a", "bench-b", s.big, 1).await?;
            let up_mbs = big_mib / up;
            let e2e_mbs = big_mib / e2e;
            big_standard = Some((up_mbs, e2e_mbs));
            rows.push(
                Row::new(
                    &format!("Upload {big_mib:.0} MiB (drop → accepted)"),
                    up_mbs,
                    "MiB/s",
                )
                .vs(raw1_mbs, "A", up_mbs / raw1_mbs)
                .target("≥ 0.9× A", up_mbs / raw1_mbs >= 0.9)
                .note("includes the claim and the sealing pass"),
            );
            rows.push(
                Row::new(
                    &format!("Upload {big_mib:.0} MiB vs a durable disk write"),
                    up_mbs,
                    "MiB/s",
                )
                .vs(disk, "D", up_mbs / disk),
            );
            if let Some(scp) = scp_mbs {
                rows.push(
                    Row::new(&format!("Upload {big_mib:.0} MiB vs scp"), up_mbs, "MiB/s")
                        .vs(scp, "B", up_mbs / scp)
                        .target("≥ 1.3× B", up_mbs / scp >= 1.3),
                );
            }
            rows.push(
                Row::new(
                    &format!("End to end {big_mib:.0} MiB (drop → delivered receipt)"),
                    e2e_mbs,
                    "MiB/s",
                )
                .vs(raw1_mbs, "A", e2e_mbs / raw1_mbs)
                .target("≥ 0.5× A", e2e_mbs / raw1_mbs >= 0.5),
            );
            let mem = |p: &env::Proc| memory_kib(p.child.id()).0 as f64 / 1024.0;
            let (hub_hwm, a_hwm, b_hwm) = (mem(&hub), mem(&idle), mem(&recv));
            rows.push(
                Row::new(
                    &format!("Memory: hub peak during {big_mib:.0} MiB"),
                    hub_hwm,
                    "MiB",
                )
                .target("< 100 MiB", hub_hwm < 100.0),
            );
            rows.push(
                Row::new(
                    &format!("Memory: sending agent peak during {big_mib:.0} MiB"),
                    a_hwm,
                    "MiB",
                )
                .target("< 100 MiB", a_hwm < 100.0),
            );
            rows.push(
                Row::new(
                    &format!("Memory: receiving agent peak during {big_mib:.0} MiB"),
                    b_hwm,
                    "MiB",
                )
                .target("< 100 MiB", b_hwm < 100.0),
            );
        }
        if want_small {
            eprintln!("small documents: {}", s.small);
            let (acc_rate, del_rate) =
                cases::small_documents(&env, "bench-a", "bench-b", s.small).await?;
            small_embedded = Some(del_rate);
            rows.push(
                Row::new(
                    &format!("Small documents: {} × 4 KiB, accepted", s.small),
                    acc_rate,
                    "docs/s",
                )
                .vs(fsync, "C", acc_rate / fsync),
            );
            rows.push(
                Row::new(
                    &format!("Small documents: {} × 4 KiB, end to end", s.small),
                    del_rate,
                    "docs/s",
                )
                .vs(fsync, "C", del_rate / fsync)
                .target("≥ 2000 docs/s", del_rate >= 2000.0),
            );
        }
        if want("small") {
            if let Some(cluster) = postgres() {
                let pg_env = Env::on_postgres(&bin, &cluster.conn())?;
                for id in ["bench-a", "bench-b"] {
                    pg_env.issue(id, Role::Node)?;
                }
                let (_hub, addr) = pg_env.start_hub(&[])?;
                let _a = pg_env.start_agent("bench-a", addr)?;
                let _b = pg_env.start_agent("bench-b", addr)?;
                pg_env.wait_ready(2).await?;
                eprintln!("small documents on PostgreSQL: {}", s.small);
                let (_, pg_rate) =
                    cases::small_documents(&pg_env, "bench-a", "bench-b", s.small).await?;
                let embedded = small_embedded.unwrap_or(f64::NAN);
                rows.push(
                    Row::new(
                        &format!(
                            "Small documents on PostgreSQL: {} × 4 KiB, end to end",
                            s.small
                        ),
                        pg_rate,
                        "docs/s",
                    )
                    .vs(embedded, "embedded", pg_rate / embedded)
                    .target("≥ 0.5× embedded", pg_rate / embedded >= 0.5),
                );
            } else {
                rows.push(
                    Row::new("Small documents on PostgreSQL", 0.0, "docs/s").note(PG_SKIPPED),
                );
            }
        }
        if want("latency") {
            eprintln!("latency: {} single documents", s.latency);
            let lat = cases::latencies(&env, "bench-a", "bench-b", s.latency).await?;
            let (p50, p99) = (
                cases::percentile(&lat, 50.0) * 1000.0,
                cases::percentile(&lat, 99.0) * 1000.0,
            );
            rows.push(
                Row::new("Latency p50 (drop → recipient inbox)", p50, "ms")
                    .target("≤ 50 ms", p50 <= 50.0),
            );
            rows.push(
                Row::new("Latency p99 (drop → recipient inbox)", p99, "ms")
                    .target("≤ 250 ms", p99 <= 250.0),
            );
        }
        drop((idle, recv, hub));
    }
    if want("gm") {
        rows.extend(gm_rows(&bin, &s, big_standard, small_embedded).await?);
    }
    if want("fanout") {
        // ---- fan-out to many units
        let n = s.fan_out;
        let fan = Env::new(&bin)?;
        let ids: Vec<String> = (0..n).map(|i| format!("unit-{i:03}")).collect();
        fan.issue("fan-sender", Role::Node)?;
        for id in &ids {
            fan.issue(id, Role::Node)?;
        }
        eprintln!(
            "baseline A: raw QUIC, {n} connections × {} MiB",
            s.fan_size >> 20
        );
        let raw_n = baseline::raw_quic(&fan, n, s.fan_size).await?;
        rows.push(Row::new(
            &format!(
                "Baseline A: raw QUIC, {n} connections × {} MiB",
                s.fan_size >> 20
            ),
            raw_n,
            "s",
        ));
        let embedded = fan_out(&fan, &ids, s.fan_size).await?;
        rows.push(
            Row::new(
                &format!("Memory: hub with {n} agents connected (RSS)"),
                embedded.hub_mib,
                "MiB",
            )
            .target("≤ 64 MiB", embedded.hub_mib <= 64.0),
        );
        let fan_row = |store: &str| {
            format!(
                "Fan-out{store}: {} MiB to {n} units (drop → last delivered receipt)",
                s.fan_size >> 20
            )
        };
        rows.push(
            Row::new(&fan_row(""), embedded.secs, "s")
                .vs(raw_n, "A", embedded.secs / raw_n)
                .target("≤ 1.5× A (time)", embedded.secs / raw_n <= 1.5),
        );
        rows.push(
            Row::new(
                &format!("Reconnect storm: all {n} agents back after a hub restart"),
                embedded.storm,
                "s",
            )
            .target("≤ 5 s", embedded.storm <= 5.0),
        );
        drop(fan);
        if let Some(cluster) = postgres() {
            let fan = Env::on_postgres(&bin, &cluster.conn())?;
            fan.issue("fan-sender", Role::Node)?;
            for id in &ids {
                fan.issue(id, Role::Node)?;
            }
            eprintln!(
                "fan-out on PostgreSQL: {} MiB to {n} units",
                s.fan_size >> 20
            );
            let pg = fan_out(&fan, &ids, s.fan_size).await?;
            // Time: the embedded figure over this one is the speed ratio.
            let speed = embedded.secs / pg.secs;
            rows.push(
                Row::new(&fan_row(" on PostgreSQL"), pg.secs, "s")
                    .vs(embedded.secs, "embedded", pg.secs / embedded.secs)
                    .target("≥ 0.5× embedded (speed)", speed >= 0.5),
            );
        } else {
            rows.push(Row::new(&fan_row(" on PostgreSQL"), 0.0, "s").note(PG_SKIPPED));
        }
    }

    // ---- the console over a large store
    if want("console") {
        let docs = if cli.quick { 10_000 } else { 100_000 };
        let env = Env::new(&bin)?;
        eprintln!("console: pages over 100 documents (the baseline)");
        let small = console::measure(&env, &bin, "console-small", 100, 100)?;
        eprintln!("console: pages over {docs} documents");
        let large = console::measure(&env, &bin, "console-large", docs, 100)?;
        for (((what, _), base), big) in console::PAGES.iter().zip(&small).zip(&large) {
            rows.push(
                Row::new(
                    &format!("Console {what}, {docs} documents in the store"),
                    *big,
                    "ms",
                )
                .vs(*base, "100 documents", big / base),
            );
        }
    }

    // ---- national scale: simulated units against one hub
    if want("federation") {
        let big = if cli.quick { 256 << 20 } else { 1 << 30 };
        rows.extend(federation::rows(&bin, s.small.min(2_000), s.latency, big).await?);
    }
    if want("swarm") {
        let units = cli.units.unwrap_or(if cli.quick { 1_000 } else { 10_000 });
        eprintln!("swarm: {units} simulated units");
        swarm::run(&bin, units, cli.idle_minutes, &mut rows).await?;
    }

    // ---- the GM suite's cryptography beside the standard one
    if want("crypto") {
        let env = Env::new(&bin)?;
        env.issue("bench-gm", Role::Node)?;
        let dir = env.path().join("bench-gm");
        let cert = gongwen_common::pki::load_certs(&dir.join("bench-gm.crt"))?.remove(0);
        let key = gongwen_common::pki::load_private_key(&dir.join("bench-gm.key"))?;
        let signer = gongwen_common::signed::Signer::new(&key, cert)?;
        rows.extend(crypto::rows(signer, s.big)?);
    }

    let results = Results {
        date: gongwen_common::timefmt::rfc3339(time::OffsetDateTime::now_utc()),
        machine: machine(),
        quick: cli.quick,
        rows,
    };
    let md = report::markdown(&results);
    print!("{md}");
    std::fs::write(out.join("BENCHMARKS.md"), &md)?;
    std::fs::write(
        out.join("bench-results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    Ok(())
}

/// The 国密 suite end to end: the large document and the small ones again
/// on a GM deployment (SM4-GCM content, SM3 digests, SM2 signatures and
/// key wrap), each beside the standard suite's figure of this run.
async fn gm_rows(
    bin: &std::path::Path,
    s: &Sizes,
    big_standard: Option<(f64, f64)>,
    small_standard: Option<f64>,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let big_mib = s.big as f64 / MIB;
    let env = Env::for_suite(bin, gongwen_common::suite::Suite::Gm)?;
    for id in ["bench-a", "bench-b"] {
        env.issue(id, Role::Node)?;
    }
    let (_hub, addr) = env.start_hub(&[])?;
    let _a = env.start_agent("bench-a", addr)?;
    let _b = env.start_agent("bench-b", addr)?;
    env.wait_ready(2).await?;
    eprintln!("GM: upload and end to end: {big_mib:.0} MiB");
    let (up, e2e) = cases::one_document(&env, "bench-a", "bench-b", s.big, 1).await?;
    let (up_mbs, e2e_mbs) = (big_mib / up, big_mib / e2e);
    let (std_up, std_e2e) = big_standard.unwrap_or((f64::NAN, f64::NAN));
    rows.push(
        Row::new(
            &format!("GM: upload {big_mib:.0} MiB (drop → accepted)"),
            up_mbs,
            "MiB/s",
        )
        .vs(std_up, "standard", up_mbs / std_up)
        .note("SM3 and SM4-GCM over the content at the sender; SM3 again at the hub"),
    );
    rows.push(
        Row::new(
            &format!("GM: end to end {big_mib:.0} MiB (drop → delivered receipt)"),
            e2e_mbs,
            "MiB/s",
        )
        .vs(std_e2e, "standard", e2e_mbs / std_e2e)
        .note("plus SM4-GCM opening and SM3 file digests at the recipient"),
    );
    eprintln!("GM: small documents: {}", s.small);
    let (_, del_rate) = cases::small_documents(&env, "bench-a", "bench-b", s.small).await?;
    let std_small = small_standard.unwrap_or(f64::NAN);
    rows.push(
        Row::new(
            &format!("GM: small documents: {} × 4 KiB, end to end", s.small),
            del_rate,
            "docs/s",
        )
        .vs(std_small, "standard", del_rate / std_small)
        .note("SM2 signatures on the header and each receipt, SM2 key wrap"),
    );
    Ok(rows)
}
