//! Each recipient's copy of a tree-form header, cut from one shared
//! [`Recipients`] per document. The hub's store holds the full form (at
//! 10,000 recipients a megabyte and more): read and parsed once per
//! delivery, that would make the fan-out O(N²) again.
//!
//! The last documents delivered are remembered: a list-form one as such
//! (its stored header goes as it is), a tree-form one with its recipients.
//! When thousands of deliveries of a new document start together, the
//! first reads and parses it and the others wait for that, while the
//! deliveries of other documents go on.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use gongwen_common::envelope::tree::{Recipients, is_full};
use gongwen_common::{DocId, NodeId};
use tokio::sync::OnceCell;

/// Documents remembered.
const KEPT: usize = 64;

#[derive(Debug)]
enum Kind {
    /// A list-form header (or one that no longer parses): delivered as
    /// stored.
    AsStored,
    Tree(Arc<Recipients>),
}

#[derive(Debug, Default)]
pub struct Copies {
    /// Most recently added last.
    kept: Mutex<VecDeque<(DocId, Arc<OnceCell<Kind>>)>>,
}

impl Copies {
    fn cell(&self, doc: DocId) -> Arc<OnceCell<Kind>> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, cell)) = kept.iter().find(|(d, _)| *d == doc) {
            return cell.clone();
        }
        if kept.len() >= KEPT {
            kept.pop_front();
        }
        let cell = Arc::new(OnceCell::new());
        kept.push_back((doc, cell.clone()));
        cell
    }

    /// The header to deliver to `unit`: its copy of a tree-form document,
    /// or the stored header as it is (`None`: not stored, or `unit` is not
    /// among a tree's recipients). `stored` reads the stored header.
    pub async fn header_for<F, Fut, E>(
        &self,
        doc: DocId,
        unit: &NodeId,
        stored: F,
    ) -> Result<Option<Vec<u8>>, E>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Vec<u8>>, E>>,
    {
        let cell = self.cell(doc);
        let mut read_now = None;
        let kind = cell
            .get_or_try_init(|| async {
                let header = stored().await?;
                let kind = match header.as_deref() {
                    Some(h) if is_full(h) => match Recipients::from_full(h) {
                        Ok((r, _)) => Kind::Tree(Arc::new(r)),
                        // Checked when accepted; if it no longer parses the
                        // recipient is given it and says what is wrong.
                        Err(_) => Kind::AsStored,
                    },
                    _ => Kind::AsStored,
                };
                read_now = header;
                Ok::<_, E>(kind)
            })
            .await?;
        match kind {
            Kind::Tree(recipients) => Ok(recipients.copy_for(unit)),
            Kind::AsStored => match read_now {
                Some(h) => Ok(Some(h)),
                None => stored().await,
            },
        }
    }
}
