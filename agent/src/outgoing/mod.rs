pub mod draft;
pub mod outbox;
pub mod send;
pub mod spool;
pub mod stamp;
pub mod status;
