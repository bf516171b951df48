//! The comparison form of an unordered reply: the same bytes with the elements of every
//! aggregate sorted (a map's or attribute's pairs kept together, and the top-level array's too
//! for [`ReplyRule::UnorderedPairs`](crate::protocol::ReplyRule::UnorderedPairs)), so that two
//! replies have the same form exactly when they are equal as nested multisets. The form has the
//! reply's length: sorting only permutes byte ranges.

use super::wire::{crlf_content, parse_header, Aggregate, Header};

/// The comparison form of `reply` (one whole reply, attributes included), or `None` when it does
/// not parse (never the case for a reply the framer has checked).
pub(super) fn canonical(reply: &[u8], pairs_at_top: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(reply.len());
    let mut pos = 0;
    while pos < reply.len() {
        value(reply, &mut pos, &mut out, pairs_at_top)?;
    }
    Some(out)
}

/// Copies the value at `pos` (and the attributes before it) to `out` in comparison form.
fn unit(src: &[u8], pos: &mut usize, out: &mut Vec<u8>) -> Option<()> {
    while value(src, pos, out, false)? {}
    Some(())
}

/// Copies one value at `pos` to `out` in comparison form; `true` when it was an attribute (so
/// the value it describes follows).
fn value(src: &[u8], pos: &mut usize, out: &mut Vec<u8>, pairs: bool) -> Option<bool> {
    let rest = src.get(*pos..)?;
    let line_len = rest.iter().position(|&b| b == b'\n')? + 1;
    let header = parse_header(crlf_content(&rest[..line_len])?).ok()?;
    out.extend_from_slice(&rest[..line_len]);
    *pos += line_len;
    match header {
        Header::Whole => Some(false),
        Header::Blob(len) => {
            let end = pos.checked_add(usize::try_from(len).ok()?.checked_add(2)?)?;
            out.extend_from_slice(src.get(*pos..end)?);
            *pos = end;
            Some(false)
        }
        Header::Aggregate { kind, values } => {
            let pairs = kind.is_map() || (pairs && kind == Aggregate::Array && values % 2 == 0);
            let per_unit = if pairs { 2 } else { 1 };
            let start = out.len();
            let mut ranges = Vec::new();
            for _ in 0..values / per_unit {
                let from = out.len();
                for _ in 0..per_unit {
                    unit(src, pos, out)?;
                }
                ranges.push(from - start..out.len() - start);
            }
            let children = out.split_off(start);
            ranges.sort_unstable_by(|a, b| children[a.clone()].cmp(&children[b.clone()]));
            for range in ranges {
                out.extend_from_slice(&children[range]);
            }
            Some(kind == Aggregate::Attribute)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_sort_and_pairs_stay_together() {
        let set = b"*3\r\n$1\r\nc\r\n$1\r\na\r\n$1\r\nb\r\n";
        let sorted = b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n";
        assert_eq!(canonical(set, false).as_deref(), Some(&sorted[..]));
        let hash = b"*4\r\n$1\r\nb\r\n$1\r\n1\r\n$1\r\na\r\n$1\r\n2\r\n";
        let by_pair = b"*4\r\n$1\r\na\r\n$1\r\n2\r\n$1\r\nb\r\n$1\r\n1\r\n";
        assert_eq!(canonical(hash, true).as_deref(), Some(&by_pair[..]));
        let map = b"%2\r\n+b\r\n:1\r\n+a\r\n:2\r\n";
        assert_eq!(
            canonical(map, false).as_deref(),
            Some(&b"%2\r\n+a\r\n:2\r\n+b\r\n:1\r\n"[..])
        );
        let nested = b"*2\r\n*2\r\n:2\r\n:1\r\n|1\r\n+k\r\n+v\r\n:0\r\n";
        let nested_sorted = b"*2\r\n*2\r\n:1\r\n:2\r\n|1\r\n+k\r\n+v\r\n:0\r\n";
        assert_eq!(
            canonical(nested, false).as_deref(),
            Some(&nested_sorted[..])
        );
        assert_eq!(canonical(b"*2\r\n:1\r\n", false), None);
    }
}
