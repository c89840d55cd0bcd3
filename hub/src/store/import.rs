//! `gongwen-hub db import`: move an embedded hub's state into PostgreSQL.
//!
//! With the embedded hub stopped (redb refuses a second opener): every
//! record, queue, pending push, escalation step and binding, the audit
//! chain entry for entry (so `audit verify` passes and finds the same
//! entries), and the ciphertext of every document not yet delivered to all
//! its recipients, streamed file by file. The generation is kept, so agents
//! see the same hub and offer nothing again. Only into an empty database.

use std::io::BufRead;
use std::path::Path;

use gongwen_common::config::HubConfig;
use gongwen_common::transfer::Batches;

use super::embedded::Embedded;
use super::postgres::Postgres;
use super::{Store, StoreError};
use crate::store::audit::Entry;

/// What an import moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    pub documents: usize,
    pub deliveries: usize,
    pub queued: usize,
    pub pushes: usize,
    pub audit_entries: usize,
    pub content_bytes: u64,
}

/// Move the embedded store in `from` into the database `config` names.
pub async fn import(from: &Path, config: &HubConfig) -> Result<Imported, StoreError> {
    let Some(conn) = &config.store.postgres else {
        return Err(StoreError::Database(format!(
            "{} has no [store] postgres: there is no database to import into",
            config.path.display()
        )));
    };
    if !from.join("store.redb").exists() {
        return Err(StoreError::Database(format!(
            "{} holds no embedded hub store (no store.redb)",
            from.display()
        )));
    }
    let dir = from.to_owned();
    let embedded = tokio::task::spawn_blocking(move || Embedded::open(&dir))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
    let pg = Postgres::open(conn, &config.store).await?;
    let result = copy(&embedded, &pg).await;
    pg.close().await;
    result
}

async fn copy(embedded: &Embedded, pg: &Postgres) -> Result<Imported, StoreError> {
    if !pg.is_empty().await? {
        return Err(StoreError::Database(
            "the database already holds documents or receipts; import only into an empty one"
                .into(),
        ));
    }
    let e = embedded.clone();
    let (dump, audit) = tokio::task::spawn_blocking(move || {
        let dump = e.dump()?;
        let audit = read_audit(e.audit_path())?;
        Ok::<_, StoreError>((dump, audit))
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))??;

    // Content first: the records that point at it come in one commit after.
    let mut content_bytes = 0;
    for (doc, record, header, _) in &dump.docs {
        if record.content_removed {
            continue;
        }
        let path = embedded.content_path(*doc);
        let file = std::fs::File::open(&path).map_err(|e| {
            StoreError::Database(format!(
                "document {doc}: its content {} cannot be read: {e}",
                path.display()
            ))
        })?;
        // Left over from an import that failed half-way.
        pg.drop_content(*doc).await?;
        let mut sink = pg
            .open_upload(*doc, &record.digest, record.content_len, suite_of(header))
            .await?;
        let (len, _) = sink.write(Batches::from_reader(file)).await?;
        if len != record.content_len {
            sink.discard().await;
            return Err(StoreError::Database(format!(
                "document {doc}: the spool holds {len} bytes of its {} (damaged)",
                record.content_len
            )));
        }
        sink.seal().await?;
        content_bytes += len;
    }
    pg.import(&dump, &audit).await?;
    Ok(Imported {
        documents: dump.docs.len(),
        deliveries: dump.deliveries.len(),
        queued: dump.queue.len(),
        pushes: dump.forward.len(),
        audit_entries: audit.len(),
        content_bytes,
    })
}

/// Every entry of an audit log file, refusing one that does not verify
/// (an import must not carry a broken chain into the shared store).
fn read_audit(path: &Path) -> Result<Vec<Entry>, StoreError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let verdict = crate::store::audit::verify(path)?;
    if let Some((n, why)) = verdict.first_broken {
        return Err(StoreError::Database(format!(
            "the audit log {} is broken at entry {n}: {why}; not importing it",
            path.display()
        )));
    }
    let f = std::fs::File::open(path)?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        let entry = serde_json::from_str::<Entry>(&line)
            .map_err(|e| StoreError::Record(format!("{} line {}: {e}", path.display(), i + 1)))?;
        out.push(entry);
    }
    Ok(out)
}

/// The suite a stored document was sealed in (standard if its header
/// cannot be read: its content digest is then not checked against it).
fn suite_of(header: &[u8]) -> gongwen_common::suite::Suite {
    gongwen_common::envelope::SealedHeader::parse(header)
        .map(|s| s.header.suite)
        .unwrap_or_default()
}
