//! 转发: pass a received document on to other units. The forward is a new
//! document (own id, signed by this unit, encrypted to the new recipients)
//! carrying the original's files unchanged and the first issuer's signed
//! header, which every recipient (and the hub) verifies.

use gongwen_common::DocId;
use gongwen_common::envelope::SealedHeader;

/// What `gongwen-agent forward` asks the running agent.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ForwardRequest {
    pub doc: DocId,
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    pub note: Option<String>,
    /// Who forwards it (经办人).
    pub by: Option<String>,
}

/// A received document is forwarded (转发) once it is signed for (签收):
/// a unit passes on only what it has taken in. Pure.
pub fn may_forward(state: crate::unit::store::ReceivedState, doc: DocId) -> Result<(), String> {
    use crate::unit::store::ReceivedState as S;
    match state {
        S::Acknowledged => Ok(()),
        S::Delivered => Err(format!("请先签收，再转发（公文 {doc}）")),
        S::Quarantined => Err(format!("这份公文（{doc}）未通过验证，已隔离，不能转发")),
        S::Rejected => Err(format!("这份公文（{doc}）已退回，不能转发")),
        S::Recalled => Err(format!("来文单位已撤回这份公文（{doc}），不能转发")),
    }
}

/// Queue the forward `req` describes; its id. Blocking.
pub fn queue(
    me: &crate::unit::identity::Identity,
    store: &crate::unit::store::Store,
    outgoing: &crate::unit::outgoing::Outgoing,
    req: &ForwardRequest,
) -> Result<DocId, String> {
    let doc = req.doc;
    if req.to.is_empty() {
        return Err("say whom to forward it to: --to IDS".into());
    }
    let (rec, _) = store
        .received(doc)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("there is no document {doc} in this unit's inbox to forward"))?;
    may_forward(rec.state, doc)?;
    let header = store
        .header(doc)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("document {doc} has no header here"))?;
    let sealed = SealedHeader::parse(&header).map_err(|e| e.to_string())?;
    let meta = sealed.meta();
    // The files exactly as received (the main text first, as signed).
    let folder = me
        .folders()
        .inbox
        .join(rec.sender.as_str())
        .join(doc.to_string());
    let files: Vec<_> = meta.files.iter().map(|f| folder.join(&f.name)).collect();
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(format!(
            "{} is gone from the inbox; a forward carries the original's files unchanged",
            missing.display()
        ));
    }
    let send = crate::outgoing::outbox::SendRequest {
        files,
        to: req.to.clone(),
        cc: req.cc.clone(),
        title: Some(meta.title.clone()),
        doc_number: (!meta.doc_number.is_empty()).then(|| meta.doc_number.clone()),
        doc_type: (!meta.doc_type.is_empty()).then(|| meta.doc_type.clone()),
        note: req.note.clone(),
        operator: req.by.clone(),
        forward_of: Some(doc),
        ..Default::default()
    };
    outgoing.claim(|folders| crate::outgoing::outbox::claim_copies(folders, &send))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::store::ReceivedState as S;

    #[test]
    fn only_a_document_signed_for_is_forwarded() {
        let doc = DocId::generate();
        assert!(may_forward(S::Acknowledged, doc).is_ok());
        for (state, words) in [
            (S::Delivered, "请先签收"),
            (S::Quarantined, "已隔离"),
            (S::Rejected, "已退回"),
            (S::Recalled, "已撤回"),
        ] {
            let refused = may_forward(state, doc).unwrap_err();
            assert!(refused.contains(words), "{refused}");
        }
    }
}
