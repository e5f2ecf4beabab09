//! The terminal `cargo orch top` draws on: keys read one at a time without
//! echo (Ctrl-C still stops it), the alternate screen, the cursor hidden;
//! all of it given back when dropped, however top ends.

use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::time::Duration;

use rustix::termios::{
    LocalModes, OptionalActions, SpecialCodeIndex, Termios, tcgetattr, tcgetwinsize, tcsetattr,
};

/// The terminal in top's mode until dropped.
pub struct Screen {
    original: Termios,
}

impl Screen {
    /// Takes the terminal of stdin and stdout.
    pub fn take() -> std::io::Result<Self> {
        let stdin = std::io::stdin();
        let original = tcgetattr(stdin.as_fd())?;
        let mut raw = original.clone();
        raw.local_modes &= !(LocalModes::ICANON | LocalModes::ECHO);
        // A read returns what is there after at most 0.1 s.
        raw.special_codes[SpecialCodeIndex::VMIN] = 0;
        raw.special_codes[SpecialCodeIndex::VTIME] = 1;
        tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw)?;
        let mut out = std::io::stdout().lock();
        out.write_all(b"\x1b[?1049h\x1b[?25l")?;
        out.flush()?;
        Ok(Self { original })
    }

    /// Columns and rows now.
    pub fn size(&self) -> (usize, usize) {
        tcgetwinsize(std::io::stdout().as_fd())
            .map(|size| (usize::from(size.ws_col), usize::from(size.ws_row)))
            .ok()
            .filter(|&(cols, rows)| cols > 0 && rows > 0)
            .unwrap_or((80, 24))
    }

    /// Draws `lines` from the top left, clearing the rest.
    pub fn draw(&self, lines: &[String]) -> std::io::Result<()> {
        let mut frame = String::from("\x1b[H");
        for line in lines {
            frame.push_str(line);
            frame.push_str("\x1b[K\r\n");
        }
        frame.push_str("\x1b[J");
        let mut out = std::io::stdout().lock();
        out.write_all(frame.as_bytes())?;
        out.flush()
    }

    /// A key pressed within about `wait` (checked every 0.1 s), if any.
    pub fn key(&self, wait: Duration) -> Option<u8> {
        let stdin = std::io::stdin();
        let slices = (wait.as_millis() / 100).max(1);
        for _ in 0..slices {
            let mut byte = [0u8; 1];
            if let Ok(1) = rustix::io::read(stdin.as_fd(), &mut byte) {
                return Some(byte[0]);
            }
        }
        None
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(b"\x1b[?25h\x1b[?1049l");
        let _ = out.flush();
        let _ = tcsetattr(
            std::io::stdin().as_fd(),
            OptionalActions::Now,
            &self.original,
        );
    }
}
