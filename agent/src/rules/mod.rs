pub mod addressing;
pub mod answering;
pub mod backoff;
pub mod breaks;
pub mod copy_state;
pub mod link_error;
pub mod metadata;
