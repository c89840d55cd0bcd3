pub mod addressing;
pub mod backoff;
pub mod link_error;
pub mod metadata;
