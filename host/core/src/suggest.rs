//! "Did you mean …?": the known name closest to a misspelt one, for error messages.

/// The name in `known` closest to `wanted` (ignoring case), if one is within two edits: a
/// typo, not a different word.
pub fn closest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = wanted.to_ascii_lowercase();
    known
        .into_iter()
        .map(|name| (edit_distance(&wanted, &name.to_ascii_lowercase()), name))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance, one row at a time.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_its_word_and_another_word_finds_none() {
        let known = ["Sequential", "SingleInstance", "Asynchronous"];
        for (wanted, expected) in [
            ("sequentail", Some("Sequential")),
            ("Asynchronus", Some("Asynchronous")),
            ("SINGLEINSTANCE", Some("SingleInstance")),
            ("Parallel", None),
            ("", None),
        ] {
            assert_eq!(closest(wanted, known), expected, "{wanted:?}");
        }
    }
}
