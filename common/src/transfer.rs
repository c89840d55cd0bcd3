//! Moving a document's bytes between a QUIC stream and a file without
//! doing file I/O on the async threads and without a thread hand-off per
//! packet.
//!
//! QUIC hands a reader one STREAM frame at a time (about a kilobyte on
//! loopback). Passing each to a blocking writer costs a futex wake per
//! packet, which with many transfers at once (a hub delivering to 194
//! units) made the scheduler, not the disk, the bottleneck. Here the async
//! side gathers frames into batches of about [`BATCH`] bytes and the
//! blocking side writes whole batches; reading a file goes the other way
//! in [`BATCH`]-sized chunks from one blocking thread.

use std::io::{Read, Seek};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

/// How many bytes cross between the async side and the file thread at once.
pub const BATCH: usize = 256 * 1024;

/// Batches in flight between the two sides: enough to keep the disk busy
/// while QUIC fills the next, little enough to bound memory per transfer.
const DEPTH: usize = 4;

/// What the file thread receives: frames, in order, about [`BATCH`] bytes.
#[derive(Debug)]
pub struct Batches(mpsc::Receiver<Vec<Bytes>>);

impl Batches {
    /// The next batch, or `None` once the stream ended or failed. Blocking:
    /// call it on the file thread only.
    pub fn next_blocking(&mut self) -> Option<Vec<Bytes>> {
        self.0.blocking_recv()
    }

    /// The next batch, for a writer that is itself async (a database).
    pub async fn next(&mut self) -> Option<Vec<Bytes>> {
        self.0.recv().await
    }

    /// Batches read from `file` instead of a stream (moving an embedded
    /// hub's content into PostgreSQL; tests), about [`BATCH`] bytes each.
    pub fn from_reader(mut file: impl std::io::Read + Send + 'static) -> Batches {
        let (tx, rx) = mpsc::channel(DEPTH);
        std::thread::spawn(move || {
            loop {
                let mut buf = vec![0u8; BATCH];
                let n = match file.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.truncate(n);
                if tx.blocking_send(vec![Bytes::from(buf)]).is_err() {
                    return;
                }
            }
        });
        Batches(rx)
    }
}

/// Why reading the stream stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The peer finished the stream.
    Finished,
    /// The peer sent nothing for the read timeout.
    Stalled,
    /// The stream or connection broke.
    Broken(String),
    /// More bytes came than were announced.
    TooLong,
    /// The file thread stopped taking batches (its own result says why).
    WriterGone,
}

/// Read `recv` to its end on the async side while `write` consumes the
/// batches on a blocking thread. `received` is where the stream starts
/// (bytes already on disk from an earlier attempt) and `limit` the most it
/// may reach. Returns why the reading stopped, how far it got, and what
/// the file thread returned.
pub async fn receive_to_blocking<T, E>(
    recv: &mut quinn::RecvStream,
    received: u64,
    limit: u64,
    read_timeout: Duration,
    write: impl FnOnce(Batches) -> Result<T, E> + Send + 'static,
) -> (StreamEnd, u64, Result<T, E>)
where
    T: Send + 'static,
    E: Send + 'static + From<std::io::Error>,
{
    receive_to(
        recv,
        received,
        limit,
        read_timeout,
        move |batches| async move {
            match tokio::task::spawn_blocking(move || write(batches)).await {
                Ok(r) => r,
                Err(e) => Err(E::from(std::io::Error::other(e.to_string()))),
            }
        },
    )
    .await
}

/// [`receive_to_blocking`] for a writer that is a future (it runs as a
/// task of its own while the stream is read).
pub async fn receive_to<T, E, F>(
    recv: &mut quinn::RecvStream,
    mut received: u64,
    limit: u64,
    read_timeout: Duration,
    write: impl FnOnce(Batches) -> F,
) -> (StreamEnd, u64, Result<T, E>)
where
    T: Send + 'static,
    E: Send + 'static + From<std::io::Error>,
    F: std::future::Future<Output = Result<T, E>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Vec<Bytes>>(DEPTH);
    let writer = tokio::spawn(write(Batches(rx)));
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batched = 0usize;
    let end = loop {
        let chunk = match tokio::time::timeout(read_timeout, recv.read_chunk(BATCH, true)).await {
            Err(_) => break StreamEnd::Stalled,
            Ok(Err(e)) => break StreamEnd::Broken(e.to_string()),
            Ok(Ok(None)) => break StreamEnd::Finished,
            Ok(Ok(Some(chunk))) => chunk.bytes,
        };
        received += chunk.len() as u64;
        if received > limit {
            break StreamEnd::TooLong;
        }
        batched += chunk.len();
        batch.push(chunk);
        if batched >= BATCH {
            batched = 0;
            if tx.send(std::mem::take(&mut batch)).await.is_err() {
                break StreamEnd::WriterGone;
            }
        }
    };
    // What was read is written even when the stream broke: a resume then
    // starts from the last durable point, never from unwritten bytes.
    if !batch.is_empty() && end != StreamEnd::TooLong {
        let _ = tx.send(batch).await;
    }
    drop(tx);
    let written = match writer.await {
        Ok(r) => r,
        Err(e) => Err(E::from(std::io::Error::other(e.to_string()))),
    };
    (end, received, written)
}

/// Hash the first `len` bytes of `file` (what an earlier attempt kept)
/// into `hash`, leaving the file positioned at `len`; false if the file is
/// shorter. Blocking.
pub fn hash_kept(
    file: &mut std::fs::File,
    len: u64,
    hash: &mut crate::suite::Hasher,
) -> std::io::Result<bool> {
    file.rewind()?;
    let mut left = len;
    let mut buf = vec![0u8; BATCH.min(len as usize)];
    while left > 0 {
        let want = left.min(BATCH as u64) as usize;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Ok(false);
        }
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(true)
}

/// Read `path` from `offset` to its end on a blocking thread, in chunks of
/// [`BATCH`] bytes. The reader stops when the receiver is dropped.
pub fn read_file_chunks(path: PathBuf, offset: u64) -> mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(DEPTH);
    tokio::task::spawn_blocking(move || {
        let opened = std::fs::File::open(&path).and_then(|mut f| {
            f.seek(std::io::SeekFrom::Start(offset))?;
            Ok(f)
        });
        let mut file = match opened {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let mut buf = vec![0u8; BATCH];
            let mut filled = 0;
            // Fill the whole chunk: short reads would make short QUIC writes.
            while filled < BATCH {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() || filled < BATCH {
                return;
            }
        }
    });
    rx
}
