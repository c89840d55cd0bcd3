//! The audit log: every receipt the hub records (accepted, delivered,
//! quarantined, acknowledged, rejected), in order, hash-chained, in
//! `<data_dir>/audit.log` — one JSON object per line:
//!
//! ```text
//! {"seq":1,"at":"…","at_ms":…,"doc_id":"…","kind":"accepted","recipient":"hub",
//!  "receipt":"<hex of the signed receipt>","prev":"<hex>","hash":"<hex>"}
//! hash = SHA-256(prev ‖ seq (u64 BE) ‖ at_ms (i64 BE) ‖ receipt)     prev of the first = 32 zero bytes
//! ```
//!
//! In a GM deployment (SM2-signed receipts) the hash is SM3.
//!
//! Editing, removing or reordering any entry breaks the chain from there
//! on; `gongwen-hub audit verify` names the first entry that does not
//! hold. Each entry is appended and fsynced before the store commits the
//! receipt it records, so no recorded receipt is missing from the log (a
//! crash in between can leave the same receipt logged twice, which
//! verification reports but does not count as tampering).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gongwen_common::pki::serial_hex;
use gongwen_common::receipt::Receipt;
use gongwen_common::signed::{Statement, StatementKind};
use gongwen_common::suite::Hasher;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub at: String,
    pub at_ms: i64,
    pub doc_id: String,
    pub kind: String,
    pub recipient: String,
    /// The signed receipt, hex.
    pub receipt: String,
    pub prev: String,
    pub hash: String,
}

/// Where a chain starts: the `prev` of its first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// The link hash, in the suite of the receipt it records: SHA-256, or SM3
/// in a GM deployment (whose receipts are all SM2-signed). The receipt
/// says its own suite, so a chain is verified without any configuration.
fn chain_hash(prev: &[u8; 32], seq: u64, at_ms: i64, receipt: &[u8]) -> [u8; 32] {
    let suite = Statement::decode(receipt, StatementKind::Receipt)
        .map(|st| st.suite())
        .unwrap_or_default();
    let mut h = Hasher::new(suite);
    h.update(prev);
    h.update(&seq.to_be_bytes());
    h.update(&at_ms.to_be_bytes());
    h.update(receipt);
    h.finish()
}

/// Hex text to bytes, if it is hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The entry that follows `prev` at `seq`, and its hash (the next `prev`).
/// Every backend appends with this, so one verifier checks them all.
pub fn next_entry(
    prev: &[u8; 32],
    seq: u64,
    receipt_bytes: &[u8],
    receipt: &Receipt,
    at_ms: i64,
) -> (Entry, [u8; 32]) {
    let hash = chain_hash(prev, seq, at_ms, receipt_bytes);
    let entry = Entry {
        seq,
        at: gongwen_common::timefmt::rfc3339_at_ms(at_ms).unwrap_or_default(),
        at_ms,
        doc_id: receipt.doc_id.to_string(),
        kind: receipt.kind.as_str().into(),
        recipient: receipt.recipient.to_string(),
        receipt: serial_hex(receipt_bytes),
        prev: serial_hex(prev),
        hash: serial_hex(&hash),
    };
    (entry, hash)
}

/// Hex to bytes (the chain's fields), if it is hex.
pub fn unhex_hash(s: &str) -> Option<[u8; 32]> {
    unhex(s).and_then(|h| <[u8; 32]>::try_from(h).ok())
}

/// The appending end of the log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    state: Mutex<(u64, [u8; 32])>,
}

impl AuditLog {
    /// Open (or create) the log and find where the chain ends.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        let mut last = (0u64, [0u8; 32]);
        if let Ok(f) = std::fs::File::open(path) {
            for line in std::io::BufReader::new(f).lines() {
                let line = line?;
                if let Ok(e) = serde_json::from_str::<Entry>(&line)
                    && let Some(h) = unhex(&e.hash).and_then(|h| <[u8; 32]>::try_from(h).ok())
                {
                    last = (e.seq, h);
                }
            }
        }
        Ok(AuditLog {
            path: path.to_owned(),
            state: Mutex::new(last),
        })
    }

    /// Append one receipt, durably. Blocking.
    pub fn append(
        &self,
        receipt_bytes: &[u8],
        receipt: &Receipt,
        at_ms: i64,
    ) -> std::io::Result<()> {
        self.append_all(&[(receipt_bytes, receipt, at_ms)])
    }

    /// Append receipts in order with one fsync for all (a group commit).
    /// Blocking.
    pub fn append_all(&self, receipts: &[(&[u8], &Receipt, i64)]) -> std::io::Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (mut seq, mut prev) = *state;
        let mut lines = Vec::new();
        for &(receipt_bytes, receipt, at_ms) in receipts {
            seq += 1;
            let (entry, hash) = next_entry(&prev, seq, receipt_bytes, receipt, at_ms);
            serde_json::to_writer(&mut lines, &entry).map_err(std::io::Error::other)?;
            lines.push(b'\n');
            prev = hash;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(&lines)?;
        f.sync_data()?;
        *state = (seq, prev);
        Ok(())
    }
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub entries: u64,
    /// The first entry that does not hold, and why.
    pub first_broken: Option<(u64, String)>,
    /// Receipts logged more than once (after a crash; not tampering).
    pub repeated: u64,
}

/// Checks a chain entry by entry, in order, whatever holds it.
#[derive(Debug)]
pub struct Verifier {
    prev: [u8; 32],
    seen: std::collections::HashSet<String>,
    verdict: Verdict,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            prev: GENESIS,
            seen: std::collections::HashSet::new(),
            verdict: Verdict {
                entries: 0,
                first_broken: None,
                repeated: 0,
            },
        }
    }
}

impl Verifier {
    /// Check the next entry (`Err` with why when it is not one). False once
    /// the chain is broken: nothing after it is worth reading.
    pub fn check(&mut self, entry: Result<Entry, String>) -> bool {
        if self.verdict.first_broken.is_some() {
            return false;
        }
        let n = self.verdict.entries + 1;
        self.verdict.entries = n;
        let problem = match entry {
            Err(why) => Some(why),
            Ok(e) => self.problem(n, &e),
        };
        if let Some(why) = problem {
            self.verdict.first_broken = Some((n, why));
            return false;
        }
        true
    }

    fn problem(&mut self, n: u64, e: &Entry) -> Option<String> {
        let receipt = unhex(&e.receipt);
        if e.seq != n {
            return Some(format!(
                "sequence {} where {n} was expected (an entry was removed or moved)",
                e.seq
            ));
        }
        if e.prev != serial_hex(&self.prev) {
            return Some("it does not chain to the entry before".to_owned());
        }
        let Some(r) = &receipt else {
            return Some("its receipt is not hex".to_owned());
        };
        let h = chain_hash(&self.prev, e.seq, e.at_ms, r);
        if serial_hex(&h) != e.hash {
            return Some("its hash does not match its content (edited)".to_owned());
        }
        match Receipt::verify(r, None, time::OffsetDateTime::now_utc()) {
            Ok((rec, _))
                if rec.doc_id.to_string() == e.doc_id
                    && rec.kind.as_str() == e.kind
                    && rec.recipient.to_string() == e.recipient =>
            {
                self.prev = h;
                if !self.seen.insert(e.receipt.clone()) {
                    self.verdict.repeated += 1;
                }
                None
            }
            Ok(_) => Some("its readable fields do not match its receipt (edited)".to_owned()),
            Err(err) => Some(format!("its receipt does not verify: {err}")),
        }
    }

    pub fn verdict(self) -> Verdict {
        self.verdict
    }
}

/// Recompute the whole chain of an audit log file.
pub fn verify(path: &Path) -> std::io::Result<Verdict> {
    let f = std::fs::File::open(path)?;
    let mut v = Verifier::default();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        let entry = serde_json::from_str::<Entry>(&line)
            .map_err(|err| format!("line {} is not an audit entry: {err}", i + 1));
        if !v.check(entry) {
            break;
        }
    }
    Ok(v.verdict())
}
