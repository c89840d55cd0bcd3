pub(crate) mod peer;
pub mod push;
pub mod queries;
pub mod receipts;
pub mod refusal;
pub mod renewal_push;
pub mod session;
pub mod upload;
