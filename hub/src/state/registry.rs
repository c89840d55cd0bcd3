//! Which nodes the hub knows, and the live connection of each.
//!
//! One owner (the `Registry` behind a mutex, never held across an await);
//! the accept loop registers and unregisters, the revocation watcher cuts,
//! the control socket reads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use gongwen_common::timefmt::rfc3339;
use gongwen_common::wire::RefuseCode;
use gongwen_common::{NodeId, Role};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A node as `gongwen-hub nodes` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Deserialize)]
pub struct NodeRow {
    pub id: String,
    pub name: Option<String>,
    pub role: Role,
    pub connected: bool,
    /// When it connected (if connected) or last disconnected; null if it
    /// has not connected since the hub started.
    pub since: Option<String>,
    /// Its last address, if it connected since the hub started.
    pub addr: Option<String>,
    /// Whether it published an encryption key, so documents can be
    /// addressed to it.
    #[serde(default)]
    pub can_receive: bool,
    /// The hub it is connected to, when hubs share a store (host:port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// Its certificate has been revoked (it can neither connect nor
    /// receive).
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug)]
struct Entry {
    role: Role,
    name: Option<String>,
    serial: Vec<u8>,
    /// When its certificate expires: the connection is cut then.
    not_after: OffsetDateTime,
    addr: SocketAddr,
    since: OffsetDateTime,
    /// The live connection, the ticket that owns it, and how to wake its
    /// pushers.
    live: Option<(u64, quinn::Connection, Arc<Wake>)>,
}

/// Wake-ups for one connection's pushers. `notify_one` keeps a permit when
/// the pusher is busy, so no wake-up is lost.
#[derive(Debug, Default)]
pub struct Wake {
    /// A document was queued for this node.
    pub deliveries: tokio::sync::Notify,
    /// A receipt was queued for this node (as sender).
    pub receipts: tokio::sync::Notify,
    /// The CRL changed.
    pub crl: tokio::sync::Notify,
}

/// Every node seen since the hub started.
#[derive(Debug, Default)]
pub struct Registry {
    nodes: BTreeMap<NodeId, Entry>,
    next_ticket: u64,
}

/// What registering a connection needs to know about it.
#[derive(Debug)]
pub struct Admission {
    pub id: NodeId,
    pub role: Role,
    pub name: Option<String>,
    pub serial: Vec<u8>,
    pub not_after: OffsetDateTime,
    pub conn: quinn::Connection,
}

pub fn close(conn: &quinn::Connection, code: RefuseCode, reason: &str) {
    conn.close(quinn::VarInt::from(code as u16 as u32), reason.as_bytes());
}

impl Registry {
    /// Record a newly admitted connection, replacing (and closing) any
    /// earlier connection of the same node. Returns a ticket for
    /// [`Registry::disconnect`].
    pub fn connect(&mut self, a: Admission, now: OffsetDateTime) -> (u64, Arc<Wake>) {
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        let wake = Arc::new(Wake::default());
        let addr = a.conn.remote_address();
        let entry = Entry {
            role: a.role,
            name: a.name,
            serial: a.serial,
            not_after: a.not_after,
            addr,
            since: now,
            live: Some((ticket, a.conn, wake.clone())),
        };
        if let Some(old) = self.nodes.insert(a.id, entry)
            && let Some((_, conn, _)) = old.live
        {
            close(
                &conn,
                RefuseCode::Replaced,
                "a newer connection with the same certificate replaced this one",
            );
        }
        (ticket, wake)
    }

    /// The wake-ups of a connected node.
    pub fn wake(&self, id: &NodeId) -> Option<Arc<Wake>> {
        self.nodes
            .get(id)
            .and_then(|e| e.live.as_ref())
            .map(|(_, _, w)| w.clone())
    }

    /// Wake-ups of every connected node.
    pub fn all_wakes(&self) -> Vec<Arc<Wake>> {
        self.nodes
            .values()
            .filter_map(|e| e.live.as_ref().map(|(_, _, w)| w.clone()))
            .collect()
    }

    /// Mark a node disconnected, unless a newer connection replaced it;
    /// whether it was this connection that ended the node's presence.
    pub fn disconnect(&mut self, id: &NodeId, ticket: u64, now: OffsetDateTime) -> bool {
        if let Some(e) = self.nodes.get_mut(id)
            && e.live.as_ref().is_some_and(|(t, _, _)| *t == ticket)
        {
            e.live = None;
            e.since = now;
            return true;
        }
        false
    }

    /// Close every live connection for which `cut` says so; returns their ids.
    pub fn cut_where(
        &mut self,
        mut cut: impl FnMut(&NodeId, &[u8]) -> bool,
        code: RefuseCode,
        reason: &str,
    ) -> Vec<NodeId> {
        let mut cut_ids = Vec::new();
        for (id, e) in &mut self.nodes {
            if let Some((_, conn, _)) = &e.live
                && cut(id, &e.serial)
            {
                close(conn, code, reason);
                cut_ids.push(id.clone());
            }
        }
        cut_ids
    }

    /// Close every live connection whose certificate has expired at `now`;
    /// returns their ids.
    pub fn cut_expired(&mut self, now: OffsetDateTime) -> Vec<NodeId> {
        let mut cut_ids = Vec::new();
        for (id, e) in &mut self.nodes {
            if let Some((_, conn, _)) = &e.live
                && now > e.not_after
            {
                close(
                    conn,
                    RefuseCode::Expired,
                    "certificate expired: ask the administrator for a new one",
                );
                cut_ids.push(id.clone());
            }
        }
        cut_ids
    }

    /// When the certificate of each connected unit expires.
    pub fn expiries(&self) -> Vec<(NodeId, OffsetDateTime)> {
        self.nodes
            .iter()
            .filter(|(_, e)| e.live.is_some())
            .map(|(id, e)| (id.clone(), e.not_after))
            .collect()
    }

    /// The units connected here now.
    pub fn connected(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, e)| e.live.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Rows for `gongwen-hub nodes`, ordered by id.
    pub fn rows(&self) -> Vec<NodeRow> {
        self.nodes
            .iter()
            .map(|(id, e)| NodeRow {
                id: id.to_string(),
                name: e.name.clone(),
                role: e.role,
                connected: e.live.is_some(),
                since: Some(rfc3339(e.since)),
                addr: Some(e.addr.to_string()),
                can_receive: false,
                hub: None,
                revoked: false,
            })
            .collect()
    }
}

/// The [`Registry`] with its lock: who is connected, and how to wake the
/// pushers of a connected unit. The lock is never held across an await.
#[derive(Debug, Default)]
pub struct Units {
    registry: std::sync::Mutex<Registry>,
}

impl Units {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves plain data behind.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register an admitted connection (see [`Registry::connect`]).
    pub fn connect(&self, a: Admission, now: OffsetDateTime) -> (u64, Arc<Wake>) {
        self.lock().connect(a, now)
    }

    pub fn disconnect(&self, id: &NodeId, ticket: u64, now: OffsetDateTime) -> bool {
        self.lock().disconnect(id, ticket, now)
    }

    /// The units connected here now.
    pub fn connected(&self) -> Vec<NodeId> {
        self.lock().connected()
    }

    /// A document was queued for `node`: its deliverer looks now.
    pub fn wake_deliveries(&self, node: &NodeId) {
        if let Some(w) = self.lock().wake(node) {
            w.deliveries.notify_one();
        }
    }

    /// A receipt or notice was queued for `node`: its forwarder looks now.
    pub fn wake_pushes(&self, node: &NodeId) {
        if let Some(w) = self.lock().wake(node) {
            w.receipts.notify_one();
        }
    }

    /// Every connected unit's deliverer and forwarder look now (after a
    /// lost notification from another hub could have hidden work).
    pub fn wake_everyone(&self) {
        for w in self.lock().all_wakes() {
            w.deliveries.notify_one();
            w.receipts.notify_one();
        }
    }

    /// The CRL changed: every connected unit gets it.
    pub fn push_crl_to_everyone(&self) {
        for w in self.lock().all_wakes() {
            w.crl.notify_one();
        }
    }

    /// Close every live connection for which `cut` says so; returns their ids.
    pub fn cut_where(
        &self,
        cut: impl FnMut(&NodeId, &[u8]) -> bool,
        code: RefuseCode,
        reason: &str,
    ) -> Vec<NodeId> {
        self.lock().cut_where(cut, code, reason)
    }

    pub fn cut_expired(&self, now: OffsetDateTime) -> Vec<NodeId> {
        self.lock().cut_expired(now)
    }

    /// See [`Registry::expiries`].
    pub fn expiries(&self) -> Vec<(NodeId, OffsetDateTime)> {
        self.lock().expiries()
    }

    pub fn rows(&self) -> Vec<NodeRow> {
        self.lock().rows()
    }
}
