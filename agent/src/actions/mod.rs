pub mod clerk;
pub mod collect;
pub mod evidence;
pub mod failed;
pub mod forward;
pub mod render;
pub mod reply;
pub mod seals;
