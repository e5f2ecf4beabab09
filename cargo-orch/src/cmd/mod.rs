//! One file per verb.

pub mod check;
pub mod init;
pub mod list;
pub mod new;
pub mod run;
pub mod test;
