//! How a process ended, as a type: callers match on it instead of searching a
//! message for "SIGKILL".

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::sys::signal::Signal;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// It exited on its own with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
    /// Neither a code nor a signal was reported.
    Unknown,
}

impl ExitReason {
    /// From the status `wait` returned.
    pub fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Self::Code(code),
            (None, Some(signal)) => Self::Signal(signal),
            (None, None) => Self::Unknown,
        }
    }

    /// Exit code 0.
    pub fn is_success(self) -> bool {
        self == Self::Code(0)
    }

    /// Whether the process was killed with `signal`.
    pub fn is_signal(self, signal: Signal) -> bool {
        self == Self::Signal(signal as i32)
    }

    /// The signal's name (`SIGSEGV`), when a known signal ended it.
    pub fn signal_name(self) -> Option<&'static str> {
        match self {
            Self::Signal(number) => Signal::try_from(number).ok().map(Signal::as_str),
            _ => None,
        }
    }

    /// What a known fatal signal means in words (`segmentation fault`).
    pub fn signal_meaning(self) -> Option<&'static str> {
        let Self::Signal(number) = self else {
            return None;
        };
        match Signal::try_from(number).ok()? {
            Signal::SIGSEGV => Some("segmentation fault"),
            Signal::SIGABRT => Some("abort"),
            Signal::SIGKILL => Some("killed"),
            Signal::SIGBUS => Some("bus error"),
            Signal::SIGILL => Some("illegal instruction"),
            Signal::SIGFPE => Some("arithmetic fault"),
            _ => None,
        }
    }

    /// `killed by signal 6 (SIGABRT)` / `exited with code 101`: the short form
    /// a report sentence continues ("the test binary was ...").
    pub fn with_number(self) -> String {
        match self {
            Self::Code(code) => format!("exited with code {code}"),
            Self::Signal(number) => match self.signal_name() {
                Some(name) => format!("was killed by signal {number} ({name})"),
                None => format!("was killed by signal {number}"),
            },
            Self::Unknown => "ended in an unknown way".to_owned(),
        }
    }
}

/// `killed by SIGSEGV (segmentation fault)`, `exited with code 3`.
impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Code(code) => write!(f, "exited with code {code}"),
            Self::Signal(number) => {
                match self.signal_name() {
                    Some(name) => write!(f, "killed by {name}")?,
                    None => write!(f, "killed by signal {number}")?,
                }
                match self.signal_meaning() {
                    Some(meaning) => write!(f, " ({meaning})"),
                    None => Ok(()),
                }
            }
            Self::Unknown => f.write_str("ended for an unknown reason"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn status_of(script: &str) -> ExitStatus {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .status()
            .expect("sh runs")
    }

    #[test]
    fn codes_and_signals_are_told_apart() {
        let code = ExitReason::from_status(status_of("exit 3"));
        assert_eq!(code, ExitReason::Code(3));
        assert_eq!(code.to_string(), "exited with code 3");
        assert!(!code.is_success());

        let killed = ExitReason::from_status(status_of("kill -SEGV $$"));
        assert!(killed.is_signal(Signal::SIGSEGV));
        assert_eq!(killed.to_string(), "killed by SIGSEGV (segmentation fault)");
        assert_eq!(killed.with_number(), "was killed by signal 11 (SIGSEGV)");

        assert!(ExitReason::from_status(status_of("true")).is_success());
    }

    #[test]
    fn an_unnamed_signal_keeps_its_number() {
        let reason = ExitReason::Signal(250);
        assert_eq!(reason.to_string(), "killed by signal 250");
        assert_eq!(reason.with_number(), "was killed by signal 250");
    }
}
