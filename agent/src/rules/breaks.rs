//! When to stop retrying a document whose sending keeps breaking off on a
//! live connection. A broken stream is usually a passing thing (the hub
//! restarting a task, a lost packet past QUIC's patience), so it is tried
//! again; but a document the hub cannot take in any number of tries (a
//! lookup's answer too large for an older hub, say) was once retried every
//! 5 s for ever, never reaching failed/ where a clerk sees it.

use std::collections::HashMap;
use std::hash::Hash;

/// How many breaks in a row a document may have before it is given up on.
pub const BREAKS_BEFORE_GIVING_UP: u32 = 5;

/// Breaks in a row, per document.
#[derive(Debug)]
pub struct Breaks<K> {
    in_a_row: HashMap<K, u32>,
}

impl<K> Default for Breaks<K> {
    fn default() -> Self {
        Breaks {
            in_a_row: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq> Breaks<K> {
    /// Count one more break for `doc`; whether to give up on it now.
    pub fn broke_off(&mut self, doc: K) -> bool {
        let n = self.in_a_row.entry(doc).or_insert(0);
        *n += 1;
        *n >= BREAKS_BEFORE_GIVING_UP
    }

    /// `doc` went through, was refused in words, or left: start over.
    pub fn forget(&mut self, doc: &K) {
        self.in_a_row.remove(doc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_given_up_on_after_breaks_in_a_row_only() {
        let mut b = Breaks::default();
        for _ in 1..BREAKS_BEFORE_GIVING_UP {
            assert!(!b.broke_off("a"));
        }
        // Another document's breaks are its own.
        assert!(!b.broke_off("b"));
        assert!(b.broke_off("a"));
        // A try that went through starts the count over.
        for _ in 2..BREAKS_BEFORE_GIVING_UP {
            assert!(!b.broke_off("b"));
        }
        b.forget(&"b");
        for _ in 1..BREAKS_BEFORE_GIVING_UP {
            assert!(!b.broke_off("b"));
        }
        assert!(b.broke_off("b"));
    }
}
