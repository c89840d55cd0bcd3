//! The gongwen measurements: real hub and agent processes, real files.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use gongwen_agent::front::control::{DocStatus, Request};

use crate::env::Env;

/// Poll `probe` every `every` until it returns a value or `limit` passes.
pub async fn poll<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        if start.elapsed() > limit {
            bail!("gave up after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

pub fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

pub async fn status(env: &Env, id: &str) -> anyhow::Result<Vec<DocStatus>> {
    let socket = gongwen_agent::unit::folders::Folders::new(&env.root(id)).control_socket();
    let v = gongwen_agent::front::control::query(&socket, &Request::Status { doc: None }).await?;
    Ok(serde_json::from_value(v)?)
}

/// How many recipients of `id`'s sent documents hold `delivered`.
pub async fn delivered_count(env: &Env, id: &str) -> usize {
    status(env, id)
        .await
        .map(|st| {
            st.iter()
                .flat_map(|d| d.recipients.iter())
                .filter(|r| r.state == "delivered")
                .count()
        })
        .unwrap_or(0)
}

/// Drop a `size`-byte file from `from` to `to`; return (seconds until the
/// hub accepted it, seconds until the delivered receipt was back).
pub async fn one_document(
    env: &Env,
    from: &str,
    to: &str,
    size: u64,
    recipients: usize,
) -> anyhow::Result<(f64, f64)> {
    let staging = env.path().join(format!("staging-{size}.bin"));
    Env::make_file(&staging, size)?;
    let sent_dir = env.root(from).join("sent");
    let before_sent = count_entries(&sent_dir);
    let before_delivered = delivered_count(env, from).await;
    let start = Instant::now();
    env.drop_file(from, to, &format!("doc-{size}.bin"), &staging)?;
    let limit = Duration::from_secs(600);
    poll(
        "the hub's accepted",
        limit,
        Duration::from_millis(2),
        || (count_entries(&sent_dir) > before_sent).then_some(()),
    )
    .await?;
    let accepted = start.elapsed().as_secs_f64();
    loop {
        if delivered_count(env, from).await >= before_delivered + recipients {
            break;
        }
        if start.elapsed() > limit {
            bail!("not delivered within {limit:?}");
        }
        // Asking too often would itself load the agent being measured.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((accepted, start.elapsed().as_secs_f64()))
}

/// `n` documents of 4 KiB dropped at once: (accepted per second,
/// delivered into the recipient's inbox per second).
pub async fn small_documents(
    env: &Env,
    from: &str,
    to: &str,
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    let staging = env.path().join("small");
    std::fs::create_dir_all(&staging)?;
    for i in 0..n {
        std::fs::write(staging.join(format!("{i:05}.txt")), vec![b'x'; 4096])?;
    }
    let outbox = env.root(from).join("outbox").join(to);
    std::fs::create_dir_all(&outbox)?;
    let sent_dir = env.root(from).join("sent");
    let inbox = env.root(to).join("inbox").join(from);
    let (sent0, inbox0) = (count_entries(&sent_dir), count_entries(&inbox));
    let start = Instant::now();
    for i in 0..n {
        let name = format!("{i:05}.txt");
        std::fs::rename(staging.join(&name), outbox.join(&name))?;
    }
    let limit = Duration::from_secs(1200);
    poll(
        "all small documents accepted",
        limit,
        Duration::from_millis(50),
        || (count_entries(&sent_dir) >= sent0 + n).then_some(()),
    )
    .await?;
    let accepted = start.elapsed().as_secs_f64();
    poll(
        "all small documents delivered",
        limit,
        Duration::from_millis(50),
        || (count_entries(&inbox) >= inbox0 + n).then_some(()),
    )
    .await?;
    let delivered = start.elapsed().as_secs_f64();
    Ok((n as f64 / accepted, n as f64 / delivered))
}

/// Drop one small document at a time; seconds from drop to the recipient's
/// inbox, for each.
pub async fn latencies(env: &Env, from: &str, to: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    let outbox = env.root(from).join("outbox").join(to);
    std::fs::create_dir_all(&outbox)?;
    let inbox = env.root(to).join("inbox").join(from);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let staging = env.path().join(format!("lat-{i}.txt"));
        std::fs::write(&staging, format!("latency probe {i}"))?;
        let before = count_entries(&inbox);
        let start = Instant::now();
        std::fs::rename(&staging, outbox.join(format!("lat-{i:04}.txt")))?;
        poll(
            "a latency probe",
            Duration::from_secs(60),
            Duration::from_millis(1),
            || (count_entries(&inbox) > before).then_some(()),
        )
        .await?;
        out.push(start.elapsed().as_secs_f64());
    }
    Ok(out)
}

pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[idx.min(s.len() - 1)]
}
