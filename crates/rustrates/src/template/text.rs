//! Words and terms: PyRates' whole-term `replace`, and suggestions for misspelt names.

/// PyRates' `replace` on equation strings: `term` is replaced where it stands alone, i.e.
/// between the string's ends or operator/space characters (so `r` does not hit `r_thr`).
pub fn replace_term(eq: &str, term: &str, replacement: &str) -> String {
    const SEP: &str = "-+=*/^<>=!.%@[]():, ";
    if term.is_empty() {
        return eq.to_string();
    }
    let mut out = String::with_capacity(eq.len());
    let mut rest = eq;
    let mut prev: Option<char> = None;
    while let Some(i) = rest.find(term) {
        let before = if i == 0 { prev } else { rest[..i].chars().next_back() };
        let after = rest[i + term.len()..].chars().next();
        let ok_before = before.is_none_or(|c| SEP.contains(c));
        let ok_after = after.is_none_or(|c| SEP.contains(c));
        out.push_str(&rest[..i]);
        if ok_before && ok_after {
            out.push_str(replacement);
        } else {
            out.push_str(term);
        }
        prev = term.chars().next_back();
        rest = &rest[i + term.len()..];
    }
    out.push_str(rest);
    out
}

/// Levenshtein distance, for "did you mean" help.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j])).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The closest candidate within a distance that still looks like a typo.
pub fn suggest(word: &str, candidates: &[String]) -> Option<String> {
    let limit = (word.chars().count() / 3).max(2);
    let lw = word.to_lowercase();
    candidates
        .iter()
        .map(|c| {
            let lc = c.to_lowercase();
            // A truncated name (`state` for `state_var`) is as close as a one-letter typo.
            let d = if lw.len() >= 3 && lc.starts_with(&lw) {
                1
            } else {
                edit_distance(&lw, &lc)
            };
            (d, c)
        })
        .filter(|(d, c)| *d <= limit && c.as_str() != word)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}
