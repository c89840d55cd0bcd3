//! How many documents one unit may have waiting for an offline unit
//! (`[limits] queued_per_sender`): the documents queued in the store, and
//! the uploads under way at this hub that would add to them. Counting the
//! uploads under way makes the limit hold when a sender uploads many at
//! once (an agent sends 32 in parallel): each is counted from the moment it
//! is let in until the store counts it as queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gongwen_common::NodeId;

/// Uploads under way per (sender, recipient).
#[derive(Debug, Default)]
pub struct Quota {
    under_way: Mutex<HashMap<(NodeId, NodeId), u64>>,
}

/// One upload counted against a (sender, recipient) until dropped.
#[derive(Debug)]
pub struct Reservation {
    quota: Arc<Quota>,
    key: (NodeId, NodeId),
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut m = self
            .quota
            .under_way
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

impl Quota {
    /// Let one more upload from `sender` to `recipient` in, if `queued`
    /// (in the store) and those under way stay below `limit`; otherwise how
    /// many there are.
    pub fn reserve(
        self: &Arc<Self>,
        sender: &NodeId,
        recipient: &NodeId,
        queued: u64,
        limit: u64,
    ) -> Result<Reservation, u64> {
        let key = (sender.clone(), recipient.clone());
        let mut m = self.under_way.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key.clone()).or_insert(0);
        let waiting = queued + *n;
        if waiting >= limit {
            if *n == 0 {
                m.remove(&key);
            }
            return Err(waiting);
        }
        *n += 1;
        Ok(Reservation {
            quota: self.clone(),
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn uploads_under_way_count_until_they_are_queued() {
        let q = Arc::new(Quota::default());
        let (prov, daqing) = (
            NodeId::parse("prov-gov").unwrap(),
            NodeId::parse("daqing-gov").unwrap(),
        );
        // 398 queued: two more may start, the third may not.
        let a = q.reserve(&prov, &daqing, 398, 400).unwrap();
        let b = q.reserve(&prov, &daqing, 398, 400).unwrap();
        assert_eq!(q.reserve(&prov, &daqing, 398, 400).unwrap_err(), 400);
        // Another sender has its own count.
        let other = NodeId::parse("prov-finance").unwrap();
        assert!(q.reserve(&other, &daqing, 0, 400).is_ok());
        // One failed (nothing queued): room again.
        drop(a);
        assert!(q.reserve(&prov, &daqing, 398, 400).is_ok());
        drop(b);
        assert!(q.under_way.lock().unwrap().is_empty());
    }
}
