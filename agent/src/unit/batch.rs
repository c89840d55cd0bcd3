//! Work that arrives while earlier work is being made durable goes in one
//! batch with it (group commit), without a task that outlives the work:
//! the first job queued on an idle queue starts a blocking worker, which
//! takes everything queued at each turn and stops when the queue is empty.
//! A lone job is handled at once; no timer adds latency.

use std::sync::{Arc, Mutex};

/// A queue of jobs and whether a worker is taking them.
#[derive(Debug)]
pub struct Batches<J> {
    queue: Mutex<(Vec<J>, bool)>,
}

impl<J> Default for Batches<J> {
    fn default() -> Self {
        Batches {
            queue: Mutex::new((Vec::new(), false)),
        }
    }
}

impl<J: Send + 'static> Batches<J> {
    /// Queue `job`; true when the caller must start a worker.
    pub fn push(&self, job: J) -> bool {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.0.push(job);
        !std::mem::replace(&mut q.1, true)
    }

    /// The jobs queued so far, or `None` (and the worker stops) if none.
    pub fn take(&self) -> Option<Vec<J>> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.0.is_empty() {
            q.1 = false;
            None
        } else {
            Some(std::mem::take(&mut q.0))
        }
    }

    /// Queue `job` and, if no worker is at it, start one on a blocking
    /// thread that runs `work` on each batch. `work` owns what it needs for
    /// as long as the worker runs.
    pub fn submit(self: &Arc<Self>, job: J, work: impl Fn(Vec<J>) + Send + 'static) {
        if !self.push(job) {
            return;
        }
        let batches = self.clone();
        tokio::task::spawn_blocking(move || {
            while let Some(batch) = batches.take() {
                // A panic must not leave the queue marked as worked on
                // with nobody working it: that batch's waiters are told
                // (their reply senders drop) and the worker goes on.
                let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(batch)));
                if done.is_err() {
                    tracing::warn!("a batch failed; its jobs are answered with an error");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_queued_job_starts_a_worker_and_an_empty_queue_stops_it() {
        let q = Batches::default();
        assert!(q.push(1), "nobody is working: start a worker");
        assert!(!q.push(2), "a worker is at it: it takes this one too");
        assert_eq!(q.take(), Some(vec![1, 2]));
        assert!(q.take().is_none(), "empty: the worker stops");
        assert!(q.push(3), "stopped: the next job starts one again");
    }
}
