//! One file per verb.

pub mod run;
