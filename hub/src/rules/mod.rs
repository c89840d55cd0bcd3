pub mod admission;
pub mod escalation;
pub mod expiry;
pub mod lifecycle;
pub mod notices;
pub mod records;
pub mod supervision;
