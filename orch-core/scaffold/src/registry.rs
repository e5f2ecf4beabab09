//! Declaring a new module in `config/modules.yaml` by appending text, so the
//! comments, blank lines and layout already in the file stay exactly as they
//! are. The new entry copies the indentation of the existing entries and their
//! blank-line spacing. The caller re-validates the result with
//! [`orch_config::load`] before keeping it.

/// Plain YAML scalars that would not read back as the same string.
const YAML_SPECIAL: [&str; 11] = [
    "null", "~", "true", "false", "yes", "no", "on", "off", "y", "n", ".nan",
];

/// `text` with an entry `- name: <name>` (and `config:` holding the YAML lines
/// of `config`, when not blank) added at the end of its `modules:` list; the
/// reason when that cannot be done as text.
pub(crate) fn append_entry(text: &str, name: &str, config: &str) -> Result<String, String> {
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some(key) = lines.iter().position(|l| l.starts_with("modules:")) else {
        // No list yet: start one at the end.
        let mut out = with_final_newline(text, newline);
        out.push_str("modules:");
        out.push_str(newline);
        out.push_str(&entry_text("  ", name, config, newline));
        return Ok(out);
    };

    let (value, comment) = split_comment(&lines[key]["modules:".len()..]);
    let mut head: Vec<String> = lines[..key].iter().map(|l| (*l).to_owned()).collect();
    match value {
        "" => head.push(lines[key].to_owned()),
        "[]" => head.push(format!("modules:{comment}{newline}")),
        _ => {
            return Err(format!(
                "its `modules:` list is written in flow style (`modules: {value}`), which \
                 cannot be extended as text; write it as a block list (`- name: ...` lines)"
            ));
        }
    }

    let body = &lines[key + 1..];
    let end = body
        .iter()
        .position(|l| ends_block(l))
        .unwrap_or(body.len());
    let items: Vec<usize> = (0..end).filter(|&i| is_item(body[i])).collect();
    let indent = items
        .first()
        .map(|&i| indentation(body[i]).to_owned())
        .unwrap_or_else(|| "  ".to_owned());
    let spaced = items
        .iter()
        .skip(1)
        .any(|&i| i > 0 && body[i - 1].trim().is_empty());

    // Insert at the end of the list: before whatever follows it (and the
    // blank lines and comments that introduce it), or at the end of the file.
    let mut at = end;
    if end < body.len() {
        while at > 0 && (body[at - 1].trim().is_empty() || body[at - 1].starts_with('#')) {
            at -= 1;
        }
    }

    let mut out = head.concat();
    out.push_str(&body[..at].concat());
    out = with_final_newline(&out, newline);
    let previous_blank = body[..at].last().is_none_or(|l| l.trim().is_empty());
    if spaced && !previous_blank {
        out.push_str(newline);
    }
    out.push_str(&entry_text(&indent, name, config, newline));
    out.push_str(&body[at..].concat());
    Ok(out)
}

/// The entry's lines at `indent`.
fn entry_text(indent: &str, name: &str, config: &str, newline: &str) -> String {
    let mut out = format!("{indent}- name: {}{newline}", yaml_scalar(name));
    if !config.trim().is_empty() {
        out.push_str(&format!("{indent}  config:{newline}"));
        for line in config.lines().filter(|l| !l.trim().is_empty()) {
            out.push_str(&format!("{indent}    {}{newline}", line.trim_end()));
        }
    }
    out
}

/// `name`, quoted when a plain scalar would read as something else.
pub(crate) fn yaml_scalar(name: &str) -> String {
    if YAML_SPECIAL.contains(&name.to_ascii_lowercase().as_str()) || name.parse::<f64>().is_ok() {
        format!("\"{name}\"")
    } else {
        name.to_owned()
    }
}

/// A line that ends the `modules:` block: any content at column 0 that is not
/// a comment or a list item (another key, a document marker).
fn ends_block(line: &str) -> bool {
    let starts_at_column_0 = !line.starts_with([' ', '\t']);
    let content = line.trim();
    starts_at_column_0 && !content.is_empty() && !content.starts_with('#') && !is_item(line)
}

/// A line that starts a list item (`- ...` or a lone `-`).
fn is_item(line: &str) -> bool {
    let content = line.trim_start();
    content.starts_with("- ") || content.trim_end() == "-"
}

fn indentation(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// A value and its trailing comment, with the spaces before it (`   # ...`).
fn split_comment(rest: &str) -> (&str, &str) {
    let rest = rest.trim_end_matches(['\n', '\r']);
    match rest
        .find('#')
        .filter(|&i| i == 0 || rest[..i].ends_with([' ', '\t']))
    {
        Some(i) => {
            let value_end = rest[..i].trim_end().len();
            (rest[..value_end].trim(), &rest[value_end..])
        }
        None => (rest.trim(), ""),
    }
}

fn with_final_newline(text: &str, newline: &str) -> String {
    let mut out = text.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str(newline);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = "# The modules.\n#\n# Each entry:\n#   name: ...\n\nmodules:\n  - name: mod-test-module\n    enabled: true\n\n  - name: mod-dummy-producer\n    config:\n      publish_interval: 1s     # a string\n      message: hello\n\n  - name: mod-dummy-consumer\n";

    #[test]
    fn appends_after_the_last_entry_with_the_same_indent_and_spacing() {
        let out = append_entry(SHIPPED, "mod-x", "interval: 1s   # how often\n").unwrap();
        assert_eq!(
            out,
            format!("{SHIPPED}\n  - name: mod-x\n    config:\n      interval: 1s   # how often\n")
        );
        let out = append_entry(SHIPPED, "mod-x", "").unwrap();
        assert_eq!(out, format!("{SHIPPED}\n  - name: mod-x\n"));
    }

    #[test]
    fn follows_compact_lists_and_items_at_column_zero() {
        let compact = "modules:\n    - name: a\n    - name: b\n";
        assert_eq!(
            append_entry(compact, "c", "").unwrap(),
            "modules:\n    - name: a\n    - name: b\n    - name: c\n"
        );
        let column_0 = "modules:\n- name: a\n  enabled: false\n";
        assert_eq!(
            append_entry(column_0, "c", "k: v").unwrap(),
            "modules:\n- name: a\n  enabled: false\n- name: c\n  config:\n    k: v\n"
        );
    }

    #[test]
    fn turns_an_empty_list_into_a_block_list() {
        let text = "# header\n\nmodules: []   # none yet\n";
        assert_eq!(
            append_entry(text, "mod-x", "").unwrap(),
            "# header\n\nmodules:   # none yet\n  - name: mod-x\n"
        );
        assert_eq!(
            append_entry("modules:\n", "mod-x", "").unwrap(),
            "modules:\n  - name: mod-x\n"
        );
        assert_eq!(
            append_entry("# only comments", "mod-x", "").unwrap(),
            "# only comments\nmodules:\n  - name: mod-x\n"
        );
    }

    #[test]
    fn keeps_a_last_line_without_newline_and_trailing_comments() {
        assert_eq!(
            append_entry("modules:\n  - name: a # last", "b", "").unwrap(),
            "modules:\n  - name: a # last\n  - name: b\n"
        );
        assert_eq!(
            append_entry("modules:\n  - name: a\n  # - name: later\n", "b", "").unwrap(),
            "modules:\n  - name: a\n  # - name: later\n  - name: b\n"
        );
    }

    #[test]
    fn inserts_before_what_follows_the_list() {
        let text = "modules:\n  - name: a\n\n# the end\n...\n";
        assert_eq!(
            append_entry(text, "b", "").unwrap(),
            "modules:\n  - name: a\n  - name: b\n\n# the end\n...\n"
        );
    }

    #[test]
    fn keeps_windows_line_endings_and_quotes_special_names() {
        assert_eq!(
            append_entry("modules:\r\n  - name: a\r\n", "null", "").unwrap(),
            "modules:\r\n  - name: a\r\n  - name: \"null\"\r\n"
        );
    }

    #[test]
    fn refuses_a_flow_style_list_with_the_reason() {
        let error = append_entry("modules: [{name: a}]\n", "b", "").unwrap_err();
        assert!(error.contains("flow style"), "{error}");
    }
}
