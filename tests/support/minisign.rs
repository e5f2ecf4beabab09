//! Debian's `minisign` command for the tests (the reference implementation
//! checks our signatures and makes one we check), provisioned as every
//! Debian tool of the tests is ([`crate::debian`]): `ORCH_MINISIGN` names
//! another binary.

/// How to run minisign.
pub type Minisign = crate::debian::Tool;

/// minisign, provisioned on first use (once per machine, under a lock); an
/// error says why there is none (the tests then skip, saying so).
pub fn minisign() -> anyhow::Result<Minisign> {
    crate::debian::tool("minisign", &["-v"])
}
