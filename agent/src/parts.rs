//! The composition root: every owner of the running agent, built once by
//! [`crate::Agent`]. The connection loop and the front doors hold it and
//! hand each piece of work the owners it uses; nothing below them takes
//! the whole.

use std::sync::Arc;

use crate::unit::counters::Counters;
use crate::unit::directory::Known;
use crate::unit::holds::Holds;
use crate::unit::hub_link::Link;
use crate::unit::identity::Identity;
use crate::unit::outgoing::Outgoing;
use crate::unit::store::Store;

#[derive(Debug, Clone)]
pub struct Parts {
    identity: Arc<Identity>,
    store: Store,
    holds: Arc<Holds>,
    outgoing: Arc<Outgoing>,
    link: Arc<Link>,
    known: Arc<Known>,
    counters: Arc<Counters>,
}

impl Parts {
    pub fn new(identity: Identity, store: Store) -> Parts {
        let outgoing = Outgoing::new(identity.folders().clone());
        Parts {
            identity: Arc::new(identity),
            store,
            holds: Arc::default(),
            outgoing: Arc::new(outgoing),
            link: Arc::default(),
            known: Arc::default(),
            counters: Arc::default(),
        }
    }

    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn holds(&self) -> &Arc<Holds> {
        &self.holds
    }

    pub fn outgoing(&self) -> &Arc<Outgoing> {
        &self.outgoing
    }

    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    pub fn known(&self) -> &Arc<Known> {
        &self.known
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The clerk's acts, over the owners they use.
    pub fn clerk(&self) -> crate::actions::clerk::Clerk {
        crate::actions::clerk::Clerk::new(
            self.identity.clone(),
            self.store.clone(),
            self.holds.clone(),
            self.outgoing.clone(),
            self.link.clone(),
            self.known.clone(),
        )
    }

    /// True while something of the agent's other than this copy still
    /// runs (tasks a stopped run aborted, and blocking work they started,
    /// can outlive it by a moment).
    pub fn in_use(&self) -> bool {
        Arc::strong_count(&self.identity) > 1 || self.store.shared()
    }
}
