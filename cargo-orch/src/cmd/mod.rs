//! One file per verb; `oci/` is `bundle --oci`.

pub mod bundle;
pub mod check;
pub mod control;
pub mod graph;
pub mod init;
pub mod list;
pub mod logs;
pub mod new;
pub mod oci;
pub mod push;
pub mod record;
pub mod rollout;
pub mod run;
pub mod test;
pub mod top;
