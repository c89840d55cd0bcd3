//! Answers (批复, 上报): whether a document may answer a received one, as
//! a plain function the sender applies before sealing.

use gongwen_common::links::{Asks, Decision, ReplyKind};
use gongwen_common::{DocId, NodeId};

/// What the answer says of itself.
#[derive(Debug, Clone, Copy)]
pub struct AnswerShape<'a> {
    pub decision: Option<Decision>,
    /// Its main recipients.
    pub to: &'a [NodeId],
    /// The earlier answer it says it corrects.
    pub supersedes: Option<DocId>,
}

/// Whether a document shaped `answer` may answer the received document
/// `asked_id` from `asker`, which asks `asks`. The reason in plain words
/// when not.
/// `previous`: our latest answer to it, if any.
pub fn check_answer(
    asked_id: &str,
    asker: &NodeId,
    asks: Option<Asks>,
    previous: Option<DocId>,
    answer: AnswerShape<'_>,
) -> Result<(), String> {
    let Some(asks) = asks else {
        return Err(format!(
            "document {asked_id} asked for no answer: send yours as an ordinary document (without in_reply_to)"
        ));
    };
    match (asks.kind, answer.decision) {
        (ReplyKind::Decision, None) => {
            return Err(format!(
                "document {asked_id} asks for a decision (批复): give decision = approved (同意), not-approved (不同意) or revise (修改后再报)"
            ));
        }
        (ReplyKind::Report, Some(d)) => {
            return Err(format!(
                "document {asked_id} asks for a report (上报) with files, not a decision ({})",
                d.chinese()
            ));
        }
        _ => {}
    }
    match (previous, answer.supersedes) {
        (Some(p), None) => {
            return Err(format!(
                "document {asked_id} was answered already (by {p}); a corrected answer says supersedes = \"{p}\""
            ));
        }
        (None, Some(s)) => {
            return Err(format!(
                "supersedes names {s}, but document {asked_id} has no answer from this unit yet"
            ));
        }
        (Some(p), Some(s)) if p != s => {
            return Err(format!(
                "supersedes names {s}, but the answer to correct is the latest one, {p}"
            ));
        }
        _ => {}
    }
    if !answer.to.contains(asker) {
        return Err(format!(
            "an answer goes to the unit that asked ({asker}); add it as the main recipient"
        ));
    }
    Ok(())
}

/// What `gongwen-agent reply` asks the running agent.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ReplyRequest {
    pub doc: DocId,
    /// The answer's files (absolute paths); none for a bare decision.
    #[serde(default)]
    pub files: Vec<std::path::PathBuf>,
    pub decision: Option<String>,
    pub note: Option<String>,
    pub title: Option<String>,
    pub supersedes: Option<DocId>,
    /// Copies (抄送) of the answer, beside the unit that asked.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Who answers (and signs for it, if not signed for yet).
    pub by: String,
}

/// Queue the answer `req` describes: checked against the question first
/// (the same rules the sender applies again when sealing), a bare decision
/// given a short main text. The answer's id, and whether the question is
/// to be signed for (by `req.by`, when the answer is sealed). Blocking.
pub fn queue(
    me: &crate::unit::identity::Identity,
    store: &crate::unit::store::Store,
    outgoing: &crate::outgoing::queue::Outgoing,
    req: &ReplyRequest,
) -> Result<(DocId, bool), String> {
    use crate::unit::store::ReceivedState;
    if req.by.trim().is_empty() {
        return Err("say who answers: --by NAME".into());
    }
    let doc = req.doc;
    let rec = store
        .received(doc)
        .map_err(|e| e.to_string())?
        .map(|(r, _)| r)
        .ok_or_else(|| format!("there is no document {doc} in this unit's inbox to answer"))?;
    let header = store
        .header(doc)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("document {doc} has no header here"))?;
    let asked =
        gongwen_common::envelope::SealedHeader::parse(&header).map_err(|e| e.to_string())?;
    let asks = asked.meta().links.asks;
    let decision = req
        .decision
        .as_deref()
        .map(|d| {
            Decision::parse(d.trim()).ok_or_else(|| {
                format!("decision {d:?} is not known: approved (同意), not-approved (不同意) or revise (修改后再报)")
            })
        })
        .transpose()?;
    let previous = store.replied(doc).map_err(|e| e.to_string())?;
    let to = [rec.sender.clone()];
    check_answer(
        &doc.to_string(),
        &rec.sender,
        asks,
        previous,
        AnswerShape {
            decision,
            to: &to,
            supersedes: req.supersedes,
        },
    )?;
    if asks.is_some_and(|a| a.kind == ReplyKind::Report) && req.files.is_empty() {
        return Err("a report (上报) carries files: name them after the document id".into());
    }
    // The sender signs the question for when it seals the answer (one
    // place for both ways of answering); a returned or quarantined one
    // cannot be answered.
    let signed_for = match rec.state {
        ReceivedState::Quarantined => {
            return Err(format!(
                "document {doc} was quarantined here (it could not be opened); it cannot be answered"
            ));
        }
        ReceivedState::Rejected => {
            return Err(format!(
                "document {doc} was returned (退回); it cannot be answered"
            ));
        }
        ReceivedState::Delivered => true,
        _ => false,
    };
    let word = match asks.map(|a| a.kind) {
        Some(ReplyKind::Decision) => "批复",
        _ => "报告",
    };
    // A bare decision is a document too: its main text says it.
    let mut files = req.files.clone();
    let mut scratch = None;
    if files.is_empty() {
        let dir = tempfile_dir(&me.folders().state)?;
        let text = format!(
            "{}。{}\n",
            decision.map(Decision::chinese).unwrap_or_default(),
            req.note.as_deref().unwrap_or("")
        );
        let path = dir.join(format!("{word}.txt"));
        if let Err(e) = std::fs::write(&path, text) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("{}: {e}", path.display()));
        }
        files.push(path);
        scratch = Some(dir);
    }
    let send = crate::outgoing::outbox::SendRequest {
        files,
        to: vec![rec.sender.to_string()],
        cc: req.cc.clone(),
        title: req
            .title
            .clone()
            .or_else(|| Some(default_title(&rec.title, word))),
        doc_type: Some(word.to_owned()),
        note: req.note.clone(),
        operator: Some(req.by.clone()),
        in_reply_to: Some(doc),
        decision: decision.map(|d| d.as_str().to_owned()),
        supersedes: req.supersedes,
        ..Default::default()
    };
    // One answer at a time: a second (a form sent twice) would not know
    // the first's id to say it corrects it.
    let queued = outgoing.claim(|folders| {
        match crate::outgoing::outbox::queued_answers(folders, doc).first() {
            Some(sending) => Err(format!(
                "an answer to document {doc} ({sending}) is still being sent; once the hub has taken it, a correction names it (supersedes)"
            )),
            None => crate::outgoing::outbox::claim_copies(folders, &send),
        }
    });
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok((queued?, signed_for))
}

/// 关于《question》的批复, the question's title shortened (…) so that the
/// whole stays within the longest title a document may have.
fn default_title(question: &str, word: &str) -> String {
    let frame = "关于《》的".chars().count() + word.chars().count();
    let room = gongwen_common::envelope::MAX_TITLE_CHARS.saturating_sub(frame);
    let quoted: String = if question.chars().count() > room {
        question
            .chars()
            .take(room.saturating_sub(1))
            .chain(['…'])
            .collect()
    } else {
        question.to_owned()
    };
    format!("关于《{quoted}》的{word}")
}

/// A fresh scratch folder under the agent's state folder.
fn tempfile_dir(state: &std::path::Path) -> Result<std::path::PathBuf, String> {
    let dir = state
        .join("reply-scratch")
        .join(DocId::generate().to_string());
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    #[test]
    fn the_default_title_of_an_answer_to_a_long_question_stays_within_the_limit() {
        use gongwen_common::envelope::MAX_TITLE_CHARS;
        assert_eq!(default_title("请示", "批复"), "关于《请示》的批复");
        let long = "长".repeat(MAX_TITLE_CHARS);
        let title = default_title(&long, "报告");
        assert_eq!(title.chars().count(), MAX_TITLE_CHARS);
        assert!(title.ends_with("…》的报告"), "{title}");
    }

    #[test]
    fn each_refusal_says_why() {
        let prov = id("prov-gov");
        let to = [prov.clone()];
        let decision = Some(Asks {
            kind: ReplyKind::Decision,
            by: None,
        });
        let report = Some(Asks {
            kind: ReplyKind::Report,
            by: None,
        });
        let shape = |decision, to| AnswerShape {
            decision,
            to,
            supersedes: None,
        };
        let first = |asks, s| check_answer("d", &prov, asks, None, s);
        assert!(first(decision, shape(Some(Decision::Approved), &to)).is_ok());
        assert!(first(report, shape(None, &to)).is_ok());
        let e = first(None, shape(None, &to)).unwrap_err();
        assert!(e.contains("asked for no answer"), "{e}");
        let e = first(decision, shape(None, &to)).unwrap_err();
        assert!(e.contains("asks for a decision"), "{e}");
        let e = first(report, shape(Some(Decision::Revise), &to)).unwrap_err();
        assert!(e.contains("asks for a report"), "{e}");
        let other = [id("daqing-gov")];
        let e = first(report, shape(None, &other)).unwrap_err();
        assert!(e.contains("goes to the unit that asked"), "{e}");

        // A second answer must say which it corrects: the latest.
        let (a1, a2) = (DocId::generate(), DocId::generate());
        let e = check_answer("d", &prov, report, Some(a1), shape(None, &to)).unwrap_err();
        assert!(
            e.contains("answered already") && e.contains(&a1.to_string()),
            "{e}"
        );
        let correcting = |s| AnswerShape {
            decision: None,
            to: &to,
            supersedes: Some(s),
        };
        assert!(check_answer("d", &prov, report, Some(a1), correcting(a1)).is_ok());
        let e = check_answer("d", &prov, report, Some(a1), correcting(a2)).unwrap_err();
        assert!(e.contains("the latest one"), "{e}");
        let e = check_answer("d", &prov, report, None, correcting(a2)).unwrap_err();
        assert!(e.contains("no answer from this unit yet"), "{e}");
    }
}
