pub mod client;
pub mod hub;
pub mod session;
