//! [`locate`]: the line of a field path in a block-style YAML text, for error messages.

/// One significant line of a YAML text, for [`locate`].
struct YLine<'a> {
    /// 1-based line number.
    no: usize,
    /// Column of the first character (of the `-` for a sequence item).
    start: usize,
    /// True if the line starts a sequence item.
    item: bool,
    /// Column of the key, if the line holds `key:`.
    key_col: usize,
    /// The key, if any.
    key: Option<&'a str>,
}

fn ylines(text: &str) -> Vec<YLine<'_>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let rest = raw.trim_start_matches(' ');
        if rest.is_empty() || rest.starts_with('#') || rest.starts_with("---") {
            continue;
        }
        let start = raw.len() - rest.len();
        let (item, body, key_col) = match rest.strip_prefix('-') {
            Some(b) if b.is_empty() || b.starts_with(' ') => {
                let b2 = b.trim_start_matches(' ');
                (true, b2, start + 1 + (b.len() - b2.len()))
            }
            _ => (false, rest, start),
        };
        let key = body.split_once(':').and_then(|(k, v)| {
            let k = k.trim().trim_matches(|c| c == '"' || c == '\'');
            let plain = !k.is_empty() && !k.contains(' ') && !k.starts_with(['{', '[']);
            (plain && (v.is_empty() || v.starts_with(' '))).then_some(k)
        });
        out.push(YLine {
            no: i + 1,
            start,
            item,
            key_col,
            key,
        });
    }
    out
}

/// The 1-based line of a field path (`replicas[2].memory`) in a block-style YAML text; if the
/// field itself is absent, the line of its nearest present parent; None if not even the first
/// segment is found.
pub fn locate(text: &str, path: &str) -> Option<usize> {
    let lines = ylines(text);
    let (mut lo, mut hi) = (0, lines.len());
    let (mut key_floor, mut item_floor) = (0usize, 0usize);
    let mut found = None;
    for seg in path.split('.') {
        let (key, indices) = match seg.find('[') {
            Some(p) => (&seg[..p], &seg[p..]),
            None => (seg, ""),
        };
        // the key
        if !key.is_empty() {
            let Some(level) = lines[lo..hi]
                .iter()
                .filter(|l| l.key.is_some() && l.key_col >= key_floor)
                .map(|l| l.key_col)
                .min()
            else {
                return found;
            };
            let Some(i) =
                (lo..hi).find(|&i| lines[i].key_col == level && lines[i].key == Some(key))
            else {
                return found;
            };
            found = Some(lines[i].no);
            let kc = lines[i].key_col;
            let end = (i + 1..hi)
                .find(|&j| lines[j].start < kc || (lines[j].start == kc && !lines[j].item))
                .unwrap_or(hi);
            (lo, hi) = (i + 1, end);
            (key_floor, item_floor) = (kc + 1, kc);
        }
        // its indices
        for idx in indices.split('[').filter(|s| !s.is_empty()) {
            let Ok(n) = idx.trim_end_matches(']').parse::<usize>() else {
                return found;
            };
            let Some(level) = lines[lo..hi]
                .iter()
                .filter(|l| l.item && l.start >= item_floor)
                .map(|l| l.start)
                .min()
            else {
                return found;
            };
            let items: Vec<usize> = (lo..hi)
                .filter(|&i| lines[i].item && lines[i].start == level)
                .collect();
            let Some(&i) = items.get(n) else { return found };
            found = Some(lines[i].no);
            let end = (i + 1..hi).find(|&j| lines[j].start <= level).unwrap_or(hi);
            (lo, hi) = (i, end);
            (key_floor, item_floor) = (level + 1, level + 1);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_nested_fields_and_falls_back_to_parents() {
        let text = "group: web\n# comment\nnv-domain:\n  memory: 256\n  external:\n    pci:\n      - 0000:03:00.0\nreplicas:\n- name: r0\n  memory: 1\n-   name: r1\n    memory: 2\n";
        assert_eq!(locate(text, "group"), Some(1));
        assert_eq!(locate(text, "nv-domain.memory"), Some(4));
        assert_eq!(locate(text, "nv-domain.external.pci[0]"), Some(7));
        assert_eq!(locate(text, "replicas[0].name"), Some(9));
        assert_eq!(locate(text, "replicas[1].memory"), Some(12));
        assert_eq!(locate(text, "replicas[1].vcpus"), Some(11));
        assert_eq!(locate(text, "replicas[5].vcpus"), Some(8));
        assert_eq!(locate(text, "service.ports"), None);
    }
}
