pub mod console;
pub mod control;
pub mod metrics;
