//! "Did you mean" suggestions by edit distance.

/// The candidate closest to `input`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'c>(
    input: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let input_lower = input.to_lowercase();
    // Allow roughly one typo per three characters, at least one and at most three.
    let limit = (input.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (levenshtein(&input_lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance where insertions, deletions, substitutions and swaps of two adjacent
/// characters each cost 1 (optimal string alignment), so `wbe` is one edit from `web`.
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        for (a, b, d) in [
            ("", "", 0),
            ("kitten", "sitting", 3),
            ("relationship", "relationships", 1),
            ("abc", "", 3),
        ] {
            assert_eq!(levenshtein(a, b), d, "{a} vs {b}");
        }
    }

    #[test]
    fn suggestions() {
        let keys = ["relationships", "mounts", "hooks", "web", "name"];
        for (input, expected) in [
            ("relationship", Some("relationships")),
            ("relashionships", Some("relationships")),
            ("mount", Some("mounts")),
            ("Hooks", Some("hooks")),
            ("wbe", Some("web")),
            ("firewall", None),
            ("x", None),
        ] {
            assert_eq!(did_you_mean(input, keys), expected, "{input}");
        }
    }
}
