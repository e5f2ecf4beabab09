//! The placeholder syntax of templates (documented in `templates/README.md`):
//! `{{name}}` is replaced by its value; `{{open}}` is a literal `{{`; any other
//! `{{` is copied as is; a well-formed placeholder with an unknown name is an
//! error.

/// A placeholder name the values do not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown placeholder `{{{{{name}}}}}` (known: {known})")]
pub struct UnknownPlaceholder {
    /// The name between the braces.
    pub name: String,
    /// The names that have values, comma-separated.
    pub known: String,
}

/// The placeholder that renders a literal `{{`.
const OPEN: &str = "open";

/// Replaces every `{{name}}` of `text` with its value in `values`.
pub fn render(text: &str, values: &[(&str, &str)]) -> Result<String, UnknownPlaceholder> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match placeholder(after) {
            Some(name) => {
                if name == OPEN {
                    out.push_str("{{");
                } else if let Some((_, value)) = values.iter().find(|(n, _)| *n == name) {
                    out.push_str(value);
                } else {
                    let mut known: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
                    known.push(OPEN);
                    return Err(UnknownPlaceholder {
                        name: name.to_owned(),
                        known: known.join(", "),
                    });
                }
                rest = &after[name.len() + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The name of a placeholder whose opening braces precede `after`: lowercase
/// ASCII letters, digits and `_`, starting with a letter, then `}}`.
fn placeholder(after: &str) -> Option<&str> {
    let end = after
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(after.len());
    let name = &after[..end];
    let well_formed =
        name.starts_with(|c: char| c.is_ascii_lowercase()) && after[end..].starts_with("}}");
    well_formed.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: [(&str, &str); 2] = [("crate_name", "mod-x"), ("type_name", "ModX")];

    #[test]
    fn replaces_placeholders_everywhere() {
        let text = "name = \"{{crate_name}}\"\nstruct {{type_name}};{{type_name}}";
        assert_eq!(
            render(text, &VALUES).unwrap(),
            "name = \"mod-x\"\nstruct ModX;ModX"
        );
    }

    #[test]
    fn leaves_other_braces_alone() {
        for text in [
            "format!(\"{{}}\")",
            "{{ crate_name }}",
            "{{Crate}}",
            "{{1x}}",
            "{{crate_name",
            "a {{",
            "{{{crate_name}}}",
        ] {
            assert_eq!(render(text, &VALUES).unwrap(), text, "{text}");
        }
    }

    #[test]
    fn open_writes_literal_braces() {
        assert_eq!(
            render("{{open}}crate_name}}", &VALUES).unwrap(),
            "{{crate_name}}"
        );
    }

    #[test]
    fn an_unknown_name_is_an_error_listing_the_known_ones() {
        let error = render("x {{crate_nmae}} y", &VALUES).unwrap_err();
        assert_eq!(error.name, "crate_nmae");
        let text = error.to_string();
        assert!(text.contains("`{{crate_nmae}}`"), "{text}");
        assert!(text.contains("crate_name, type_name, open"), "{text}");
    }
}
