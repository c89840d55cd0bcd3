//! A UDP relay between agents and the hub that loses, duplicates,
//! reorders and delays datagrams, and can cut the link for a while: the
//! network of a county office on a bad day, on loopback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::Rng;

/// What the relay does to each datagram, in percent.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub drop: u64,
    pub duplicate: u64,
    /// Held back 5–40 ms, so later datagrams overtake it.
    pub delay: u64,
}

/// Datagrams the relay handled, by fate.
#[derive(Debug, Default)]
pub struct Counts {
    pub relayed: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub delayed: AtomicU64,
}

#[derive(Debug)]
pub struct LossyProxy {
    /// Where agents connect instead of the hub.
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    cut: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

struct Fate {
    faults: Faults,
    rng: std::sync::Mutex<Rng>,
    cut: Arc<AtomicBool>,
    counts: Arc<Counts>,
}

impl Fate {
    /// Send `data` to `to` through `sock`, with the faults applied.
    fn relay(self: &Arc<Self>, sock: &Arc<UdpSocket>, data: Vec<u8>, to: SocketAddr) {
        if self.cut.load(Ordering::Relaxed) {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let (roll, dup, delay, wait) = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            (
                rng.range(0, 100),
                rng.range(0, 100),
                rng.range(0, 100),
                rng.range(5, 40),
            )
        };
        if roll < self.faults.drop {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let copies = if dup < self.faults.duplicate {
            self.counts.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        self.counts.relayed.fetch_add(1, Ordering::Relaxed);
        if delay < self.faults.delay {
            self.counts.delayed.fetch_add(1, Ordering::Relaxed);
            let sock = sock.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                for _ in 0..copies {
                    let _ = sock.send_to(&data, to).await;
                }
            });
        } else {
            for _ in 0..copies {
                let _ = sock.try_send_to(&data, to);
            }
        }
    }
}

impl LossyProxy {
    /// Relay between clients on a new port and the hub at `hub`. Each
    /// client gets its own upstream socket, so the hub sees one address
    /// per agent as it would without the relay.
    pub async fn start(hub: SocketAddr, faults: Faults, rng: Rng) -> LossyProxy {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = front.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let fate = Arc::new(Fate {
            faults,
            rng: std::sync::Mutex::new(rng),
            cut: cut.clone(),
            counts: counts.clone(),
        });
        let task = tokio::spawn(async move {
            let mut upstream: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((n, client)) = front.recv_from(&mut buf).await else {
                    return;
                };
                let up = match upstream.get(&client) {
                    Some(s) => s.clone(),
                    None => {
                        let Ok(s) = UdpSocket::bind("127.0.0.1:0").await else {
                            continue;
                        };
                        let s = Arc::new(s);
                        upstream.insert(client, s.clone());
                        // Hub → this client.
                        let (s2, front2, fate2) = (s.clone(), front.clone(), fate.clone());
                        tokio::spawn(async move {
                            let mut buf = vec![0u8; 65536];
                            while let Ok((n, _)) = s2.recv_from(&mut buf).await {
                                fate2.relay(&front2, buf[..n].to_vec(), client);
                            }
                        });
                        s
                    }
                };
                fate.relay(&up, buf[..n].to_vec(), hub);
            }
        });
        LossyProxy {
            addr,
            counts,
            cut,
            task,
        }
    }

    /// Cut the link (every datagram lost) or restore it.
    pub fn cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
