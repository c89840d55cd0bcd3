//! Answers about the documents and units the hub holds, for the control
//! socket and for supervisors' agents: reads the store, then the pure
//! functions of [`crate::supervision`].

use std::collections::{BTreeMap, BTreeSet};

use gongwen_common::NodeId;

use gongwen_common::pki::CertIdentity;

use crate::core::Core;
use crate::registry::NodeRow;
use crate::supervision::{self, Query};

/// Answer a supervision query (from this socket or a supervisor's agent).
pub(crate) async fn supervise(core: &Core, q: &Query) -> Result<serde_json::Value, String> {
    let now = core.now_ms();
    let parse_time = |t: &Option<String>| -> Result<Option<i64>, String> {
        t.as_deref()
            .map(|s| {
                gongwen_common::timefmt::parse_rfc3339(s)
                    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                    .map_err(|_| {
                        format!("{s:?} is not an RFC 3339 time such as 2026-11-01T00:00:00Z")
                    })
            })
            .transpose()
    };
    let value = match q {
        Query::Status { doc } => {
            let doc_id = *doc;
            let store = core.store();
            let (doc, deliveries, kinds) = (
                store.doc(doc_id).await.map_err(|e| e.to_string())?,
                store.deliveries(doc_id).await.map_err(|e| e.to_string())?,
                store
                    .receipt_kinds(doc_id)
                    .await
                    .map_err(|e| e.to_string())?,
            );
            let Some(doc) = doc else {
                return Err(format!("the hub has no document {doc_id}"));
            };
            let recipients: Vec<supervision::RecipientRow> = doc
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
                    Some(supervision::recipient_row(&doc, r, d, held, now))
                })
                .collect();
            // The cascade (转发): who passed it on, to whom, and where
            // each copy stands.
            #[allow(clippy::type_complexity)]
            let forwards: Vec<(
                crate::store::DocRecord,
                Vec<(gongwen_common::NodeId, crate::store::DeliveryRecord)>,
            )> = core
                .store()
                .all_deliveries()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|(d, _)| d.links.forwards == Some(doc.doc_id))
                .collect();
            let recipients: Vec<serde_json::Value> = recipients
                .into_iter()
                .map(|row| {
                    let mut v = serde_json::to_value(&row).unwrap_or_default();
                    let passed_on: Vec<serde_json::Value> = forwards
                        .iter()
                        .filter(|(d, _)| d.sender.as_str() == row.recipient)
                        .map(|(d, copies)| {
                            serde_json::json!({
                                "doc_id": d.doc_id,
                                "accepted_at": supervision::time_ms(d.accepted_ms),
                                "recipients": copies
                                    .iter()
                                    .map(|(r, c)| serde_json::json!({
                                        "recipient": r,
                                        "state": c.state.as_str(),
                                        "acknowledged_at": c.acknowledged_ms.and_then(supervision::time_ms),
                                    }))
                                    .collect::<Vec<_>>(),
                            })
                        })
                        .collect();
                    if !passed_on.is_empty() {
                        v["forwarded"] = serde_json::Value::Array(passed_on);
                    }
                    v
                })
                .collect();
            serde_json::json!({
                "doc_id": doc.doc_id,
                "forwards": doc.links.forwards,
                "sender": doc.sender,
                "to": doc.to,
                "cc": doc.cc,
                "title": doc.title,
                "doc_number": doc.doc_number,
                "doc_type": doc.doc_type,
                "urgency": doc.urgency,
                "created_at": supervision::time_ms(doc.created_ms),
                "accepted_at": supervision::time_ms(doc.accepted_ms),
                "digest": doc.digest,
                "content_len": doc.content_len,
                "content_removed": doc.content_removed,
                "files": doc.files,
                "reply": doc.links.reply,
                "reply_by": doc.links.reply_by_ms.and_then(supervision::time_ms),
                "answers": doc.links.answers,
                "decision": doc.links.decision,
                "recipients": recipients,
            })
        }
        Query::Directory => {
            let bindings = core.store().bindings().await.map_err(|e| e.to_string())?;
            let enrolled = core.enrolled().current();
            // Display names from the CA's directory, else from the
            // certificate that signed the unit's published key binding.
            let mut names: BTreeMap<String, Option<String>> = enrolled
                .directory
                .entries
                .iter()
                .map(|e| (e.id.to_string(), e.display_name()))
                .collect();
            for (id, binding) in &bindings {
                let entry = names.entry(id.to_string()).or_insert(None);
                if entry.is_none() {
                    *entry = name_in_binding(binding);
                }
            }
            let units: Vec<serde_json::Value> = names
                .iter()
                .map(|(id, name)| serde_json::json!({ "id": id, "name": name }))
                .collect();
            let mut units = serde_json::Value::Array(units);
            mark_revoked(&mut units, "id", &revoked_units(core).await?);
            let groups: Vec<serde_json::Value> = enrolled
                .groups
                .iter()
                .map(|(name, members)| serde_json::json!({ "name": name, "members": members }))
                .collect();
            // What a sender needs to know the deadline the hub will set
            // when it sets none itself.
            let d = &core.config().deadlines;
            let deadlines = serde_json::json!({
                "normal": d.normal.as_secs(),
                "urgent": d.urgent.as_secs(),
                "extra_urgent": d.extra_urgent.as_secs(),
            });
            serde_json::json!({ "units": units, "groups": groups, "deadlines": deadlines })
        }
        Query::Find { doc_number } => {
            let wanted = doc_number.trim().to_owned();
            if wanted.is_empty() {
                return Err("give the document number (文号) to look for".into());
            }
            let data = core
                .store()
                .all_deliveries()
                .await
                .map_err(|e| e.to_string())?;
            let found: Vec<serde_json::Value> = data
                .iter()
                .filter(|(doc, _)| doc.doc_number.contains(&wanted))
                .take(100)
                .map(|(doc, _)| {
                    serde_json::json!({
                        "doc_id": doc.doc_id,
                        "doc_number": doc.doc_number,
                        "title": doc.title,
                        "sender": doc.sender,
                        "accepted_at": supervision::time_ms(doc.accepted_ms),
                    })
                })
                .collect();
            serde_json::Value::Array(found)
        }
        Query::Overdue {
            filter,
            limit,
            offset,
        } => {
            let data = core
                .store()
                .all_deliveries()
                .await
                .map_err(|e| e.to_string())?;
            let rows = supervision::overdue(&data, now);
            let revoked = revoked_units(core).await?;
            match limit {
                None if filter.is_empty() => {
                    let mut v = serde_json::to_value(rows).map_err(|e| e.to_string())?;
                    mark_revoked(&mut v, "recipient", &revoked);
                    v
                }
                _ => {
                    let (page, total) = supervision::overdue_page(
                        rows,
                        filter,
                        *offset,
                        limit.unwrap_or(usize::MAX),
                    );
                    let mut items = serde_json::to_value(page).map_err(|e| e.to_string())?;
                    mark_revoked(&mut items, "recipient", &revoked);
                    serde_json::json!({ "items": items, "total": total, "offset": offset })
                }
            }
        }
        Query::Report { since, until } => {
            let (since, until) = (parse_time(since)?, parse_time(until)?);
            let data = core
                .store()
                .all_deliveries()
                .await
                .map_err(|e| e.to_string())?;
            let mut v = serde_json::to_value(supervision::report(&data, since, until, now))
                .map_err(|e| e.to_string())?;
            mark_revoked(&mut v["units"], "unit", &revoked_units(core).await?);
            v
        }
    };
    Ok(value)
}

/// The units whose key binding the hub would hand out is signed by a
/// certificate the CRL now revokes: documents are no longer sealed to
/// them, and the directory, `nodes` and supervision mark them.
pub(crate) async fn revoked_units(core: &Core) -> Result<BTreeSet<NodeId>, String> {
    let published = core.store().bindings().await.map_err(|e| e.to_string())?;
    let enrolled = core.enrolled().current();
    let trust = core.trust().current();
    let mut ids: BTreeSet<NodeId> = published.iter().map(|(id, _)| id.clone()).collect();
    ids.extend(enrolled.directory.entries.iter().map(|e| e.id.clone()));
    let mut revoked = BTreeSet::new();
    for id in ids {
        let mine = published
            .iter()
            .find(|(p, _)| *p == id)
            .map(|(_, b)| b.clone());
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

/// Mark each object of a JSON array whose `key` names a revoked unit with
/// `"<key>_revoked": true` (`"revoked"` when the key is `unit` or `id`).
fn mark_revoked(v: &mut serde_json::Value, key: &str, revoked: &BTreeSet<NodeId>) {
    let field = match key {
        "unit" | "id" => "revoked".to_owned(),
        k => format!("{k}_revoked"),
    };
    for row in v.as_array_mut().into_iter().flatten() {
        let is = row[key]
            .as_str()
            .is_some_and(|u| revoked.iter().any(|r| r.as_str() == u));
        if is {
            row[field.as_str()] = serde_json::Value::Bool(true);
        }
    }
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
