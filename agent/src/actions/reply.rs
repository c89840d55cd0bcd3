//! Answers (批复, 上报) to a received document: checked against the
//! question by [`crate::rules::answering`], then queued to send.

use gongwen_common::links::{Decision, ReplyKind};

use crate::rules::answering::{AnswerShape, check_answer};
use gongwen_common::DocId;

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
    outgoing: &crate::unit::outgoing::Outgoing,
    req: &ReplyRequest,
) -> Result<(DocId, bool), String> {
    let doc = req.doc;
    let Question {
        rec,
        asks,
        decision,
        signed_for,
    } = question(store, req)?;
    let word = match asks.map(|a| a.kind) {
        Some(ReplyKind::Decision) => "批复",
        _ => "报告",
    };
    // A bare decision is a document too: its main text says it.
    let (files, scratch) = if req.files.is_empty() {
        let note = req.note.as_deref().unwrap_or("");
        let (path, dir) = decision_text(me, word, decision, note)?;
        (vec![path], Some(dir))
    } else {
        (req.files.clone(), None)
    };
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

/// The question an answer is to: its record, what it asks, the decision
/// given, and whether answering signs for it too; or why it cannot be
/// answered so.
struct Question {
    rec: crate::unit::store::ReceivedRecord,
    asks: Option<gongwen_common::links::Asks>,
    decision: Option<Decision>,
    signed_for: bool,
}

fn question(store: &crate::unit::store::Store, req: &ReplyRequest) -> Result<Question, String> {
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
    let decision = req.decision.as_deref().map(decision_of).transpose()?;
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
    Ok(Question {
        rec,
        asks,
        decision,
        signed_for,
    })
}

fn decision_of(word: &str) -> Result<Decision, String> {
    Decision::parse(word.trim()).ok_or_else(|| {
        format!("decision {word:?} is not known: approved (同意), not-approved (不同意) or revise (修改后再报)")
    })
}

/// The main text of a bare decision (同意。…), written into a scratch
/// folder under `state/`: the file, and the folder to remove once it is
/// claimed.
fn decision_text(
    me: &crate::unit::identity::Identity,
    word: &str,
    decision: Option<Decision>,
    note: &str,
) -> Result<(std::path::PathBuf, std::path::PathBuf), String> {
    let dir = tempfile_dir(&me.folders().state)?;
    let text = format!(
        "{}。{note}\n",
        decision.map(Decision::chinese).unwrap_or_default(),
    );
    let path = dir.join(format!("{word}.txt"));
    if let Err(e) = std::fs::write(&path, text) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!("{}: {e}", path.display()));
    }
    Ok((path, dir))
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

    #[test]
    fn the_default_title_of_an_answer_to_a_long_question_stays_within_the_limit() {
        use gongwen_common::envelope::MAX_TITLE_CHARS;
        assert_eq!(default_title("请示", "批复"), "关于《请示》的批复");
        let long = "长".repeat(MAX_TITLE_CHARS);
        let title = default_title(&long, "报告");
        assert_eq!(title.chars().count(), MAX_TITLE_CHARS);
        assert!(title.ends_with("…》的报告"), "{title}");
    }
}
