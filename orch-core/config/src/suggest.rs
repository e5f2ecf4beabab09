//! "Did you mean ...?" suggestions for misspelled keys and names.

/// The candidate closest to `word`, if one is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (distance(&word, &candidate.to_ascii_lowercase()), candidate))
        .filter(|(d, candidate)| *d <= max_typos(candidate))
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate)
}

/// `" (did you mean `x`?)"`-style text for [`closest`], or an empty string.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    closest(word, candidates)
        .map(|c| format!("did you mean `{c}`? "))
        .unwrap_or_default()
}

/// How many edits still count as a typo of `candidate`.
fn max_typos(candidate: &str) -> usize {
    (candidate.chars().count() / 3).max(1)
}

/// Optimal string alignment distance (strsim): insertions, deletions,
/// substitutions and transpositions of neighbours each count 1 (`enabeld` is 1
/// from `enabled`).
fn distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposition_is_one_edit() {
        assert_eq!(distance("enabeld", "enabled"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_only_close_candidates() {
        let keys = ["name", "package", "enabled", "config", "depends_on"];
        assert_eq!(closest("enabeld", keys), Some("enabled"));
        assert_eq!(closest("dependson", keys), Some("depends_on"));
        assert_eq!(closest("Config", keys), Some("config"));
        assert_eq!(closest("restart", keys), None);
    }
}
