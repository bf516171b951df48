//! How nvctl hands a group's domain-nv config (YAML) to the NV domain through xenstore: at
//! [`XS_CONFIG`], cut into chunks when it is longer than one xenstore message.

use crate::status::StatusError;

/// Where nvctl hands the group's domain-nv config (YAML) to the NV domain, relative to its home.
pub const XS_CONFIG: &str = "data/domain-nv-config";

/// Where nvctl asks the NV domain's domain-nv for something, relative to its home: the value
/// [`DRAIN_REQUEST`] asks it to drain and exit (as SIGTERM does: stop accepting, let open
/// connections finish for up to `drain_timeout_ms`, reset the rest, power off). domain-nv
/// watches it; nvctl writes it only when it takes the group down.
pub const XS_CONTROL: &str = "data/domain-nv-control";
/// The value of [`XS_CONTROL`] that asks domain-nv to drain and exit.
pub const DRAIN_REQUEST: &str = "drain";

/// Header prefix of a chunked xenstore value. A xenstore message carries at most 4096 bytes,
/// so nvctl hands a longer config to domain-nv (at [`XS_CONFIG`]) as pieces of at most
/// [`CHUNK_SIZE`] bytes under `<path>/chunk/<i>`, written first, and then `<path>` itself set to
/// `#nvctl-chunked <count> <total-bytes>` (`#` starts a YAML comment: a header is never a config).
pub const CHUNK_HEADER: &str = "#nvctl-chunked ";
/// Largest piece of a chunked value (leaves room for a 1 KiB path in one write).
pub const CHUNK_SIZE: usize = 3072;

/// Cuts `text` into pieces of at most [`CHUNK_SIZE`] bytes at UTF-8 boundaries.
pub fn split_chunks(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(CHUNK_SIZE);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces
}

/// The header value for `count` pieces holding `total` bytes.
pub fn chunk_header(count: usize, total: usize) -> String {
    format!("{CHUNK_HEADER}{count} {total}")
}

/// `Some((count, total))` if `value` is a chunk header, `None` if it is a plain value, an error
/// if it starts like a header but is malformed.
pub fn parse_chunk_header(value: &str) -> Result<Option<(usize, usize)>, StatusError> {
    let Some(h) = value.strip_prefix(CHUNK_HEADER) else {
        return Ok(None);
    };
    let mut it = h.split_whitespace().map(str::parse::<usize>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(count)), Some(Ok(total)), None) => Ok(Some((count, total))),
        _ => Err(StatusError::Key {
            key: XS_CONFIG.into(),
            why: format!("malformed chunk header {value:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_headers_parse() {
        let text = "é".repeat(5000);
        let pieces = split_chunks(&text);
        assert!(pieces.iter().all(|p| p.len() <= CHUNK_SIZE));
        assert_eq!(pieces.concat(), text);
        let h = chunk_header(pieces.len(), text.len());
        assert_eq!(
            parse_chunk_header(&h).unwrap(),
            Some((pieces.len(), text.len()))
        );
        assert_eq!(parse_chunk_header("policy: majority").unwrap(), None);
        assert!(parse_chunk_header("#nvctl-chunked x 3").is_err());
    }
}
