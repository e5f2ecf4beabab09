//! The caps on what a peer's message may carry in its headers: every string
//! the bridge reads from the broker and keeps (in the window of handled ids,
//! its file, the memory of names) or writes to the log is checked against
//! them first, so what a peer sends cannot grow this host's memory, its disk
//! or its log beyond what these numbers imply.
//!
//! - a message id (`Nats-Msg-Id`): 1 to [`MAX_MESSAGE_ID`] bytes of visible
//!   ASCII (`!` to `~`, no space);
//! - a node id (the envelope's origin) and a module name (its source): 1 to
//!   [`MAX_NAME`] bytes of ASCII letters, digits, `-` and `_` (the characters
//!   orch-config allows in `bridge.nats.node` and in module names);
//! - the envelope's numbers (event id, time, incarnation): 1 to
//!   [`MAX_NUMBER`] decimal digits that fit in a `u64`;
//! - the whole envelope: at most [`MAX_ENVELOPE`] bytes.

/// The longest message id taken, in bytes (this bridge's own ids are at most
/// `MAX_NAME + 38`).
pub const MAX_MESSAGE_ID: usize = 128;

/// The longest node id or module name taken, in bytes.
pub const MAX_NAME: usize = 64;

/// The most digits of a number in the envelope (`u64::MAX` has 20).
pub const MAX_NUMBER: usize = 20;

/// The longest envelope taken, in bytes: two names, three numbers and the
/// four spaces between them.
pub const MAX_ENVELOPE: usize = 2 * MAX_NAME + 3 * MAX_NUMBER + 4;

/// How a string breaks a cap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// Nothing where something must be.
    #[error("{what} is empty")]
    Empty {
        /// What it is.
        what: &'static str,
    },
    /// Longer than its cap.
    #[error("{what} is {len} bytes, more than {cap}")]
    TooLong {
        /// What it is.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The cap.
        cap: usize,
    },
    /// A character it may not hold.
    #[error("{what} holds {found:?}, which it may not ({allowed})")]
    BadCharacter {
        /// What it is.
        what: &'static str,
        /// The first character out of place.
        found: char,
        /// What it may hold.
        allowed: &'static str,
    },
}

/// Checks a string against a cap and a character rule.
fn check(
    what: &'static str,
    text: &str,
    cap: usize,
    allowed: &'static str,
    ok: impl Fn(u8) -> bool,
) -> Result<(), Broken> {
    if text.is_empty() {
        return Err(Broken::Empty { what });
    }
    if text.len() > cap {
        return Err(Broken::TooLong {
            what,
            len: text.len(),
            cap,
        });
    }
    match text.chars().find(|c| !u8::try_from(*c).is_ok_and(&ok)) {
        Some(found) => Err(Broken::BadCharacter {
            what,
            found,
            allowed,
        }),
        None => Ok(()),
    }
}

/// Whether `byte` may be in a node id or a module name.
fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// Checks a message id (`Nats-Msg-Id`).
pub fn message_id(id: &str) -> Result<(), Broken> {
    check("the message id", id, MAX_MESSAGE_ID, "visible ASCII", |b| {
        b.is_ascii_graphic()
    })
}

/// Checks a node id (`what`: which one, for the message).
pub fn name(what: &'static str, name: &str) -> Result<(), Broken> {
    check(
        what,
        name,
        MAX_NAME,
        "letters, digits, `-`, `_`",
        is_name_byte,
    )
}

/// Reads a number of the envelope.
pub fn number(what: &'static str, text: &str) -> Result<u64, Broken> {
    check(what, text, MAX_NUMBER, "digits", |b| b.is_ascii_digit())?;
    text.parse().map_err(|_| Broken::TooLong {
        what,
        len: text.len(),
        cap: MAX_NUMBER,
    })
}

/// How many characters of a peer's string a log line shows at most.
const SHOWN: usize = 48;

/// A peer's string as a log line may show it: at most [`SHOWN`] characters,
/// escaped, with its length when it was cut (a peer cannot make a line long,
/// nor write control characters into the log).
pub fn shown(text: &str) -> String {
    clipped(text, SHOWN)
}

/// `text` cut to `chars` characters, escaped, with its length when it was
/// cut (for a reason that may quote a peer's string).
pub fn clipped(text: &str, chars: usize) -> String {
    let mut out: String = text
        .chars()
        .take(chars)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(chars).is_some() {
        out.push_str(&format!("… ({} bytes)", text.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_visible_ascii_up_to_the_cap() {
        assert!(message_id("node-a-1751234567890123-0f3a9c2d4e5b6a71").is_ok());
        assert!(message_id(&"x".repeat(MAX_MESSAGE_ID)).is_ok());
        assert!(matches!(
            message_id(&"x".repeat(MAX_MESSAGE_ID + 1)),
            Err(Broken::TooLong { len: 129, .. })
        ));
        assert!(matches!(message_id(""), Err(Broken::Empty { .. })));
        for bad in ["a b", "a\tb", "é", "a\u{0}"] {
            assert!(
                matches!(message_id(bad), Err(Broken::BadCharacter { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_are_tokens_up_to_the_cap() {
        assert!(name("the origin", "edge_1-B").is_ok());
        assert!(name("the origin", &"n".repeat(MAX_NAME)).is_ok());
        assert!(name("the origin", &"n".repeat(MAX_NAME + 1)).is_err());
        for bad in ["a.b", "a b", "a*", ">", "ü"] {
            assert!(name("the origin", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numbers_fit_in_u64() {
        assert_eq!(number("t", "0"), Ok(0));
        assert_eq!(number("t", &u64::MAX.to_string()), Ok(u64::MAX));
        assert!(number("t", "18446744073709551616").is_err());
        assert!(number("t", "-1").is_err());
        assert!(number("t", "+1").is_err());
        assert!(number("t", "").is_err());
    }

    #[test]
    fn a_long_string_is_shown_short_and_escaped() {
        let long = "x".repeat(60_000);
        let line = shown(&long);
        assert!(line.len() < 80, "{line}");
        assert!(line.ends_with("(60000 bytes)"), "{line}");
        assert_eq!(shown("a\nb"), "a\\nb");
    }
}
