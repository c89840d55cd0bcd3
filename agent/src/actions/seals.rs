//! 验章 and the OFD check, for every front door: a received OFD on
//! arrival, the document page, and `gongwen-agent seal verify`.
//!
//! The reading itself is `gongwen-ofd`'s; here is what the agent adds: the
//! deployment's seal trust loaded from `[seals]`, and the finding as it is
//! kept in `metadata.json` and shown.

use std::path::Path;

use gongwen_common::config::SealsConfig;
use gongwen_ofd::{SealTrust, SealVerdict};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The trust `[seals]` names; an unreadable file is an error naming it
/// (a deployment that configured roots must not silently verify nothing).
pub fn trust_from(config: &SealsConfig) -> Result<SealTrust, String> {
    let mut trust = SealTrust::none();
    for root in &config.roots {
        let bytes = std::fs::read(root)
            .map_err(|e| format!("[seals] roots: cannot read {}: {e}", root.display()))?;
        trust
            .add_roots(&bytes)
            .map_err(|e| format!("[seals] roots: {}: {e}", root.display()))?;
    }
    for crl in &config.crls {
        let bytes = std::fs::read(crl)
            .map_err(|e| format!("[seals] crls: cannot read {}: {e}", crl.display()))?;
        trust
            .add_crls(&bytes)
            .map_err(|e| format!("[seals] crls: {}: {e}", crl.display()))?;
    }
    Ok(trust)
}

/// What the agent found in one OFD file: kept in `metadata.json` (under
/// `"ofd"`, one entry per OFD file of the document) and shown on the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfdFinding {
    /// The file's name in the document.
    pub file: String,
    /// Why the file cannot be read as an OFD (正文无法解析), if it cannot.
    #[serde(default)]
    pub problems: Vec<String>,
    /// Pages of the first document.
    #[serde(default)]
    pub pages: usize,
    /// Each seal's verdict, in the file's order.
    #[serde(default)]
    pub seals: Vec<SealVerdict>,
    /// The pages' text (for search; not printed).
    #[serde(skip)]
    pub text: String,
}

impl OfdFinding {
    /// Whether there are seals and every one is valid (the CLI's exit 0).
    pub fn all_seals_valid(&self) -> bool {
        !self.seals.is_empty()
            && self
                .seals
                .iter()
                .all(|s| s.result == gongwen_ofd::SealResult::Valid)
    }
}

/// Whether a file is an OFD (by its name).
pub fn is_ofd(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("ofd"))
}

/// Examine the OFD at `path`, named `name` in its document; with the
/// inputs each readable seal gives the evidence bundle.
pub fn examine(
    path: &Path,
    name: &str,
    trust: &SealTrust,
    now: OffsetDateTime,
) -> (OfdFinding, Vec<Option<gongwen_ofd::SealInputs>>) {
    match gongwen_ofd::examine(path, trust, now) {
        Ok(found) => {
            let inputs = found.seals.iter().map(|s| s.inputs.clone()).collect();
            (
                OfdFinding {
                    file: name.to_owned(),
                    problems: found.structure.problems,
                    pages: found.structure.pages.len(),
                    seals: found.seals.into_iter().map(|s| s.verdict).collect(),
                    text: found.structure.text,
                },
                inputs,
            )
        }
        Err(e) => (
            OfdFinding {
                file: name.to_owned(),
                problems: vec![e],
                pages: 0,
                seals: Vec::new(),
                text: String::new(),
            },
            Vec::new(),
        ),
    }
}

/// One line per seal for a person: 印章有效：… / 印章无效：… / 无法验证：….
pub fn describe(v: &SealVerdict) -> String {
    let who = match (&v.seal_name, &v.signer) {
        (Some(seal), Some(signer)) => format!("{seal}（签章人 {signer}）"),
        (Some(seal), None) => seal.clone(),
        _ => String::new(),
    };
    match (v.result, who.is_empty()) {
        (gongwen_ofd::SealResult::Valid, _) => format!("印章有效：{who}"),
        (r, true) => format!("{}：{}", r.chinese(), v.reason),
        (r, false) => format!("{}：{who}，{}", r.chinese(), v.reason),
    }
}
