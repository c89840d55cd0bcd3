pub mod clerk;
pub mod plan;
pub mod receipts;
pub mod receive;
