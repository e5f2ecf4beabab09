//! Empty: a build script makes cargo resolve this crate's build-dependencies,
//! which pin the features of the proc macros' own dependencies.

fn main() {}
