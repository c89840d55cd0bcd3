//! Whether a document may answer a received one (批复, 上报): a plain
//! function both the clerk's act (before queuing) and the sender (again,
//! before sealing) apply.

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
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
