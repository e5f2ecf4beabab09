//! One file per verb.

pub mod bundle;
pub mod check;
pub mod control;
pub mod init;
pub mod list;
pub mod new;
pub mod run;
pub mod test;
