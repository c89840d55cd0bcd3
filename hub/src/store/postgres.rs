//! The PostgreSQL store: everything a hub keeps — records, queues, the
//! escalation ladder, the audit chain and the ciphertext — in one database
//! that two or more hubs share, so a province keeps running when a hub
//! machine is lost, and the database's own streaming replication carries
//! durability. Nothing is replicated by the hubs themselves.
//!
//! Hubs coordinate only through the database:
//!
//! - **Claims.** A hub takes a delivery (or a receipt to forward) by
//!   writing its instance id into the row's `holder`, choosing rows with
//!   `FOR UPDATE SKIP LOCKED` so two hubs never take the same one. A
//!   claim lasts while its hub is alive: each hub renews its own row in
//!   `hubs` (`alive_until`) every third of `[store] lease`, and rows held
//!   by a hub that stopped renewing are free to take.
//! - **Wake-ups.** A transaction that queues work for a unit sends a
//!   `NOTIFY gongwen` naming it; every hub listens and wakes the unit's
//!   pushers if it is connected there. Notifications are lost when the
//!   listening connection drops, so hubs also look every `[store] poll`.
//! - **Exactly once.** Escalation steps are taken from the ladder with
//!   `FOR UPDATE SKIP LOCKED` and applied in the same transaction; the
//!   audit chain's head row is locked by each append, which serialises
//!   appends across hubs.
//!
//! The schema is created and upgraded by numbered migrations at start,
//! under an advisory lock (two hubs starting together do not race); a
//! database whose schema is newer than this binary is refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use gongwen_common::config::{EscalationStep, StoreConfig};
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::suite::{Hasher, Suite};
use gongwen_common::transfer::Batches;
use gongwen_common::{DocId, NodeId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tracing::{info, warn};

use super::{
    Accept, AnswerError, DeliveryRecord, DocRecord, Outcome, Presence, Push, Ran, RecallNotice,
    Recalled, Recorded, StepNotices, Store, StoreError, StoreEvent, UploadSink, UrgeNotice,
    Verdict, Write,
};
use crate::rules::lifecycle::{Answer, REPLY_PHASE, Recall, delivery_rank};
use crate::store::audit::{Entry, Verifier, next_entry};

/// The schema this binary writes; migrations bring older ones up to it.
pub const SCHEMA_VERSION: i64 = 3;

/// Each migration, in order; `MIGRATIONS[i]` takes version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE bindings (node text PRIMARY KEY, binding bytea NOT NULL);
CREATE TABLE docs (
    doc_id bytea PRIMARY KEY,
    record jsonb NOT NULL,
    header bytea NOT NULL,
    accepted bytea NOT NULL
);
CREATE TABLE delivery (
    doc_id bytea NOT NULL,
    recipient text NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (doc_id, recipient)
);
CREATE TABLE queue (
    recipient text NOT NULL,
    rank smallint NOT NULL,
    doc_id bytea NOT NULL,
    holder text,
    PRIMARY KEY (recipient, rank, doc_id)
);
CREATE TABLE receipts (
    doc_id bytea NOT NULL,
    recipient text NOT NULL,
    kind smallint NOT NULL,
    receipt bytea NOT NULL,
    PRIMARY KEY (doc_id, recipient, kind)
);
CREATE TABLE forward (
    seq bigserial PRIMARY KEY,
    node text NOT NULL,
    push bytea NOT NULL,
    holder text
);
CREATE INDEX forward_by_node ON forward (node, seq);
CREATE TABLE ladder (
    doc_id bytea NOT NULL,
    recipient text NOT NULL,
    due_ms bigint NOT NULL,
    step integer NOT NULL,
    PRIMARY KEY (doc_id, recipient)
);
CREATE INDEX ladder_by_due ON ladder (due_ms);
CREATE TABLE partial (doc_id bytea PRIMARY KEY, digest text NOT NULL, durable bigint NOT NULL);
CREATE TABLE content (
    doc_id bytea NOT NULL,
    off bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (doc_id, off)
);
CREATE TABLE audit (
    seq bigint PRIMARY KEY,
    at text NOT NULL,
    at_ms bigint NOT NULL,
    doc_id text NOT NULL,
    kind text NOT NULL,
    recipient text NOT NULL,
    receipt bytea NOT NULL,
    prev bytea NOT NULL,
    hash bytea NOT NULL
);
CREATE TABLE audit_head (
    id integer PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash bytea NOT NULL
);
INSERT INTO audit_head VALUES (1, 0, decode(repeat('00', 32), 'hex'));
CREATE TABLE hubs (
    instance text PRIMARY KEY,
    label text NOT NULL,
    started timestamptz NOT NULL DEFAULT now(),
    alive_until timestamptz NOT NULL
);
CREATE TABLE presence (
    node text PRIMARY KEY,
    instance text NOT NULL,
    since text NOT NULL,
    addr text NOT NULL
);
",
    r"
-- 2: one writer per upload. A connection that resumes an upload (at this
-- hub or another) takes it over; the rows of the one it replaced are
-- refused from then on, so two writers never interleave content rows.
ALTER TABLE partial ADD COLUMN writer text;
",
    r"
-- 3: each queued copy names its sender, so how many documents one unit
-- has waiting for another (the quota on floods) is an index range.
ALTER TABLE queue ADD COLUMN sender text;
UPDATE queue q SET sender = d.record->>'sender' FROM docs d WHERE d.doc_id = q.doc_id;
CREATE INDEX queue_by_sender ON queue (recipient, sender);
",
];

/// The advisory lock that serialises migrations (any fixed number).
const MIGRATION_LOCK: i64 = 0x676f_6e67_7765_6e01;

/// The notification channel hubs listen on.
const CHANNEL: &str = "gongwen";

/// Bytes of content per row.
const CONTENT_ROW: usize = 1 << 20;

/// Content rows read ahead when streaming a document out.
const READ_AHEAD: i64 = 4;

/// Rows held by a hub whose `alive_until` passed are free to take.
/// A row no live hub holds, or this hub holds (`$4`, or `$3` for pushes:
/// this hub's instance) — a replaced connection's deliverer may still
/// hold what the new one must offer; the caller's in-flight list keeps
/// it from offering what it is sending right now.
const CLAIMABLE: &str = "(holder IS NULL OR holder = $INSTANCE
     OR holder NOT IN (SELECT instance FROM hubs WHERE alive_until > now()))";

/// What went wrong inside a transaction: the database (maybe worth
/// another try), or the store's own rules.
#[derive(Debug)]
enum E {
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for E {
    fn from(e: tokio_postgres::Error) -> Self {
        E::Pg(e)
    }
}

impl From<StoreError> for E {
    fn from(e: StoreError) -> Self {
        E::Store(e)
    }
}

impl E {
    /// A deadlock or serialisation failure: the transaction was rolled
    /// back and may simply run again.
    fn retryable(&self) -> bool {
        matches!(self, E::Pg(e) if retryable_code(e))
    }
}

fn retryable_code(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

impl From<E> for StoreError {
    fn from(e: E) -> Self {
        match e {
            E::Pg(e) => db_error(&e),
            E::Store(e) => e,
        }
    }
}

/// The database's words for an error (tokio-postgres' own Display says
/// only "db error").
fn db_error(e: &tokio_postgres::Error) -> StoreError {
    StoreError::Database(describe_pg(e))
}

/// What went wrong, in the server's words when it said something.
fn describe_pg(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} {}: {}", d.severity(), d.code().code(), d.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(cause) = src {
                s.push_str(": ");
                s.push_str(&cause.to_string());
                src = cause.source();
            }
            s
        }
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(&e),
        other => StoreError::Database(other.to_string()),
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Record(e.to_string()))
}

fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Record(e.to_string()))
}

fn doc_id_of(b: &[u8]) -> Result<DocId, StoreError> {
    let bytes: [u8; 16] = b
        .try_into()
        .map_err(|_| StoreError::Record("a stored doc id is not 16 bytes".into()))?;
    Ok(DocId::from_bytes(bytes))
}

fn node_of(s: &str) -> Result<NodeId, StoreError> {
    NodeId::parse_address(s).map_err(|e| StoreError::Record(format!("stored node id {s:?}: {e}")))
}

/// The store shared by every hub of a province.
pub struct Postgres {
    pool: Pool,
    /// This hub process: who holds its claims.
    instance: String,
    generation: String,
    events: Mutex<Option<mpsc::UnboundedReceiver<StoreEvent>>>,
    /// The heartbeat and the listener; stopped on close.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("instance", &self.instance)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

/// Parse a connection string, saying what is wrong with it in plain words.
pub fn parse_config(conn: &str) -> Result<tokio_postgres::Config, StoreError> {
    conn.parse::<tokio_postgres::Config>().map_err(|e| {
        StoreError::Database(format!(
            "[store] postgres is not a connection string PostgreSQL understands ({e}); write it as \"host=db1,db2 dbname=gongwen user=gongwen target_session_attrs=read-write\""
        ))
    })
}

/// Connect once without changing anything (for `gongwen-hub check`): the
/// server's version and the schema version it holds (0: none yet).
pub async fn probe(conn: &str) -> Result<(String, i64), StoreError> {
    let pg = parse_config(conn)?;
    let connect = pg.connect(NoTls);
    let (client, connection) = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| {
            StoreError::Database(format!(
                "no answer from PostgreSQL ({}) within 10 s",
                describe_hosts(&pg)
            ))
        })?
        .map_err(|e| {
            StoreError::Database(format!(
                "cannot connect to PostgreSQL ({}): {}",
                describe_hosts(&pg),
                describe_pg(&e)
            ))
        })?;
    let driver = tokio::spawn(connection);
    let version: String = client
        .query_one("SHOW server_version", &[])
        .await
        .map_err(|e| db_error(&e))?
        .get(0);
    let schema = match client
        .query_opt(
            "SELECT value FROM gongwen_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
    {
        Ok(row) => row
            .and_then(|r| r.get::<_, String>(0).parse::<i64>().ok())
            .unwrap_or(0),
        // No such table: a database no hub has used yet.
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => 0,
        Err(e) => return Err(db_error(&e)),
    };
    drop(client);
    driver.abort();
    Ok((version, schema))
}

impl Postgres {
    /// Connect, create or upgrade the schema, and start this hub's
    /// heartbeat and listener.
    pub async fn open(conn: &str, config: &StoreConfig) -> Result<Postgres, StoreError> {
        let pg = parse_config(conn)?;
        let manager = Manager::from_config(
            pg.clone(),
            NoTls,
            ManagerConfig {
                // A connection that broke (a failover) is replaced on the
                // next use; the multi-host string finds the new primary.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let generation = {
            let mut client = pool.get().await.map_err(|e| match e {
                deadpool_postgres::PoolError::Backend(e) => StoreError::Database(format!(
                    "cannot connect to PostgreSQL ({}): {}",
                    describe_hosts(&pg),
                    describe_pg(&e)
                )),
                other => StoreError::Database(other.to_string()),
            })?;
            migrate(&mut client).await?
        };
        let instance = super::embedded::new_generation()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let store = Postgres {
            pool,
            instance,
            generation,
            events: Mutex::new(Some(rx)),
            tasks: Mutex::new(Vec::new()),
        };
        store.heartbeat_once(config.lease, "").await?;
        let heartbeat = {
            let (pool, instance, lease) =
                (store.pool.clone(), store.instance.clone(), config.lease);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    if let Err(e) = renew(&pool, &instance, lease).await {
                        warn!("the database did not take this hub's heartbeat: {e}");
                    }
                }
            })
        };
        let listener = tokio::spawn(listen(pg, tx));
        store
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend([heartbeat, listener]);
        Ok(store)
    }

    /// Whether the database holds no documents and no audit entries (an
    /// import goes only into such a one).
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM docs) + (SELECT seq FROM audit_head WHERE id = 1)",
                &[],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(row.get::<_, i64>(0) == 0)
    }

    /// Write an embedded hub's records and audit chain (content is moved
    /// before, through [`Store::open_upload`]) in one transaction, keeping
    /// the embedded store's generation: the agents know it as the same hub.
    pub async fn import(
        &self,
        dump: &super::embedded::Dump,
        audit: &[Entry],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let txn = client.transaction().await.map_err(|e| db_error(&e))?;
        let t = &txn;
        let run = async {
            for (node, binding) in &dump.bindings {
                t.execute(
                    "INSERT INTO bindings VALUES ($1, $2) ON CONFLICT (node) DO UPDATE SET binding = EXCLUDED.binding",
                    &[node, binding],
                )
                .await?;
            }
            for (doc, record, header, accepted) in &dump.docs {
                t.execute(
                    "INSERT INTO docs VALUES ($1, $2::text::jsonb, $3, $4)",
                    &[
                        &doc.as_bytes().as_slice(),
                        &to_json(record)?,
                        header,
                        accepted,
                    ],
                )
                .await?;
            }
            for (doc, recipient, record) in &dump.deliveries {
                t.execute(
                    "INSERT INTO delivery VALUES ($1, $2, $3::text::jsonb)",
                    &[&doc.as_bytes().as_slice(), recipient, record],
                )
                .await?;
            }
            for (recipient, rank, doc) in &dump.queue {
                t.execute(
                    "INSERT INTO queue (recipient, rank, doc_id, sender)
                     VALUES ($1, $2, $3, (SELECT record->>'sender' FROM docs WHERE doc_id = $3))",
                    &[recipient, &i16::from(*rank), &doc.as_bytes().as_slice()],
                )
                .await?;
            }
            for (doc, recipient, kind, receipt) in &dump.receipts {
                t.execute(
                    "INSERT INTO receipts VALUES ($1, $2, $3, $4)",
                    &[
                        &doc.as_bytes().as_slice(),
                        recipient,
                        &i16::from(*kind),
                        receipt,
                    ],
                )
                .await?;
            }
            for (node, _, push) in &dump.forward {
                // In the embedded order; the database numbers them anew.
                t.execute(
                    "INSERT INTO forward (node, push) VALUES ($1, $2)",
                    &[node, push],
                )
                .await?;
            }
            for (due, doc, recipient, step) in &dump.ladder {
                t.execute(
                    "INSERT INTO ladder VALUES ($1, $2, $3, $4)",
                    &[
                        &doc.as_bytes().as_slice(),
                        recipient,
                        &(*due as i64),
                        &(*step as i32),
                    ],
                )
                .await?;
            }
            let mut head = (0i64, crate::store::audit::GENESIS.to_vec());
            for e in audit {
                let field = |s: &str, what: &str| {
                    crate::store::audit::unhex_hash(s)
                        .map(|h| h.to_vec())
                        .ok_or_else(|| {
                            E::Store(StoreError::Record(format!(
                                "audit entry {}: its {what} is not a hash",
                                e.seq
                            )))
                        })
                };
                let receipt = crate::store::audit::unhex(&e.receipt).ok_or_else(|| {
                    E::Store(StoreError::Record(format!(
                        "audit entry {}: its receipt is not hex",
                        e.seq
                    )))
                })?;
                let hash = field(&e.hash, "hash")?;
                t.execute(
                    "INSERT INTO audit VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &(e.seq as i64),
                        &e.at,
                        &e.at_ms,
                        &e.doc_id,
                        &e.kind,
                        &e.recipient,
                        &receipt,
                        &field(&e.prev, "prev")?,
                        &hash,
                    ],
                )
                .await?;
                head = (e.seq as i64, hash);
            }
            t.execute(
                "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
                &[&head.0, &head.1],
            )
            .await?;
            t.execute(
                "UPDATE gongwen_meta SET value = $1 WHERE key = 'generation'",
                &[&dump.generation],
            )
            .await?;
            t.execute("DELETE FROM partial", &[]).await?;
            Ok::<(), E>(())
        };
        run.await.map_err(StoreError::from)?;
        txn.commit().await.map_err(|e| db_error(&e))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn heartbeat_once(&self, lease: Duration, label: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO hubs (instance, label, alive_until)
                 VALUES ($1, $2, now() + make_interval(secs => $3))
                 ON CONFLICT (instance) DO UPDATE SET
                    label = CASE WHEN $2 = '' THEN hubs.label ELSE $2 END,
                    alive_until = EXCLUDED.alive_until",
                &[&self.instance, &label, &lease.as_secs_f64()],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(())
    }

    /// Run `body` in a transaction, again after a deadlock or a
    /// serialisation failure (a few times).
    async fn in_txn<T, F>(&self, mut body: F) -> Result<T, StoreError>
    where
        F: for<'t> FnMut(
            &'t deadpool_postgres::Transaction<'t>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, E>> + Send + 't>,
        >,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(|e| db_error(&e))?;
            match body(&txn).await {
                Ok(v) => match txn.commit().await {
                    Ok(()) => return Ok(v),
                    Err(e) if attempt < 5 && retryable_code(&e) => {}
                    Err(e) => return Err(db_error(&e)),
                },
                Err(e) if attempt < 5 && e.retryable() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn describe_hosts(pg: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    format!("hosts {}", hosts.join(", "))
}

async fn renew(pool: &Pool, instance: &str, lease: Duration) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(pool_error)?;
    client
        .execute(
            "UPDATE hubs SET alive_until = now() + make_interval(secs => $2) WHERE instance = $1",
            &[&instance, &lease.as_secs_f64()],
        )
        .await
        .map_err(|e| db_error(&e))?;
    Ok(())
}

/// Create or upgrade the schema; returns the store's generation.
async fn migrate(client: &mut deadpool_postgres::Object) -> Result<String, StoreError> {
    let txn = client.transaction().await.map_err(|e| db_error(&e))?;
    let run = async {
        txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        // "relation already exists, skipping" is no news at every start.
        txn.batch_execute("SET LOCAL client_min_messages TO warning")
            .await?;
        txn.batch_execute(
            "CREATE TABLE IF NOT EXISTS gongwen_meta (key text PRIMARY KEY, value text NOT NULL)",
        )
        .await?;
        let version: i64 = txn
            .query_opt(
                "SELECT value FROM gongwen_meta WHERE key = 'schema_version'",
                &[],
            )
            .await?
            .map(|r| r.get::<_, String>(0))
            .map(|v| v.parse::<i64>().unwrap_or(i64::MAX))
            .unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(E::Store(StoreError::Database(format!(
                "the database holds schema version {version}, written by a newer gongwen-hub; this one knows up to version {SCHEMA_VERSION}. Upgrade this hub rather than let it write an older layout"
            ))));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            info!("database schema: migrating to version {}", i + 1);
            txn.batch_execute(sql).await?;
        }
        txn.execute(
            "INSERT INTO gongwen_meta VALUES ('schema_version', $1)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&SCHEMA_VERSION.to_string()],
        )
        .await?;
        let generation = match txn
            .query_opt(
                "SELECT value FROM gongwen_meta WHERE key = 'generation'",
                &[],
            )
            .await?
        {
            Some(r) => r.get::<_, String>(0),
            None => {
                let g = super::embedded::new_generation()?;
                txn.execute("INSERT INTO gongwen_meta VALUES ('generation', $1)", &[&g])
                    .await?;
                g
            }
        };
        Ok::<_, E>(generation)
    };
    let generation = run.await.map_err(StoreError::from)?;
    txn.commit().await.map_err(|e| db_error(&e))?;
    Ok(generation)
}

/// Listen for other hubs' notifications and pass them on as events;
/// reconnect when the connection drops (and say so: work queued meanwhile
/// was not announced).
async fn listen(pg: tokio_postgres::Config, events: mpsc::UnboundedSender<StoreEvent>) {
    use futures_util::StreamExt;
    let mut pause = Duration::from_millis(200);
    loop {
        match pg.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                let _ = tx.send(n.payload().to_owned());
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN {CHANNEL}"))
                    .await
                    .is_ok()
                {
                    pause = Duration::from_millis(200);
                    // Anything queued while nobody listened is found now.
                    let _ = events.send(StoreEvent::Everything);
                    while let Some(payload) = rx.recv().await {
                        for e in parse_notification(&payload) {
                            if events.send(e).is_err() {
                                driver.abort();
                                return;
                            }
                        }
                    }
                }
                driver.abort();
                warn!("lost the database's notifications; reconnecting (polling meanwhile)");
            }
            Err(e) => {
                warn!("cannot listen for other hubs' work: {}", db_error(&e));
            }
        }
        if events.is_closed() {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// `d <node>`: a delivery queued; `p <node>`: a receipt or notice; `e`:
/// the ladder changed.
fn parse_notification(payload: &str) -> Vec<StoreEvent> {
    payload
        .split(';')
        .filter_map(|part| {
            let (kind, node) = part.split_once(' ').unwrap_or((part, ""));
            match kind {
                "d" => NodeId::parse_address(node).ok().map(StoreEvent::Deliveries),
                "p" => NodeId::parse_address(node).ok().map(StoreEvent::Pushes),
                "e" => Some(StoreEvent::Escalation),
                _ => None,
            }
        })
        .collect()
}

/// Announce work for units, delivered to listeners at commit.
async fn notify<C: GenericClient + Sync>(c: &C, payloads: &[String]) -> Result<(), E> {
    if payloads.is_empty() {
        return Ok(());
    }
    c.execute(
        "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
        &[&CHANNEL, &payloads],
    )
    .await?;
    Ok(())
}

async fn queue_push<C: GenericClient + Sync>(c: &C, node: &NodeId, push: &Push) -> Result<(), E> {
    c.execute(
        "INSERT INTO forward (node, push) VALUES ($1, $2)",
        &[&node.queue().as_str(), &push.encode()],
    )
    .await?;
    Ok(())
}

async fn doc_for_update<C: GenericClient + Sync>(
    c: &C,
    doc_id: DocId,
) -> Result<Option<DocRecord>, E> {
    let row = c
        .query_opt(
            "SELECT record::text FROM docs WHERE doc_id = $1 FOR UPDATE",
            &[&doc_id.as_bytes().as_slice()],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(from_json(r.get::<_, &str>(0))?),
        None => None,
    })
}

async fn delivery_for_update<C: GenericClient + Sync>(
    c: &C,
    doc_id: DocId,
    node: &str,
) -> Result<Option<DeliveryRecord>, E> {
    let row = c
        .query_opt(
            "SELECT record::text FROM delivery WHERE doc_id = $1 AND recipient = $2 FOR UPDATE",
            &[&doc_id.as_bytes().as_slice(), &node],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(from_json(r.get::<_, &str>(0))?),
        None => None,
    })
}

async fn save_delivery<C: GenericClient + Sync>(
    c: &C,
    doc_id: DocId,
    node: &str,
    rec: &DeliveryRecord,
) -> Result<(), E> {
    c.execute(
        "UPDATE delivery SET record = $3::text::jsonb WHERE doc_id = $1 AND recipient = $2",
        &[&doc_id.as_bytes().as_slice(), &node, &to_json(rec)?],
    )
    .await?;
    Ok(())
}

/// Columns for one multi-row insert through `unnest`.
type Col<T> = Vec<T>;

/// Append receipts to the audit chain inside the caller's transaction. The
/// head row's lock serialises appends across hubs until commit.
async fn audit_append<C: GenericClient + Sync>(
    c: &C,
    receipts: &[(&[u8], &Receipt, i64)],
) -> Result<(), E> {
    if receipts.is_empty() {
        return Ok(());
    }
    let head = c
        .query_one(
            "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await?;
    let mut seq = head.get::<_, i64>(0) as u64;
    let mut prev: [u8; 32] = head
        .get::<_, &[u8]>(1)
        .try_into()
        .map_err(|_| StoreError::Record("the audit head is damaged".into()))?;
    let (mut seqs, mut ats, mut at_mss): (Col<i64>, Col<String>, Col<i64>) = Default::default();
    let (mut doc_ids, mut kinds, mut recipients): (Col<String>, Col<String>, Col<String>) =
        Default::default();
    let (mut bodies, mut prevs): (Col<Vec<u8>>, Col<Vec<u8>>) = Default::default();
    let mut hashes: Col<Vec<u8>> = Vec::new();
    for &(bytes, receipt, at_ms) in receipts {
        seq += 1;
        let (entry, hash) = next_entry(&prev, seq, bytes, receipt, at_ms);
        seqs.push(seq as i64);
        ats.push(entry.at);
        at_mss.push(at_ms);
        doc_ids.push(entry.doc_id);
        kinds.push(entry.kind);
        recipients.push(entry.recipient);
        bodies.push(bytes.to_vec());
        prevs.push(prev.to_vec());
        hashes.push(hash.to_vec());
        prev = hash;
    }
    c.execute(
        "INSERT INTO audit (seq, at, at_ms, doc_id, kind, recipient, receipt, prev, hash)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                              $6::text[], $7::bytea[], $8::bytea[], $9::bytea[])",
        &[
            &seqs,
            &ats,
            &at_mss,
            &doc_ids,
            &kinds,
            &recipients,
            &bodies,
            &prevs,
            &hashes,
        ],
    )
    .await?;
    c.execute(
        "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
        &[&(seq as i64), &prev.to_vec()],
    )
    .await?;
    Ok(())
}

/// Record accepted documents: records, headers and receipts, a queued
/// copy per recipient in its queue and on the ladder, the end of their
/// partial uploads. Returns the notifications to send and which documents
/// were new: one accepted twice at once (an agent that retried through the
/// other hub before the first answer reached it) is recorded once, and its
/// second receipt is neither queued again nor logged.
async fn accept_all<C: GenericClient + Sync>(
    c: &C,
    accepts: &[&Accept],
) -> Result<(Vec<String>, Vec<DocId>), E> {
    let (mut keys, mut records): (Col<Vec<u8>>, Col<String>) = Default::default();
    let (mut headers, mut accepted): (Col<Vec<u8>>, Col<Vec<u8>>) = Default::default();
    for a in accepts {
        keys.push(a.record.doc_id.as_bytes().to_vec());
        records.push(to_json(&a.record)?);
        headers.push(a.header.clone());
        accepted.push(a.receipt_bytes.clone());
    }
    let inserted = c
        .query(
            "INSERT INTO docs (doc_id, record, header, accepted)
             SELECT d, r::jsonb, h, a FROM unnest($1::bytea[], $2::text[], $3::bytea[], $4::bytea[])
                 AS t(d, r, h, a)
             ON CONFLICT (doc_id) DO NOTHING
             RETURNING doc_id",
            &[&keys, &records, &headers, &accepted],
        )
        .await?;
    let new = inserted
        .iter()
        .map(|r| doc_id_of(r.get::<_, &[u8]>(0)))
        .collect::<Result<Vec<DocId>, StoreError>>()?;
    #[allow(clippy::type_complexity)]
    let mut copies: (
        Vec<Vec<u8>>,
        Vec<String>,
        Vec<String>,
        Vec<i16>,
        Vec<String>,
        Vec<String>,
    ) = Default::default();
    let mut ladder: (Vec<Vec<u8>>, Vec<String>, Vec<i64>) = Default::default();
    let mut wake = Vec::new();
    for a in accepts.iter().filter(|a| new.contains(&a.record.doc_id)) {
        let key = a.record.doc_id.as_bytes().to_vec();
        let queued = to_json(&DeliveryRecord::queued(a.deadline_ms))?;
        let rank = i16::from(delivery_rank(a.record.urgency));
        let main = a.record.main_copies();
        for r in a.record.recipients() {
            copies.0.push(key.clone());
            copies.1.push(r.to_string());
            copies.2.push(queued.clone());
            copies.3.push(rank);
            copies.4.push(a.record.sender.to_string());
            // A remote recipient's copy waits in its domain's queue (one
            // entry for all of them: the document crosses once).
            copies.5.push(r.queue().to_string());
            if let Some(due) = a.first_due_ms.filter(|_| main.contains(&r)) {
                ladder.0.push(key.clone());
                ladder.1.push(r.to_string());
                ladder.2.push(due);
            }
            wake.push(format!("d {r}"));
        }
    }
    c.execute(
        "INSERT INTO delivery (doc_id, recipient, record)
         SELECT d, n, r::jsonb FROM unnest($1::bytea[], $2::text[], $3::text[]) AS t(d, n, r)
         ON CONFLICT DO NOTHING",
        &[&copies.0, &copies.1, &copies.2],
    )
    .await?;
    c.execute(
        "INSERT INTO queue (recipient, rank, doc_id, sender)
         SELECT n, k, d, s FROM unnest($1::text[], $2::smallint[], $3::bytea[], $4::text[])
             AS t(n, k, d, s)
         ON CONFLICT DO NOTHING",
        &[&copies.5, &copies.3, &copies.0, &copies.4],
    )
    .await?;
    if !ladder.0.is_empty() {
        c.execute(
            "INSERT INTO ladder (doc_id, recipient, due_ms, step)
             SELECT d, n, t, 0 FROM unnest($1::bytea[], $2::text[], $3::bigint[]) AS t(d, n, t)
             ON CONFLICT DO NOTHING",
            &[&ladder.0, &ladder.1, &ladder.2],
        )
        .await?;
        wake.push("e".into());
    }
    // Each new answer notes itself on the answering unit's copy of its
    // question, in the same transaction.
    for a in accepts.iter().filter(|a| new.contains(&a.record.doc_id)) {
        let Some(asked) = a.record.links.answers else {
            continue;
        };
        let unit = a.record.sender.as_str();
        let question = c
            .query_opt(
                "SELECT record::text FROM docs WHERE doc_id = $1",
                &[&asked.as_bytes().as_slice()],
            )
            .await?
            .map(|r| from_json::<DocRecord>(r.get::<_, &str>(0)))
            .transpose()?;
        if let Some(question) = question
            && let Some(mut rec) = delivery_for_update(c, asked, unit).await?
            && rec.take_reply(
                &a.record.doc_id.to_string(),
                a.record.links.decision,
                a.at_ms,
                question.links.reply_by_ms,
            )
        {
            save_delivery(c, asked, unit, &rec).await?;
        }
    }
    c.execute("DELETE FROM partial WHERE doc_id = ANY($1)", &[&keys])
        .await?;
    Ok((wake, new))
}

/// Record one `delivered` or `quarantined` receipt (once; a repeat changes
/// nothing). `None` for an unknown document.
async fn record_delivery<C: GenericClient + Sync>(
    c: &C,
    r: &Receipt,
    receipt: &[u8],
    now_ms: i64,
) -> Result<Option<Recorded>, E> {
    let key = r.doc_id.as_bytes().as_slice();
    let recipient = r.recipient.as_str();
    let quarantined = (r.kind == ReceiptKind::Quarantined).then_some(r.reason.as_str());
    // The document row first: every writer of a document's copies locks it
    // before them, so two hubs cannot deadlock over one document.
    let Some(mut doc) = doc_for_update(c, r.doc_id).await? else {
        return Ok(None);
    };
    let mut new = false;
    if let Some(mut rec) = delivery_for_update(c, r.doc_id, recipient).await?
        && rec.arrive(quarantined, now_ms)
    {
        new = true;
        save_delivery(c, r.doc_id, recipient, &rec).await?;
        c.execute(
            "INSERT INTO receipts VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&key, &recipient, &i16::from(r.kind.code()), &receipt],
        )
        .await?;
        queue_push(c, &doc.sender, &Push::Receipt(receipt.to_vec())).await?;
    }
    c.execute(
        "DELETE FROM queue WHERE recipient = $1 AND doc_id = $2",
        &[&r.recipient.queue().as_str(), &key],
    )
    .await?;
    // Whether a copy still waits for the content (`content_done`'s
    // question), asked of the database, which stops at the first: reading
    // every copy's record for each receipt made a notice to 10,000 units
    // O(N²).
    let queued = serde_json::to_value(gongwen_common::supervision::DeliveryState::Queued)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "queued".to_owned());
    let waiting: bool = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM delivery WHERE doc_id = $1 AND record->>'state' = $2)",
            &[&key, &queued],
        )
        .await?
        .get(0);
    let done = !waiting && !doc.content_removed;
    if done {
        doc.content_removed = true;
        c.execute(
            "UPDATE docs SET record = $2::text::jsonb WHERE doc_id = $1",
            &[&key, &to_json(&doc)?],
        )
        .await?;
    }
    Ok(Some(Recorded {
        new,
        sender: doc.sender,
        content_done: done,
    }))
}

#[async_trait]
impl Store for Postgres {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn generation(&self) -> &str {
        &self.generation
    }

    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<StoreEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    async fn announce(&self, label: &str, lease: Duration) -> Result<(), StoreError> {
        self.heartbeat_once(lease, label).await?;
        // Units this hub showed as connected before it restarted are not.
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM presence WHERE instance NOT IN (SELECT instance FROM hubs WHERE alive_until > now())",
                &[],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(())
    }

    async fn put_binding(&self, node: &NodeId, binding: &[u8]) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO bindings VALUES ($1, $2)
                 ON CONFLICT (node) DO UPDATE SET binding = EXCLUDED.binding",
                &[&node.as_str(), &binding],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(())
    }

    async fn binding(&self, node: &NodeId) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT binding FROM bindings WHERE node = $1",
                &[&node.as_str()],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn bindings(&self) -> Result<Vec<(NodeId, Vec<u8>)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT node, binding FROM bindings ORDER BY node", &[])
            .await
            .map_err(|e| db_error(&e))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                NodeId::parse_address(r.get::<_, &str>(0))
                    .ok()
                    .map(|id| (id, r.get(1)))
            })
            .collect())
    }

    async fn doc(&self, doc_id: DocId) -> Result<Option<DocRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT record::text FROM docs WHERE doc_id = $1",
                &[&doc_id.as_bytes().as_slice()],
            )
            .await
            .map_err(|e| db_error(&e))?;
        row.map(|r| from_json(r.get::<_, &str>(0))).transpose()
    }

    async fn header(&self, doc_id: DocId) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT header FROM docs WHERE doc_id = $1",
                &[&doc_id.as_bytes().as_slice()],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn accepted_receipt(&self, doc_id: DocId) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT accepted FROM docs WHERE doc_id = $1",
                &[&doc_id.as_bytes().as_slice()],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn delivery(
        &self,
        doc_id: DocId,
        node: &NodeId,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT record::text FROM delivery WHERE doc_id = $1 AND recipient = $2",
                &[&doc_id.as_bytes().as_slice(), &node.as_str()],
            )
            .await
            .map_err(|e| db_error(&e))?;
        row.map(|r| from_json(r.get::<_, &str>(0))).transpose()
    }

    async fn deliveries(&self, doc_id: DocId) -> Result<Vec<(NodeId, DeliveryRecord)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT recipient, record::text FROM delivery WHERE doc_id = $1 ORDER BY recipient",
                &[&doc_id.as_bytes().as_slice()],
            )
            .await
            .map_err(|e| db_error(&e))?;
        rows.iter()
            .map(|r| Ok((node_of(r.get(0))?, from_json(r.get::<_, &str>(1))?)))
            .collect()
    }

    async fn receipt_kinds(&self, doc_id: DocId) -> Result<Vec<(NodeId, ReceiptKind)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT recipient, kind FROM receipts WHERE doc_id = $1 ORDER BY recipient, kind",
                &[&doc_id.as_bytes().as_slice()],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let kind = u8::try_from(r.get::<_, i16>(1)).ok()?;
                Some((
                    NodeId::parse_address(r.get::<_, &str>(0)).ok()?,
                    ReceiptKind::from_code(kind).ok()?,
                ))
            })
            .collect())
    }

    async fn all_deliveries(
        &self,
    ) -> Result<Vec<(DocRecord, Vec<(NodeId, DeliveryRecord)>)>, StoreError> {
        let client = self.client().await?;
        let docs = client
            .query("SELECT doc_id, record::text FROM docs ORDER BY doc_id", &[])
            .await
            .map_err(|e| db_error(&e))?;
        let copies = client
            .query(
                "SELECT doc_id, recipient, record::text FROM delivery ORDER BY doc_id, recipient",
                &[],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let mut by_doc: std::collections::HashMap<Vec<u8>, Vec<(NodeId, DeliveryRecord)>> =
            std::collections::HashMap::new();
        for r in &copies {
            by_doc
                .entry(r.get::<_, Vec<u8>>(0))
                .or_default()
                .push((node_of(r.get(1))?, from_json(r.get::<_, &str>(2))?));
        }
        docs.iter()
            .map(|r| {
                let key: Vec<u8> = r.get(0);
                let doc: DocRecord = from_json(r.get::<_, &str>(1))?;
                Ok((doc, by_doc.remove(&key).unwrap_or_default()))
            })
            .collect()
    }

    async fn open_upload(
        &self,
        doc_id: DocId,
        digest: &str,
        content_len: u64,
        suite: Suite,
    ) -> Result<Box<dyn UploadSink>, StoreError> {
        let key = doc_id.as_bytes().to_vec();
        let writer = super::embedded::new_generation()?;
        let mut client = self.client().await?;
        // Take the upload over in one transaction: the partial row's lock
        // orders this against the last row of any earlier writer, which
        // from the commit on is refused (see RowUpload::write_row).
        let offset = {
            let txn = client.transaction().await.map_err(|e| db_error(&e))?;
            let partial = txn
                .query_opt(
                    "SELECT digest, durable FROM partial WHERE doc_id = $1 FOR UPDATE",
                    &[&key],
                )
                .await
                .map_err(|e| db_error(&e))?;
            let offset = match partial {
                Some(r) if r.get::<_, &str>(0) == digest => r.get::<_, i64>(1).max(0),
                _ => 0,
            };
            txn.execute(
                "DELETE FROM content WHERE doc_id = $1 AND off >= $2",
                &[&key, &offset],
            )
            .await
            .map_err(|e| db_error(&e))?;
            txn.execute(
                "INSERT INTO partial (doc_id, digest, durable, writer) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (doc_id) DO UPDATE SET digest = EXCLUDED.digest,
                    durable = EXCLUDED.durable, writer = EXCLUDED.writer",
                &[&key, &digest, &offset, &writer],
            )
            .await
            .map_err(|e| db_error(&e))?;
            txn.commit().await.map_err(|e| db_error(&e))?;
            offset as u64
        };
        // What is kept is hashed again (the hash state is not stored).
        let mut hasher = Hasher::new(suite);
        let mut kept = 0u64;
        let mut from = 0i64;
        'pages: loop {
            let rows = client
                .query(
                    "SELECT off, data FROM content WHERE doc_id = $1 AND off >= $2 ORDER BY off LIMIT $3",
                    &[&key, &from, &READ_AHEAD],
                )
                .await
                .map_err(|e| db_error(&e))?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let (off, data): (i64, &[u8]) = (r.get(0), r.get(1));
                if off as u64 != kept {
                    break 'pages; // a gap: what follows cannot be kept
                }
                hasher.update(data);
                kept += data.len() as u64;
                from = off + 1;
            }
        }
        let offset = if kept == offset {
            offset
        } else {
            // The rows do not add up to what the record says: start over.
            client
                .execute("DELETE FROM content WHERE doc_id = $1", &[&key])
                .await
                .map_err(|e| db_error(&e))?;
            hasher = Hasher::new(suite);
            0
        };
        Ok(Box::new(RowUpload {
            pool: self.pool.clone(),
            key,
            writer,
            content_len,
            offset,
            hasher: Some(hasher),
        }))
    }

    async fn read_content(
        &self,
        doc_id: DocId,
        offset: u64,
    ) -> Result<mpsc::Receiver<std::io::Result<Bytes>>, StoreError> {
        let (tx, rx) = mpsc::channel(READ_AHEAD as usize);
        let pool = self.pool.clone();
        let key = doc_id.as_bytes().to_vec();
        tokio::spawn(async move {
            let fail = |e: StoreError| std::io::Error::other(e.to_string());
            let client = match pool.get().await {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(fail(pool_error(e)))).await;
                    return;
                }
            };
            let mut from = offset as i64;
            let mut first = true;
            loop {
                // The row holding `offset`, then rows after it, a few at a
                // time: memory stays bounded whatever the document's size.
                let rows = client
                    .query(
                        "SELECT off, data FROM content
                         WHERE doc_id = $1 AND off + length(data) > $2
                         ORDER BY off LIMIT $3",
                        &[&key, &from, &READ_AHEAD],
                    )
                    .await;
                let rows = match rows {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(fail(db_error(&e)))).await;
                        return;
                    }
                };
                if rows.is_empty() {
                    if first && offset > 0 {
                        // Asked past the end: nothing to send.
                    }
                    return;
                }
                for r in &rows {
                    let (off, data): (i64, Vec<u8>) = (r.get(0), r.get(1));
                    let skip = (from - off).max(0) as usize;
                    let chunk = Bytes::from(data).slice(skip.min(CONTENT_ROW.max(skip))..);
                    from = off + skip as i64 + chunk.len() as i64;
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
                first = false;
            }
        });
        Ok(rx)
    }

    async fn drop_content(&self, doc_id: DocId) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM content WHERE doc_id = $1",
                &[&doc_id.as_bytes().as_slice()],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(())
    }

    async fn commit(&self, batch: Vec<Write>) -> Result<Vec<Outcome>, StoreError> {
        let batch = Arc::new(batch);
        self.in_txn(move |txn| {
            let batch = batch.clone();
            Box::pin(async move {
                let accepts: Vec<&Accept> = batch
                    .iter()
                    .filter_map(|w| match w {
                        Write::Accept(a) => Some(a.as_ref()),
                        Write::Delivery(_) => None,
                    })
                    .collect();
                let (mut wake, new) = if accepts.is_empty() {
                    (Vec::new(), Vec::new())
                } else {
                    accept_all(txn, &accepts).await?
                };
                let mut outcomes = Vec::with_capacity(batch.len());
                let mut logged: Vec<(&[u8], &Receipt, i64)> = Vec::new();
                for w in batch.iter() {
                    match w {
                        Write::Accept(a) => {
                            if new.contains(&a.record.doc_id) {
                                logged.push((&a.receipt_bytes, &a.receipt, a.at_ms));
                            }
                            outcomes.push(None);
                        }
                        Write::Delivery(d) => {
                            let recorded =
                                record_delivery(txn, &d.receipt, &d.receipt_bytes, d.at_ms).await?;
                            if let Some(r) = &recorded
                                && r.new
                            {
                                logged.push((&d.receipt_bytes, &d.receipt, d.at_ms));
                                wake.push(format!("p {}", r.sender));
                            }
                            outcomes.push(recorded);
                        }
                    }
                }
                audit_append(txn, &logged).await?;
                notify(txn, &wake).await?;
                Ok(outcomes)
            })
        })
        .await
    }

    async fn record_answer(
        &self,
        receipt: Receipt,
        bytes: Vec<u8>,
        now_ms: i64,
    ) -> Result<Result<(NodeId, bool), AnswerError>, StoreError> {
        let (receipt, bytes) = (Arc::new(receipt), Arc::new(bytes));
        self.in_txn(move |txn| {
            let (r, bytes) = (receipt.clone(), bytes.clone());
            Box::pin(async move {
                let Some(doc) = doc_for_update(txn, r.doc_id).await? else {
                    return Err(E::Store(StoreError::Record(format!(
                        "no document {}",
                        r.doc_id
                    ))));
                };
                let recipient = r.recipient.as_str();
                let Some(mut rec) = delivery_for_update(txn, r.doc_id, recipient).await? else {
                    return Err(E::Store(StoreError::Record(format!(
                        "{recipient} is not a recipient"
                    ))));
                };
                let answer = if r.kind == ReceiptKind::Acknowledged {
                    Answer::SignedFor { by: &r.by }
                } else {
                    Answer::Returned { reason: &r.reason }
                };
                let outcome = rec.answer(answer, now_ms);
                if outcome == Ok(true) {
                    save_delivery(txn, r.doc_id, recipient, &rec).await?;
                    // Signed for, not answered yet: the ladder runs on for
                    // the answer asked of it (replacing the sign-for entry).
                    if let Some(due) = super::embedded::reply_ladder_due(&doc, &rec) {
                        txn.execute(
                            "INSERT INTO ladder VALUES ($1, $2, $3, $4)
                             ON CONFLICT (doc_id, recipient) DO UPDATE
                                SET due_ms = EXCLUDED.due_ms, step = EXCLUDED.step",
                            &[
                                &r.doc_id.as_bytes().as_slice(),
                                &recipient,
                                &due,
                                &(REPLY_PHASE as i32),
                            ],
                        )
                        .await?;
                        notify(txn, &["e".to_string()]).await?;
                    }
                    txn.execute(
                        "INSERT INTO receipts VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        &[
                            &r.doc_id.as_bytes().as_slice(),
                            &recipient,
                            &i16::from(r.kind.code()),
                            &bytes.as_slice(),
                        ],
                    )
                    .await?;
                    queue_push(txn, &doc.sender, &Push::Receipt(bytes.to_vec())).await?;
                    audit_append(txn, &[(bytes.as_slice(), &r, now_ms)]).await?;
                    notify(txn, &[format!("p {}", doc.sender)]).await?;
                }
                Ok(outcome.map(|new| (doc.sender.clone(), new)))
            })
        })
        .await
    }

    async fn recall(
        &self,
        doc_id: DocId,
        notice: RecallNotice,
        now_ms: i64,
    ) -> Result<Recalled, StoreError> {
        self.in_txn(move |txn| {
            let notice = notice.clone();
            Box::pin(async move {
                let Some(doc) = doc_for_update(txn, doc_id).await? else {
                    return Err(E::Store(StoreError::Record(format!(
                        "no document {doc_id}"
                    ))));
                };
                let mut out = Recalled::default();
                let mut wake = Vec::new();
                for r in doc.recipients() {
                    let Some(mut rec) = delivery_for_update(txn, doc_id, r.as_str()).await? else {
                        continue;
                    };
                    match rec.recall(now_ms) {
                        Recall::AlreadyAnswered => {
                            out.answered.push(r);
                            continue;
                        }
                        Recall::AlreadyRecalled => continue,
                        Recall::Withdrawn => {
                            txn.execute(
                                "DELETE FROM queue WHERE recipient = $1 AND doc_id = $2",
                                &[&r.queue().as_str(), &doc_id.as_bytes().as_slice()],
                            )
                            .await?;
                            if r.is_local() {
                                out.withdrawn.push(r.clone());
                            } else {
                                // A copy for another domain may be on its
                                // way there already: the recall follows it
                                // (a hub that never got it refuses it).
                                queue_push(txn, &r, &Push::Notice(notice(&r))).await?;
                                wake.push(format!("p {r}"));
                                out.notified.push(r.clone());
                            }
                        }
                        Recall::Notify => {
                            queue_push(txn, &r, &Push::Notice(notice(&r))).await?;
                            wake.push(format!("p {r}"));
                            out.notified.push(r.clone());
                        }
                    }
                    save_delivery(txn, doc_id, r.as_str(), &rec).await?;
                }
                notify(txn, &wake).await?;
                Ok(out)
            })
        })
        .await
    }

    async fn undeliverable(
        &self,
        queue: &NodeId,
        doc_id: DocId,
        recipients: Vec<NodeId>,
        reason: String,
        onward: RecallNotice,
        now_ms: i64,
    ) -> Result<Vec<NodeId>, StoreError> {
        let queue = queue.clone();
        self.in_txn(move |txn| {
            let (queue, recipients, reason, onward) = (
                queue.clone(),
                recipients.clone(),
                reason.clone(),
                onward.clone(),
            );
            Box::pin(async move {
                let mut marked = Vec::new();
                let Some(doc) = doc_for_update(txn, doc_id).await? else {
                    return Ok(marked);
                };
                let mut wake = Vec::new();
                for r in &recipients {
                    let Some(mut rec) = delivery_for_update(txn, doc_id, r.as_str()).await? else {
                        continue;
                    };
                    if !rec.arrive(Some(&reason), now_ms) {
                        continue;
                    }
                    save_delivery(txn, doc_id, r.as_str(), &rec).await?;
                    if !doc.sender.is_local() {
                        queue_push(txn, &doc.sender, &Push::Notice(onward(r))).await?;
                        wake.push(format!("p {}", doc.sender));
                    }
                    marked.push(r.clone());
                }
                txn.execute(
                    "DELETE FROM queue WHERE recipient = $1 AND doc_id = $2",
                    &[&queue.as_str(), &doc_id.as_bytes().as_slice()],
                )
                .await?;
                wake.dedup();
                notify(txn, &wake).await?;
                Ok(marked)
            })
        })
        .await
    }

    async fn urge_now(
        &self,
        doc_id: DocId,
        units: Vec<NodeId>,
        now_ms: i64,
        notice: UrgeNotice,
    ) -> Result<Vec<NodeId>, StoreError> {
        let units = Arc::new(units);
        self.in_txn(move |txn| {
            let (notice, units) = (notice.clone(), units.clone());
            Box::pin(async move {
                let Some(doc) = doc_for_update(txn, doc_id).await? else {
                    return Ok(Vec::new());
                };
                let mut urged = Vec::new();
                let mut wake = Vec::new();
                let main = doc.main_copies();
                for r in doc.recipients() {
                    let named = if units.is_empty() {
                        main.contains(&r)
                    } else {
                        units.contains(&r)
                    };
                    if !named {
                        continue;
                    }
                    let Some(mut rec) = delivery_for_update(txn, doc_id, r.as_str()).await? else {
                        continue;
                    };
                    if !rec.urge_by_sender(now_ms) {
                        continue;
                    }
                    queue_push(txn, &r, &Push::Notice(notice(&doc, &r, &rec))).await?;
                    save_delivery(txn, doc_id, r.as_str(), &rec).await?;
                    wake.push(format!("p {r}"));
                    urged.push(r);
                }
                notify(txn, &wake).await?;
                Ok(urged)
            })
        })
        .await
    }

    async fn run_due(
        &self,
        now_ms: i64,
        steps: Vec<EscalationStep>,
        notices: StepNotices,
    ) -> Result<Vec<Ran>, StoreError> {
        let steps = Arc::new(steps);
        self.in_txn(move |txn| {
            let (steps, notices) = (steps.clone(), notices.clone());
            Box::pin(async move {
                // Rows another hub is running are skipped, not waited for:
                // each step runs on one hub only.
                let due = txn
                    .query(
                        "SELECT doc_id, recipient, step FROM ladder WHERE due_ms <= $1
                         ORDER BY due_ms LIMIT 500 FOR UPDATE SKIP LOCKED",
                        &[&now_ms],
                    )
                    .await?;
                let mut ran = Vec::new();
                let mut wake = Vec::new();
                for row in &due {
                    let (key, recipient, step): (&[u8], &str, i32) =
                        (row.get(0), row.get(1), row.get(2));
                    txn.execute(
                        "DELETE FROM ladder WHERE doc_id = $1 AND recipient = $2",
                        &[&key, &recipient],
                    )
                    .await?;
                    let (Ok(doc_id), Ok(recipient_id), Ok(step)) = (
                        doc_id_of(key),
                        NodeId::parse_address(recipient),
                        u32::try_from(step),
                    ) else {
                        continue;
                    };
                    let Some(doc) = doc_for_update(txn, doc_id).await? else {
                        continue;
                    };
                    let Some(mut rec) = delivery_for_update(txn, doc_id, recipient).await? else {
                        continue;
                    };
                    let Some((escalated, next_entry)) =
                        rec.escalate_entry(step, &steps, now_ms, doc.links.reply_by_ms)
                    else {
                        continue;
                    };
                    let mut notified = Vec::new();
                    for (node, body) in notices(&doc, &recipient_id, &rec, step) {
                        queue_push(txn, &node, &Push::Notice(body)).await?;
                        wake.push(format!("p {node}"));
                        notified.push(node);
                    }
                    save_delivery(txn, doc_id, recipient, &rec).await?;
                    if let Some(next) = escalated.next_due_ms {
                        txn.execute(
                            "INSERT INTO ladder VALUES ($1, $2, $3, $4)
                             ON CONFLICT (doc_id, recipient) DO UPDATE
                                SET due_ms = EXCLUDED.due_ms, step = EXCLUDED.step",
                            &[&key, &recipient, &next, &(next_entry as i32)],
                        )
                        .await?;
                    }
                    ran.push(Ran {
                        doc_id,
                        recipient: recipient_id,
                        step,
                        notified,
                    });
                }
                if !ran.is_empty() {
                    gongwen_common::failpoint::hit("hub-escalation-before-commit");
                }
                notify(txn, &wake).await?;
                Ok(ran)
            })
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT min(due_ms) FROM ladder", &[])
            .await
            .map_err(|e| db_error(&e))?;
        Ok(row.get(0))
    }

    async fn claim_deliveries(
        &self,
        node: &NodeId,
        limit: usize,
        in_flight: &[DocId],
    ) -> Result<Vec<DocId>, StoreError> {
        let skip: Vec<Vec<u8>> = in_flight.iter().map(|d| d.as_bytes().to_vec()).collect();
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "UPDATE queue SET holder = $4
                     WHERE (recipient, rank, doc_id) IN (
                        SELECT recipient, rank, doc_id FROM queue
                        WHERE recipient = $1 AND {} AND NOT (doc_id = ANY($3))
                        ORDER BY rank, doc_id LIMIT $2
                        FOR UPDATE SKIP LOCKED)
                     RETURNING rank, doc_id",
                    CLAIMABLE.replace("$INSTANCE", "$4")
                ),
                &[&node.as_str(), &(limit as i64), &skip, &self.instance],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let mut claimed: Vec<(i16, Vec<u8>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        claimed.sort();
        claimed.iter().map(|(_, d)| doc_id_of(d)).collect()
    }

    async fn queued_from(
        &self,
        sender: &NodeId,
        recipient: &NodeId,
        at_most: u64,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM (SELECT 1 FROM queue WHERE recipient = $1 AND sender = $2 LIMIT $3) q",
                &[
                    &recipient.as_str(),
                    &sender.as_str(),
                    &i64::try_from(at_most).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn release_delivery(&self, node: &NodeId, doc_id: DocId) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE queue SET holder = NULL WHERE recipient = $1 AND doc_id = $2 AND holder = $3",
                &[&node.as_str(), &doc_id.as_bytes().as_slice(), &self.instance],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(())
    }

    async fn queue_length(&self, queue: &NodeId, at_most: u64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM (SELECT 1 FROM queue WHERE recipient = $1 LIMIT $2) q",
                &[&queue.as_str(), &(at_most.min(i64::MAX as u64) as i64)],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn relayed(&self, queue: &NodeId, doc_id: DocId) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM queue WHERE recipient = $1 AND doc_id = $2",
                &[&queue.as_str(), &doc_id.as_bytes().as_slice()],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(())
    }

    async fn release_unit(&self, node: &NodeId) -> Result<(), StoreError> {
        let client = self.client().await?;
        for sql in [
            "UPDATE queue SET holder = NULL WHERE recipient = $1 AND holder = $2",
            "UPDATE forward SET holder = NULL WHERE node = $1 AND holder = $2",
        ] {
            client
                .execute(sql, &[&node.as_str(), &self.instance])
                .await
                .map_err(|e| db_error(&e))?;
        }
        Ok(())
    }

    async fn release_claims_of_absent(&self, connected: &[NodeId]) -> Result<u64, StoreError> {
        let connected: Vec<&str> = connected.iter().map(|n| n.as_str()).collect();
        let client = self.client().await?;
        let mut released = 0;
        for sql in [
            "UPDATE queue SET holder = NULL WHERE holder = $1 AND NOT (recipient = ANY($2))",
            "UPDATE forward SET holder = NULL WHERE holder = $1 AND NOT (node = ANY($2))",
        ] {
            released += client
                .execute(sql, &[&self.instance, &connected])
                .await
                .map_err(|e| db_error(&e))?;
        }
        Ok(released)
    }

    async fn claim_pushes(
        &self,
        node: &NodeId,
        limit: usize,
    ) -> Result<Vec<(u64, Push)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "UPDATE forward SET holder = $3
                     WHERE seq IN (
                        SELECT seq FROM forward WHERE node = $1 AND {}
                        ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
                     RETURNING seq, push",
                    CLAIMABLE.replace("$INSTANCE", "$3")
                ),
                &[&node.as_str(), &(limit as i64), &self.instance],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let mut out: Vec<(u64, Push)> = rows
            .iter()
            .filter_map(|r| Some((r.get::<_, i64>(0) as u64, Push::decode(r.get(1))?)))
            .collect();
        out.sort_by_key(|(seq, _)| *seq);
        Ok(out)
    }

    async fn forwarded(
        &self,
        node: &NodeId,
        taken: Vec<u64>,
        not_taken: Vec<u64>,
    ) -> Result<(), StoreError> {
        let taken: Vec<i64> = taken.into_iter().map(|s| s as i64).collect();
        let not_taken: Vec<i64> = not_taken.into_iter().map(|s| s as i64).collect();
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM forward WHERE node = $1 AND seq = ANY($2)",
                &[&node.as_str(), &taken],
            )
            .await
            .map_err(|e| db_error(&e))?;
        client
            .execute(
                "UPDATE forward SET holder = NULL WHERE node = $1 AND seq = ANY($2) AND holder = $3",
                &[&node.as_str(), &not_taken, &self.instance],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(())
    }

    async fn unit_connected(
        &self,
        node: &NodeId,
        since: &str,
        addr: &str,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO presence VALUES ($1, $2, $3, $4)
                 ON CONFLICT (node) DO UPDATE SET instance = EXCLUDED.instance,
                    since = EXCLUDED.since, addr = EXCLUDED.addr",
                &[&node.as_str(), &self.instance, &since, &addr],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(())
    }

    async fn unit_disconnected(&self, node: &NodeId) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM presence WHERE node = $1 AND instance = $2",
                &[&node.as_str(), &self.instance],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(())
    }

    async fn presence(&self) -> Result<Vec<Presence>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT p.node, h.label, p.since, p.addr FROM presence p
                 JOIN hubs h ON h.instance = p.instance AND h.alive_until > now()
                 ORDER BY p.node",
                &[],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(Presence {
                    node: NodeId::parse(r.get::<_, &str>(0)).ok()?,
                    hub: r.get(1),
                    since: r.get(2),
                    addr: r.get(3),
                })
            })
            .collect())
    }

    async fn audit_verify(&self) -> Result<Verdict, StoreError> {
        let client = self.client().await?;
        let mut v = Verifier::default();
        let mut after = 0i64;
        'pages: loop {
            let rows = client
                .query(
                    "SELECT seq, at, at_ms, doc_id, kind, recipient, receipt, prev, hash
                     FROM audit WHERE seq > $1 ORDER BY seq LIMIT 1000",
                    &[&after],
                )
                .await
                .map_err(|e| db_error(&e))?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                after = r.get(0);
                let entry = Entry {
                    seq: after as u64,
                    at: r.get(1),
                    at_ms: r.get(2),
                    doc_id: r.get(3),
                    kind: r.get(4),
                    recipient: r.get(5),
                    receipt: gongwen_common::pki::serial_hex(r.get::<_, &[u8]>(6)),
                    prev: gongwen_common::pki::serial_hex(r.get::<_, &[u8]>(7)),
                    hash: gongwen_common::pki::serial_hex(r.get::<_, &[u8]>(8)),
                };
                if !v.check(Ok(entry)) {
                    break 'pages;
                }
            }
        }
        Ok(v.verdict())
    }

    async fn close(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
        if let Ok(client) = self.client().await {
            let _ = client
                .execute(
                    "DELETE FROM presence WHERE instance = $1",
                    &[&self.instance],
                )
                .await;
            let _ = client
                .execute(
                    "UPDATE queue SET holder = NULL WHERE holder = $1",
                    &[&self.instance],
                )
                .await;
            let _ = client
                .execute(
                    "UPDATE forward SET holder = NULL WHERE holder = $1",
                    &[&self.instance],
                )
                .await;
            let _ = client
                .execute("DELETE FROM hubs WHERE instance = $1", &[&self.instance])
                .await;
        }
        self.pool.close();
    }
}

/// An upload into `content` rows of [`CONTENT_ROW`] bytes. Each row and
/// the new durable point go in one transaction without waiting for the
/// disk (`synchronous_commit = off`): a crash loses the last rows and
/// their durable point together, never one without the other, and the
/// accept's own (synchronous) commit later flushes everything before it.
struct RowUpload {
    pool: Pool,
    key: Vec<u8>,
    /// This upload's token in `partial.writer`: once another connection
    /// takes the upload over, this one's rows are refused.
    writer: String,
    content_len: u64,
    offset: u64,
    hasher: Option<Hasher>,
}

impl RowUpload {
    async fn write_row(
        &self,
        client: &deadpool_postgres::Object,
        off: u64,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let durable = (off + data.len() as u64) as i64;
        let sql = "BEGIN;
            SET LOCAL synchronous_commit TO off;";
        client.batch_execute(sql).await.map_err(|e| db_error(&e))?;
        let r = async {
            client
                .execute(
                    "INSERT INTO content VALUES ($1, $2, $3)
                     ON CONFLICT (doc_id, off) DO UPDATE SET data = EXCLUDED.data",
                    &[&self.key, &(off as i64), &data],
                )
                .await?;
            // Still ours? (The row lock orders this against a takeover.)
            let ours = client
                .execute(
                    "UPDATE partial SET durable = $2 WHERE doc_id = $1 AND writer = $3",
                    &[&self.key, &durable, &self.writer],
                )
                .await?;
            if ours == 0 {
                client.batch_execute("ROLLBACK").await?;
                return Ok(false);
            }
            client.batch_execute("COMMIT").await?;
            Ok(true)
        }
        .await;
        match r {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::Database(
                "another connection took this upload over".into(),
            )),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(db_error(&e))
            }
        }
    }
}

#[async_trait]
impl UploadSink for RowUpload {
    fn offset(&self) -> u64 {
        self.offset
    }

    async fn write(&mut self, mut batches: Batches) -> Result<(u64, [u8; 32]), StoreError> {
        let mut hasher = self
            .hasher
            .take()
            .ok_or_else(|| StoreError::Task("the upload was already written".into()))?;
        let client = self.pool.get().await.map_err(pool_error)?;
        let mut row: Vec<u8> = Vec::with_capacity(CONTENT_ROW.min(self.content_len as usize));
        let mut at = self.offset;
        let mut result = Ok(());
        while let Some(batch) = batches.next().await {
            for chunk in &batch {
                hasher.update(chunk);
                let mut rest: &[u8] = chunk;
                while !rest.is_empty() {
                    let take = (CONTENT_ROW - row.len()).min(rest.len());
                    row.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if row.len() == CONTENT_ROW {
                        if result.is_ok() {
                            result = self.write_row(&client, at, &row).await;
                        }
                        at += row.len() as u64;
                        row.clear();
                    }
                }
            }
            // After a failed write the rest is still read (and hashed) so
            // the stream ends cleanly; the error is reported at the end.
        }
        if !row.is_empty() && result.is_ok() {
            result = self.write_row(&client, at, &row).await;
        }
        at += row.len() as u64;
        result?;
        let mut sha = [0u8; 32];
        sha.copy_from_slice(&hasher.clone().finish());
        self.hasher = Some(hasher);
        Ok((at, sha))
    }

    async fn seal(self: Box<Self>) -> Result<(), StoreError> {
        // The rows are in place; the accept's commit makes them the
        // document's (and removes the partial record).
        gongwen_common::failpoint::hit("hub-upload-written");
        gongwen_common::failpoint::hit("hub-upload-synced");
        Ok(())
    }

    async fn discard(self: Box<Self>) {
        if let Ok(client) = self.pool.get().await {
            let _ = client
                .execute("DELETE FROM content WHERE doc_id = $1", &[&self.key])
                .await;
            let _ = client
                .execute("DELETE FROM partial WHERE doc_id = $1", &[&self.key])
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_name_the_unit_and_the_queue() {
        let e = parse_notification("d harbin-gov");
        assert!(matches!(&e[..], [StoreEvent::Deliveries(n)] if n.as_str() == "harbin-gov"));
        let e = parse_notification("p prov-gov");
        assert!(matches!(&e[..], [StoreEvent::Pushes(n)] if n.as_str() == "prov-gov"));
        assert!(matches!(
            &parse_notification("e")[..],
            [StoreEvent::Escalation]
        ));
        assert!(parse_notification("x what").is_empty());
        assert!(parse_notification("d not a node id!").is_empty());
    }

    #[test]
    fn a_bad_connection_string_says_how_to_write_one() {
        let e = parse_config("host=db1 port=notaport")
            .unwrap_err()
            .to_string();
        assert!(e.contains("target_session_attrs=read-write"), "{e}");
        assert!(
            parse_config(
                "host=db1,db2 dbname=gongwen user=gongwen target_session_attrs=read-write"
            )
            .is_ok()
        );
    }

    #[test]
    fn every_migration_is_numbered_up_to_the_schema_version() {
        assert_eq!(MIGRATIONS.len() as i64, SCHEMA_VERSION);
    }
}
