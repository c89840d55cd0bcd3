pub mod clerk;
pub mod queue;
pub mod receipts;
pub mod receive;
