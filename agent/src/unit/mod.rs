pub mod batch;
pub mod context;
pub mod credentials;
pub mod directory;
pub mod folders;
pub mod keygen;
pub mod store;
pub mod trust;
