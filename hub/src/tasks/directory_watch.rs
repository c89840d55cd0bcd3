//! The CA's directory of enrolled units, reloaded whenever its file
//! changes; one that does not verify, or is older than the one in force, is
//! logged and the previous one kept.

use std::sync::Arc;
use std::time::Duration;

use gongwen_common::directory::UnitDirectory;
use tracing::{error, info};

use crate::state::core::Core;
use crate::state::enrolled;
use crate::state::polled::PolledFile;

/// Reload the directory whenever its file changes.
pub(crate) async fn watch(
    core: Arc<Core>,
    path: std::path::PathBuf,
    ca: Vec<u8>,
    interval: Duration,
) {
    let mut file = PolledFile::new(&path, "the unit directory").await;
    loop {
        tokio::time::sleep(interval).await;
        let Some(bytes) = file.changed().await else {
            continue;
        };
        let current = core.enrolled().current().directory.issued_ms;
        match UnitDirectory::verify(&bytes, &ca)
            .map_err(|e| e.to_string())
            .and_then(|dir| {
                enrolled::may_replace(current, dir.issued_ms)
                    .map(|()| dir)
                    .map_err(|e| format!("security: {e}"))
            }) {
            Ok(dir) => {
                info!(
                    units = dir.entries.len(),
                    "unit directory {} reloaded",
                    path.display()
                );
                if let Err(e) = enrolled::set_issued_mark(&core.config().data_dir, dir.issued_ms) {
                    error!("cannot remember the directory's issue time: {e}");
                }
                core.enrolled()
                    .replace(enrolled::Enrollment::new(dir, &core.config().groups));
                core.address_books().changed();
                // The peer domains list our units too.
                if let Some(f) = core.federation() {
                    f.offers_changed();
                }
            }
            Err(e) => error!(
                "the unit directory {} cannot be used ({e}); keeping the previous one",
                path.display()
            ),
        }
    }
}
