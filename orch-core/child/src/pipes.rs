//! The protocol's pipes, kept out of the module's reach.

use std::fs::File;

/// The protocol's own copies of fd 0 and fd 1, close-on-exec, so that a
/// process the module starts never holds the protocol pipes (it would keep a
/// crash from being seen, or read the frames); fd 0 then reads /dev/null and
/// fd 1 writes to stderr, so whatever the module prints reaches the log.
pub(crate) fn protocol_pipes() -> std::io::Result<(File, File)> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let keep = |fd: std::os::fd::OwnedFd| -> std::io::Result<File> {
        fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        Ok(File::from(fd))
    };
    let input = keep(nix::unistd::dup(std::io::stdin())?)?;
    let output = keep(nix::unistd::dup(std::io::stdout())?)?;
    nix::unistd::dup2_stdin(File::open("/dev/null")?)?;
    nix::unistd::dup2_stdout(std::io::stderr())?;
    Ok((input, output))
}
