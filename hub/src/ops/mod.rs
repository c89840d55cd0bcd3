pub mod backup;
pub mod control;
pub mod observe;
