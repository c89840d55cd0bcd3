pub mod client;
pub mod session;
pub mod state;
