//! The documentation's Markdown files and their fenced code blocks.

use std::path::{Path, PathBuf};

/// One fenced code block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The file, relative to the repository root.
    pub file: PathBuf,
    /// The line of the opening fence (1-based).
    pub line: usize,
    /// The info string's first word (`yaml`), empty for a bare fence.
    pub lang: String,
    /// The info string's other words (`ignore`).
    pub flags: Vec<String>,
    /// The block's lines, the fence's indentation removed.
    pub text: String,
}

impl Block {
    /// `file:line`, for messages.
    pub fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// The repository's root: the parent of this crate's folder.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cargo-orch lives in the workspace")
        .to_path_buf()
}

/// The Markdown files the tests check, relative to `root`: README.md,
/// ARCHITECTURE.md (the book includes it) and every file under docs/src.
pub fn files(root: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("README.md"), PathBuf::from("ARCHITECTURE.md")];
    let mut pending = vec![PathBuf::from("docs/src")];
    let mut book = Vec::new();
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(root.join(&dir))
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries {
            let name = entry.expect("a folder entry").file_name();
            let path = dir.join(&name);
            if root.join(&path).is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                book.push(path);
            }
        }
    }
    book.sort();
    found.extend(book);
    found
}

/// Every fenced block of `text` (the file `file`): fences of three or more
/// backticks, possibly indented (inside a list item).
pub fn blocks(file: &Path, text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(Block, usize, usize)> = None; // block, indent, fence length
    for (index, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        let ticks = trimmed.chars().take_while(|&c| c == '`').count();
        match open.take() {
            None if ticks >= 3 => {
                let info = trimmed[ticks..].trim();
                let mut words = info.split_whitespace().map(str::to_owned);
                let block = Block {
                    file: file.to_path_buf(),
                    line: index + 1,
                    lang: words.next().unwrap_or_default(),
                    flags: words.collect(),
                    text: String::new(),
                };
                open = Some((block, indent, ticks));
            }
            None => {}
            Some((block, _, fence)) if ticks >= fence && trimmed[ticks..].trim().is_empty() => {
                blocks.push(block);
            }
            Some((mut block, fence_indent, fence)) => {
                let cut = indent.min(fence_indent);
                block.text.push_str(&line[cut..]);
                block.text.push('\n');
                open = Some((block, fence_indent, fence));
            }
        }
    }
    if let Some((block, ..)) = open {
        panic!("{}: a code block is never closed", block.place());
    }
    blocks
}

/// Every block of every checked file.
pub fn all(root: &Path) -> Vec<Block> {
    files(root)
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(root.join(file))
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            blocks(file, &text)
        })
        .collect()
}

/// The command lines of a `sh` or `console` block, each with its line:
/// continuations (`\`) joined, `console` output skipped (commands follow `$ `),
/// comments and blank lines dropped.
pub fn command_lines(block: &Block) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (offset, raw) in block.text.lines().enumerate() {
        let line_no = block.line + 1 + offset;
        let text = match (&pending, block.lang.as_str()) {
            (Some(_), _) => raw.trim().to_owned(),
            (None, "console") => match raw.strip_prefix("$ ") {
                Some(command) => command.trim().to_owned(),
                None => continue,
            },
            (None, _) => raw.trim().to_owned(),
        };
        let (start, mut joined) = pending.take().unwrap_or((line_no, String::new()));
        if let Some(head) = text.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(&text);
        let command = without_comment(&joined);
        if !command.trim().is_empty() {
            lines.push((start, command.trim().to_owned()));
        }
    }
    lines
}

/// `line` without a `#` comment (a `#` at the start or after a space,
/// outside quotes).
fn without_comment(line: &str) -> String {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return line[..i].to_owned(),
            _ => {}
        }
        previous = c;
    }
    line.to_owned()
}

/// The simple commands of a shell line (split at `&&`, `||`, `;` and `|`),
/// each as its words (quotes removed), leading `NAME=value` assignments dropped.
pub fn simple_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    let mut chars = line.chars().peekable();
    let finish = |words: &mut Vec<String>, commands: &mut Vec<Vec<String>>| {
        let taken: Vec<String> = std::mem::take(words)
            .into_iter()
            .skip_while(|w| is_assignment(w))
            .collect();
        if !taken.is_empty() {
            commands.push(taken);
        }
    };
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '&' | '|' | ';') => {
                if chars.peek() == Some(&c) {
                    chars.next();
                }
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                finish(&mut words, &mut commands);
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    finish(&mut words, &mut commands);
    commands
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_indented_blocks_and_their_info_strings() {
        let text = "x\n```yaml ignore\na: 1\n```\n- item\n  ```sh\n  cargo orch run\n  ```\n";
        let found = blocks(Path::new("f.md"), text);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].lang.as_str(), found[0].line), ("yaml", 2));
        assert_eq!(found[0].flags, ["ignore"]);
        assert_eq!(found[1].text, "cargo orch run\n");
    }

    #[test]
    fn splits_shell_lines_into_commands() {
        let commands = simple_commands("ORCH_ENV=prod cargo orch run && cd '../a b' | x # no");
        assert_eq!(commands[0], ["cargo", "orch", "run"]);
        assert_eq!(commands[1], ["cd", "../a b"]);
        let block = Block {
            file: PathBuf::from("f.md"),
            line: 1,
            lang: "console".into(),
            flags: vec![],
            text: "$ cargo orch status \\\n  --json  # all\noutput\n".into(),
        };
        assert_eq!(
            command_lines(&block),
            [(2, "cargo orch status  --json".to_owned())]
        );
    }
}
