//! Lines of a child's stderr, bounded: a child that writes a gigabyte without
//! a newline costs the host [`MAX_LINE`] bytes, not a gigabyte, and bytes that
//! are not UTF-8 are shown, not a reason to stop reading.

use std::io::{self, BufRead};

/// The longest line kept; the rest of a longer line is dropped and counted.
pub const MAX_LINE: usize = crate::log_limit::MAX_LINE;

/// Reads the next line (without its newline) into `line`, keeping at most
/// [`MAX_LINE`] bytes of it. Returns `None` at the end of the stream, else
/// how many bytes of the line were dropped.
pub fn next_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<Option<usize>> {
    line.clear();
    let mut dropped = 0usize;
    let mut read_any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(read_any.then_some(dropped));
        }
        read_any = true;
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], Some(at + 1)),
            None => (available, None),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        let kept = chunk.len().min(room);
        line.extend_from_slice(&chunk[..kept]);
        dropped += chunk.len() - kept;
        let consumed = done.unwrap_or(available.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(Some(dropped));
        }
    }
}

/// A line as text for the log: invalid UTF-8 replaced, control characters
/// escaped (a child cannot forge log lines with `\n` or terminal codes), and
/// a note of what was dropped.
pub fn shown(line: &[u8], dropped: usize) -> String {
    let text = String::from_utf8_lossy(line);
    let mut shown: String = text
        .trim_end_matches('\r')
        .chars()
        .flat_map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if dropped > 0 {
        shown.push_str(&format!(" [... {dropped} more bytes of this line dropped]"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_and_the_stream_goes_on() {
        let mut input = Vec::new();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 100));
        input.extend_from_slice(b"\nnext \xff line\r\nlast");
        let mut reader = io::BufReader::with_capacity(64, input.as_slice());
        let mut line = Vec::new();
        assert_eq!(next_line(&mut reader, &mut line).unwrap(), Some(100));
        assert_eq!(line.len(), MAX_LINE);
        assert_eq!(next_line(&mut reader, &mut line).unwrap(), Some(0));
        assert_eq!(shown(&line, 0), "next \u{fffd} line");
        assert_eq!(next_line(&mut reader, &mut line).unwrap(), Some(0));
        assert_eq!(line, b"last");
        assert_eq!(next_line(&mut reader, &mut line).unwrap(), None);
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(shown(b"a\x1b[31mred\x07", 0), "a\\u{1b}[31mred\\u{7}");
        assert_eq!(shown(b"x", 5), "x [... 5 more bytes of this line dropped]");
    }
}
