pub mod directory_watch;
pub mod revocation;
pub mod scheduler;
