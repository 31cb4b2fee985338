//! "Did you mean" for misspelt keys and node types: the closest known word by edit distance,
//! when it is close enough to be a typo rather than a different word.

/// `, did you mean `expr`?` or nothing.
pub fn did_you_mean(word: &str, known: &[&str]) -> String {
    closest(word, known)
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// serde's "unknown field `exprr`, expected `inputs` or `expr`" with a suggestion added.
pub fn unknown_field(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    if matches!(field, "parallelism" | "max_parallelism") {
        return format!(
            "unknown field `{field}`: only keyed nodes (aggregate, window, dedup) run as several instances, since they split their state by key; this node has none to split{expected}"
        );
    }
    match closest(field, &known) {
        Some(k) => format!("unknown field `{field}` (did you mean `{k}`?){expected}"),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_words_are_suggested_far_ones_not() {
        assert_eq!(distance("filtr", "filter"), 1);
        assert_eq!(
            did_you_mean("filtr", &["filter", "map"]),
            " (did you mean `filter`?)"
        );
        assert_eq!(
            did_you_mean("aggregat", &["aggregate", "window"]),
            " (did you mean `aggregate`?)"
        );
        assert_eq!(did_you_mean("zzz", &["filter", "map"]), "");
        assert_eq!(
            unknown_field("unknown field `exprr`, expected `inputs` or `expr`"),
            "unknown field `exprr` (did you mean `expr`?), expected `inputs` or `expr`"
        );
        assert_eq!(
            unknown_field("unknown field `parallelism`, expected `inputs` or `expr`"),
            "unknown field `parallelism`: only keyed nodes (aggregate, window, dedup) run as several instances, since they split their state by key; this node has none to split, expected `inputs` or `expr`"
        );
        assert_eq!(
            unknown_field("missing field `expr`"),
            "missing field `expr`"
        );
    }
}
