//! Who a document goes to, once the hub has said who its names stand for
//! and given their keys: every unit that can receive it, and, named one by
//! one with the reason, those that cannot. Pure.
//!
//! A group (or a list of units) with one member whose certificate was
//! revoked, has expired, or who has no encryption key is sent to everyone
//! else: one bad member must not stop a notice to the whole group. Only
//! when no main recipient (主送) is left is nothing sent.

use gongwen_common::NodeId;
use gongwen_common::pki::CertProblem;
use serde::{Deserialize, Serialize};

/// A unit a document was not sent to, and why, in plain words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    pub unit: NodeId,
    pub reason: String,
}

/// What the hub's answer says of one recipient's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerdict {
    /// Its key, checked: it can receive.
    Usable(Vec<u8>),
    /// Its key cannot be used, for good (revoked, expired, …).
    Refused(CertProblem),
    /// Its key cannot be judged now (the revocation list is stale): wait.
    Unjudged(String),
}

/// A document's recipients, settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressed {
    pub to: Vec<NodeId>,
    pub cc: Vec<NodeId>,
    /// Each recipient's key, for sealing.
    pub keys: Vec<(NodeId, Vec<u8>)>,
    pub left_out: Vec<LeftOut>,
}

/// Why nothing can be sent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAddressed {
    /// No main recipient can receive: nothing is sent, for good.
    NoOneToReceive(String),
    /// A key cannot be judged now: try again later.
    Later(String),
}

/// The reason a unit is left out, in Chinese and English.
pub fn reason(problem: &CertProblem) -> String {
    match problem {
        CertProblem::Revoked => "证书已被吊销 (its certificate has been revoked)".into(),
        CertProblem::Expired => "证书已过期 (its certificate has expired)".into(),
        CertProblem::NotYetValid => "证书尚未生效 (its certificate is not valid yet)".into(),
        CertProblem::NotFromCa => {
            "证书不是本系统签发的 (its certificate was not issued by this deployment's CA)".into()
        }
        other => format!("加密公钥不可信 (its encryption key cannot be trusted: {other})"),
    }
}

/// The reason for a unit the hub has no key for.
pub const NO_KEY: &str = "交换中心没有它的加密公钥：它从未连接过，登记时也没有公钥 (the hub has no encryption key for it: it has never connected and was not enrolled with one)";

/// Settle `to` and `cc` (this unit itself already taken out) given each
/// recipient's key verdict (a recipient without one has no key).
pub fn settle(
    to: &[NodeId],
    cc: &[NodeId],
    verdicts: &[(NodeId, KeyVerdict)],
) -> Result<Addressed, NotAddressed> {
    let mut out = Addressed {
        to: Vec::new(),
        cc: Vec::new(),
        keys: Vec::new(),
        left_out: Vec::new(),
    };
    // Indexed: a notice to a group of thousands.
    let verdict_of: std::collections::HashMap<&NodeId, &KeyVerdict> =
        verdicts.iter().rev().map(|(n, v)| (n, v)).collect();
    let mut keyed = std::collections::HashSet::new();
    for (list, into_to) in [(to, true), (cc, false)] {
        for unit in list {
            match verdict_of.get(unit).copied() {
                Some(KeyVerdict::Usable(key)) => {
                    if keyed.insert(unit) {
                        out.keys.push((unit.clone(), key.clone()));
                    }
                    if into_to {
                        out.to.push(unit.clone());
                    } else {
                        out.cc.push(unit.clone());
                    }
                }
                Some(KeyVerdict::Unjudged(why)) => {
                    return Err(NotAddressed::Later(format!(
                        "the key of {unit} cannot be checked now: {why}"
                    )));
                }
                Some(KeyVerdict::Refused(problem)) => out.left_out.push(LeftOut {
                    unit: unit.clone(),
                    reason: reason(problem),
                }),
                None => out.left_out.push(LeftOut {
                    unit: unit.clone(),
                    reason: NO_KEY.into(),
                }),
            }
        }
    }
    if out.to.is_empty() {
        let who: Vec<String> = out
            .left_out
            .iter()
            .map(|l| format!("{}：{}", l.unit, l.reason))
            .collect();
        return Err(NotAddressed::NoOneToReceive(format!(
            "没有一个主送单位能接收，没有发出 (no main recipient can receive it; nothing was sent): {}",
            who.join("；")
        )));
    }
    Ok(out)
}

/// What the sender is told of units left out: one line each.
pub fn describe(left_out: &[LeftOut]) -> String {
    left_out
        .iter()
        .map(|l| format!("未发给 {}：{}", l.unit, l.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    #[test]
    fn a_group_with_a_revoked_and_a_keyless_member_goes_to_the_others_naming_those_left_out() {
        let (harbin, daqing, qiqihar, finance) = (
            id("harbin-gov"),
            id("daqing-gov"),
            id("qiqihar-gov"),
            id("prov-finance"),
        );
        let verdicts = vec![
            (harbin.clone(), KeyVerdict::Usable(vec![1])),
            (daqing.clone(), KeyVerdict::Refused(CertProblem::Revoked)),
            (finance.clone(), KeyVerdict::Usable(vec![4])),
        ];
        let a = settle(
            &[harbin.clone(), daqing.clone(), qiqihar.clone()],
            std::slice::from_ref(&finance),
            &verdicts,
        )
        .unwrap();
        assert_eq!(a.to, vec![harbin.clone()]);
        assert_eq!(a.cc, vec![finance.clone()]);
        assert_eq!(a.keys.len(), 2);
        assert_eq!(a.left_out.len(), 2);
        assert_eq!(a.left_out[0].unit, daqing);
        assert!(a.left_out[0].reason.contains("吊销") && a.left_out[0].reason.contains("revoked"));
        assert_eq!(a.left_out[1].unit, qiqihar);
        assert!(a.left_out[1].reason.contains("no encryption key"));
        assert!(describe(&a.left_out).contains("未发给 daqing-gov"));
    }

    #[test]
    fn with_no_main_recipient_left_nothing_is_sent_and_each_is_named() {
        let daqing = id("daqing-gov");
        let e = settle(
            std::slice::from_ref(&daqing),
            &[id("harbin-gov")],
            &[
                (daqing.clone(), KeyVerdict::Refused(CertProblem::Expired)),
                (id("harbin-gov"), KeyVerdict::Usable(vec![1])),
            ],
        )
        .unwrap_err();
        let NotAddressed::NoOneToReceive(text) = e else {
            panic!("{e:?}")
        };
        assert!(
            text.contains("daqing-gov") && text.contains("expired"),
            "{text}"
        );
    }

    #[test]
    fn a_key_that_cannot_be_judged_now_makes_the_whole_document_wait() {
        let harbin = id("harbin-gov");
        let e = settle(
            std::slice::from_ref(&harbin),
            &[],
            &[(harbin.clone(), KeyVerdict::Unjudged("stale".into()))],
        )
        .unwrap_err();
        assert!(matches!(e, NotAddressed::Later(_)));
    }
}
