//! Answers about the documents and units the hub holds, for the control
//! socket and for supervisors' agents: reads the store, then the pure
//! functions of [`crate::rules::supervision`].

use std::collections::{BTreeMap, BTreeSet};

use gongwen_common::NodeId;

use gongwen_common::pki::CertIdentity;

use gongwen_common::supervision::{
    AddressBook, AddressEntry, DeadlineSpans, DocStatus, ForwardedBy, ForwardedCopy,
    ForwardedRecipient, Found, GroupEntry, OverduePage, OverdueRow,
};

use crate::rules::supervision::{self, Query};
use crate::state::core::Core;
use crate::state::registry::NodeRow;
use crate::store::{DeliveryRecord, DocRecord};

/// Answer a supervision query (from this socket or a supervisor's agent),
/// as the JSON of its typed answer (`gongwen_common::supervision`).
pub(crate) async fn supervise(core: &Core, q: &Query) -> Result<serde_json::Value, String> {
    match q {
        Query::Status { doc } => to_json(&status(core, *doc).await?),
        Query::Directory { since } => directory(core, since.as_deref()).await,
        Query::Find { doc_number } => to_json(&find(core, doc_number).await?),
        Query::Overdue {
            filter,
            limit,
            offset,
        } => {
            let rows = overdue(core).await?;
            match limit {
                None if filter.is_empty() => to_json(&rows),
                _ => to_json(&OverduePage::of(
                    rows,
                    filter,
                    *offset,
                    limit.unwrap_or(usize::MAX),
                )),
            }
        }
        Query::Cascade { doc, hops } => {
            let Some(doc) = core.store().doc(*doc).await.map_err(|e| e.to_string())? else {
                return Err(format!("the hub has no document {doc}"));
            };
            to_json(
                &cascade(core, doc.doc_id, &doc.recipients(), *hops, None)
                    .await?
                    .0,
            )
        }
        Query::Press { .. } => Err("a 督办单 is sent by a supervisor unit's agent".into()),
        Query::Report { since, until } => {
            let (since, until) = (parse_time(since)?, parse_time(until)?);
            let data = all_deliveries(core).await?;
            let mut report = supervision::report(&data, since, until, core.now_ms());
            let revoked = revoked_units(core).await?;
            for u in &mut report.units {
                u.revoked = revoked.iter().any(|r| r.as_str() == u.unit);
            }
            to_json(&report)
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

/// An RFC 3339 time given in a query, as Unix ms.
fn parse_time(t: &Option<String>) -> Result<Option<i64>, String> {
    t.as_deref()
        .map(|s| {
            gongwen_common::timefmt::parse_rfc3339(s)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| format!("{s:?} is not an RFC 3339 time such as 2026-11-01T00:00:00Z"))
        })
        .transpose()
}

#[allow(clippy::type_complexity)]
async fn all_deliveries(
    core: &Core,
) -> Result<Vec<(DocRecord, Vec<(NodeId, DeliveryRecord)>)>, String> {
    core.store()
        .all_deliveries()
        .await
        .map_err(|e| e.to_string())
}

/// `status`: one document and where each recipient's copy stands, with
/// the copies each recipient passed on (转发).
async fn status(core: &Core, doc_id: gongwen_common::DocId) -> Result<DocStatus, String> {
    let store = core.store();
    let err = |e: crate::store::StoreError| e.to_string();
    let doc = store.doc(doc_id).await.map_err(err)?;
    let deliveries = store.deliveries(doc_id).await.map_err(err)?;
    let kinds = store.receipt_kinds(doc_id).await.map_err(err)?;
    let Some(doc) = doc else {
        return Err(format!("the hub has no document {doc_id}"));
    };
    let now = core.now_ms();
    // The cascade (转发): who passed it on, to whom, and where each copy
    // stands, here and at the hubs of the other domains it went to.
    let (forwards, cascade_unknown) =
        cascade(core, doc.doc_id, &doc.recipients(), CASCADE_HOPS, None).await?;
    let recipients = doc
        .recipients()
        .iter()
        .filter_map(|r| {
            let (_, d) = deliveries.iter().find(|(id, _)| id == r)?;
            let mut held: Vec<String> = kinds
                .iter()
                .filter(|(id, _)| id == r)
                .map(|(_, k)| k.as_str().to_owned())
                .collect();
            held.sort();
            let mut row = supervision::recipient_row(&doc, r, d, held, now);
            row.forwarded = forwards
                .iter()
                .filter(|f| f.by == r.as_str())
                .map(|f| f.copy.clone())
                .collect();
            Some(row)
        })
        .collect();
    // Forwards made further down (by units it did not go to directly).
    let direct: BTreeSet<&str> = doc.to.iter().chain(&doc.cc).map(NodeId::as_str).collect();
    let forwarded_further: Vec<ForwardedBy> = forwards
        .into_iter()
        .filter(|k| !direct.contains(k.by.as_str()))
        .collect();
    Ok(DocStatus {
        doc_id: doc.doc_id,
        forwards: doc.links.forwards,
        sender: doc.sender.clone(),
        to: doc.to.clone(),
        cc: doc.cc.clone(),
        title: doc.title.clone(),
        doc_number: doc.doc_number.clone(),
        doc_type: doc.doc_type.clone(),
        urgency: doc.urgency,
        created_at: supervision::time_ms(doc.created_ms),
        accepted_at: supervision::time_ms(doc.accepted_ms),
        digest: doc.digest.clone(),
        content_len: doc.content_len,
        content_removed: doc.content_removed,
        files: doc.files.clone(),
        reply: doc.links.reply,
        reply_by: doc.links.reply_by_ms.and_then(supervision::time_ms),
        answers: doc.links.answers,
        decision: doc.links.decision,
        recipients,
        forwarded_further,
        cascade_unknown,
    })
}

/// How many hubs away `status` looks for what units passed a document on
/// (转发): as far as a chain of federation statements reaches.
pub(crate) const CASCADE_HOPS: u8 = gongwen_common::federation::MAX_CHAIN as u8;

/// What units passed `original` on as (转发) — a forward of a forward
/// names the first issuer's document too, so this is the whole cascade —
/// with where each copy stands: the forwards this hub holds (its own
/// units', and those on their way through it), then, while `hops` allows,
/// what the next hub towards each other domain the original or a forward
/// went to knows, asked over the link (each peer once, never `asked_by`,
/// the peer asking us). `recipients`: the original's, when this hub holds
/// it. Addresses as this hub names them; the second list names the hubs
/// that could not be asked, and why.
pub(crate) async fn cascade(
    core: &Core,
    original: gongwen_common::DocId,
    recipients: &[NodeId],
    hops: u8,
    asked_by: Option<&gongwen_common::federation::Domain>,
) -> Result<(Vec<ForwardedBy>, Vec<String>), String> {
    let found = forwards_held(core, original).await?;
    Ok(cascade_beyond(core, original, recipients, found, hops, asked_by).await)
}

/// The forwards of `original` this hub holds.
pub(crate) async fn forwards_held(
    core: &Core,
    original: gongwen_common::DocId,
) -> Result<Vec<ForwardedBy>, String> {
    Ok(all_deliveries(core)
        .await?
        .into_iter()
        .filter(|(d, _)| d.links.forwards == Some(original))
        .map(|(f, copies)| ForwardedBy {
            by: f.sender.to_string(),
            copy: ForwardedCopy {
                doc_id: f.doc_id,
                accepted_at: supervision::time_ms(f.accepted_ms),
                recipients: copies
                    .iter()
                    .map(|(to, c)| ForwardedRecipient {
                        recipient: to.to_string(),
                        state: c.state,
                        acknowledged_at: c.acknowledged_ms.and_then(supervision::time_ms),
                    })
                    .collect(),
            },
        })
        .collect())
}

/// [`cascade`] past this hub: `found` (what it holds) and what the peers
/// towards the domains the copies went to answer.
pub(crate) async fn cascade_beyond(
    core: &Core,
    original: gongwen_common::DocId,
    recipients: &[NodeId],
    mut found: Vec<ForwardedBy>,
    hops: u8,
    asked_by: Option<&gongwen_common::federation::Domain>,
) -> (Vec<ForwardedBy>, Vec<String>) {
    let mut unknown = Vec::new();
    let Some(f) = core.federation() else {
        return (found, unknown);
    };
    if hops == 0 {
        return (found, unknown);
    }
    let mut asked: BTreeSet<gongwen_common::federation::Domain> =
        asked_by.into_iter().cloned().collect();
    // A peer's answer may be long: each forward taken once, by its id.
    let mut seen: BTreeSet<gongwen_common::DocId> = found.iter().map(|k| k.copy.doc_id).collect();
    loop {
        // The peers towards every domain a copy went to, not asked yet.
        let went_to = recipients.iter().cloned().chain(found.iter().flat_map(|k| {
            k.copy
                .recipients
                .iter()
                .filter_map(|r| NodeId::parse_address(&r.recipient).ok())
        }));
        let peers: BTreeSet<_> = went_to
            .filter_map(|r| r.domain())
            .filter_map(|d| f.next_hop(&d))
            .filter(|p| !asked.contains(p))
            .collect();
        if peers.is_empty() {
            return (found, unknown);
        }
        asked.extend(peers.iter().cloned());
        let asks = peers.into_iter().map(|peer| async move {
            let answer = crate::link::peer::ask_cascade(f, &peer, original, hops - 1).await;
            (peer, answer)
        });
        for (peer, answer) in futures_util::future::join_all(asks).await {
            match answer {
                Ok(rows) => {
                    for row in rows {
                        if seen.insert(row.copy.doc_id) {
                            found.push(seen_here(row, &peer, f.domain()));
                        }
                    }
                }
                Err(e) => unknown.push(format!("{peer}: {e}")),
            }
        }
    }
}

/// A forward as the hub of `from` named it, as this hub names it (its
/// units bare, the others `unit@domain`). An address that does not parse
/// is only shown: escaped and cut, as a peer's words are.
fn seen_here(
    mut row: ForwardedBy,
    from: &gongwen_common::federation::Domain,
    here: &gongwen_common::federation::Domain,
) -> ForwardedBy {
    let put = |a: &mut String| {
        *a = match NodeId::parse_address(a) {
            Ok(id) => gongwen_common::federation::localize(&id, from, Some(here)).to_string(),
            Err(_) => gongwen_common::logsafe::Clipped(a).to_string(),
        };
    };
    put(&mut row.by);
    for r in &mut row.copy.recipients {
        put(&mut r.recipient);
    }
    row
}

/// `directory`: the book made once per change ([`AddressBooks`]), or
/// "unchanged" to an asker that holds its version.
///
/// [`AddressBooks`]: crate::state::address_book::AddressBooks
async fn directory(core: &Core, since: Option<&str>) -> Result<serde_json::Value, String> {
    let book = core
        .address_books()
        .get(std::time::Instant::now(), || async {
            to_json(&address_book(core).await?)
        })
        .await?;
    if since == Some(book.version.as_str()) {
        return Ok(serde_json::json!({ "unchanged": true, "version": book.version }));
    }
    let mut json = (*book.json).clone();
    if let Some(fields) = json.as_object_mut() {
        fields.insert("version".into(), book.version.into());
    }
    Ok(json)
}

/// Every unit documents can be sent to, by display name (the
/// CA's directory's, else the one in the certificate that signed its key
/// binding), the revoked marked; the groups; the default deadlines.
async fn address_book(core: &Core) -> Result<AddressBook, String> {
    let bindings = core.store().bindings().await.map_err(|e| e.to_string())?;
    let enrolled = core.enrolled().current();
    let mut names: BTreeMap<NodeId, Option<String>> = enrolled
        .directory
        .entries
        .iter()
        .map(|e| (e.id.clone(), e.display_name()))
        .collect();
    for (id, binding) in &bindings {
        let entry = names.entry(id.clone()).or_insert(None);
        if entry.is_none() {
            *entry = name_in_binding(binding);
        }
    }
    let revoked = revoked_units(core).await?;
    let d = &core.config().deadlines;
    let mut units: Vec<AddressEntry> = names
        .into_iter()
        .map(|(id, name)| AddressEntry {
            revoked: revoked.contains(&id),
            id,
            name,
        })
        .collect();
    // The units of the other domains, as their CAs list them
    // (`unit@domain`), so that a unit can write to one before it ever
    // wrote to us.
    if let Some(f) = core.federation() {
        units.extend(
            f.remote_units()
                .into_iter()
                .map(|(id, name, _)| AddressEntry {
                    id,
                    name: (!name.is_empty()).then_some(name),
                    revoked: false,
                }),
        );
    }
    let mut groups: Vec<GroupEntry> = enrolled
        .groups
        .iter()
        .map(|(name, members)| GroupEntry {
            name: name.clone(),
            members: members.clone(),
        })
        .collect();
    // The other domains' groups, as their CAs list them (`group@domain`).
    if let Some(f) = core.federation() {
        groups.extend(
            f.remote_groups()
                .into_iter()
                .map(|(name, members)| GroupEntry { name, members }),
        );
    }
    Ok(AddressBook {
        version: None,
        units,
        groups,
        // What a sender needs to know the deadline the hub will set when
        // it sets none itself.
        deadlines: Some(DeadlineSpans {
            normal: d.normal.as_secs(),
            urgent: d.urgent.as_secs(),
            extra_urgent: d.extra_urgent.as_secs(),
        }),
    })
}

/// `find`: documents whose number (文号) contains the text, at most 100.
async fn find(core: &Core, doc_number: &str) -> Result<Vec<Found>, String> {
    let wanted = doc_number.trim().to_owned();
    if wanted.is_empty() {
        return Err("give the document number (文号) to look for".into());
    }
    Ok(all_deliveries(core)
        .await?
        .iter()
        .filter(|(doc, _)| doc.doc_number.contains(&wanted))
        .take(100)
        .map(|(doc, _)| Found {
            doc_id: doc.doc_id,
            doc_number: doc.doc_number.clone(),
            title: doc.title.clone(),
            sender: doc.sender.clone(),
            accepted_at: supervision::time_ms(doc.accepted_ms),
        })
        .collect())
}

/// `overdue`: every (document, unit) past its deadline, the revoked marked.
async fn overdue(core: &Core) -> Result<Vec<OverdueRow>, String> {
    let data = all_deliveries(core).await?;
    let mut rows = supervision::overdue(&data, core.now_ms());
    let revoked = revoked_units(core).await?;
    for r in &mut rows {
        r.recipient_revoked = revoked.iter().any(|u| u.as_str() == r.recipient);
    }
    Ok(rows)
}

/// The units whose key binding the hub would hand out is signed by a
/// certificate the CRL now revokes: documents are no longer sealed to
/// them, and the directory, `nodes` and supervision mark them.
pub(crate) async fn revoked_units(core: &Core) -> Result<BTreeSet<NodeId>, String> {
    let mut published: BTreeMap<NodeId, Vec<u8>> = core
        .store()
        .bindings()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let enrolled = core.enrolled().current();
    let trust = core.trust().current();
    let mut ids: BTreeSet<NodeId> = published.keys().cloned().collect();
    ids.extend(enrolled.directory.entries.iter().map(|e| e.id.clone()));
    let mut revoked = BTreeSet::new();
    for id in ids {
        let mine = published.remove(&id);
        let Some(binding) = enrolled.binding_for(&id, mine) else {
            continue;
        };
        let serial = gongwen_common::envelope::ReachKey::statement_of(&binding)
            .and_then(|st| CertIdentity::from_der(&st.cert).ok())
            .map(|c| c.serial);
        if serial.is_some_and(|s| trust.crl.is_revoked(&s)) {
            revoked.insert(id);
        }
    }
    Ok(revoked)
}

/// The display name in the certificate that signed a key binding.
fn name_in_binding(binding: &[u8]) -> Option<String> {
    let st = gongwen_common::envelope::ReachKey::statement_of(binding)?;
    CertIdentity::from_der(&st.cert).ok()?.name
}

/// Connected nodes, every node known from its published key, and every
/// unit enrolled in the CA's directory.
pub(crate) async fn nodes(core: &Core) -> Result<serde_json::Value, String> {
    let mut rows = core.units().rows();
    let enrolled = core.enrolled().current();
    let known = core.store().bindings().await.map_err(|e| e.to_string())?;
    let elsewhere = core.store().presence().await.map_err(|e| e.to_string())?;
    let shared = core.store().backend() != "embedded";
    for (id, binding) in known {
        if let Some(row) = rows.iter_mut().find(|r| r.id == id.as_str()) {
            row.can_receive = true;
            continue;
        }
        let Some(st) = gongwen_common::envelope::ReachKey::statement_of(&binding) else {
            continue;
        };
        let Ok(ident) = CertIdentity::from_der(&st.cert) else {
            continue;
        };
        rows.push(NodeRow {
            id: id.to_string(),
            name: ident.name,
            role: ident.role,
            connected: false,
            since: None,
            addr: None,
            can_receive: true,
            hub: None,
            revoked: false,
        });
    }
    if shared {
        for row in rows.iter_mut().filter(|r| r.connected) {
            row.hub = Some(core.label().to_string());
        }
        // Units connected to another hub sharing the store.
        for p in elsewhere {
            if let Some(row) = rows.iter_mut().find(|r| r.id == p.node.as_str())
                && !row.connected
            {
                row.connected = true;
                row.since = Some(p.since);
                row.addr = Some(p.addr);
                row.hub = Some(p.hub);
            }
        }
    }
    for e in &enrolled.directory.entries {
        match rows.iter_mut().find(|r| r.id == e.id.as_str()) {
            Some(row) => {
                row.can_receive = true;
                // The CA's directory is the register of names.
                if let Some(name) = e.display_name() {
                    row.name = Some(name);
                }
            }
            None => rows.push(NodeRow {
                id: e.id.to_string(),
                name: e.display_name(),
                role: e.role,
                connected: false,
                since: None,
                addr: None,
                can_receive: true,
                hub: None,
                revoked: false,
            }),
        }
    }
    let revoked = revoked_units(core).await?;
    for row in rows.iter_mut() {
        row.revoked = revoked.iter().any(|r| r.as_str() == row.id);
        // A revoked unit cannot receive: nothing is sealed to it.
        row.can_receive &= !row.revoked;
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    serde_json::to_value(rows).map_err(|e| e.to_string())
}
