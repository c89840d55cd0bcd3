pub mod clerk;
pub mod receive;
