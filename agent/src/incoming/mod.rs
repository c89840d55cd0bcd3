pub mod clerk;
pub mod receipts;
pub mod receive;
