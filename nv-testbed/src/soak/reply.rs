//! What a soak client sends and the reply it must get ([`Exchange`], [`Reply`]), and the
//! byte-for-byte check of a reply read so far ([`check`]).

/// One request a connection may send and the reply it must get.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The request bytes.
    pub request: Vec<u8>,
    /// What the reply must be.
    pub reply: Reply,
}

/// The reply an [`Exchange`] must get.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Exactly these bytes (a redis reply).
    Exact(Vec<u8>),
    /// An HTTP `200` response whose body is exactly these bytes (the head is checked for the
    /// status and `Content-Length` only: the replicas' heads are voted on, not known here).
    HttpBody(Vec<u8>),
}

/// How a reply read so far compares with what it must be.
pub(super) enum Check {
    /// Not all of it yet.
    Partial,
    /// Complete and right.
    Good,
    /// Wrong (more, other or missing bytes).
    Wrong,
}

/// Compares `got` with `reply`.
pub(super) fn check(got: &[u8], reply: &Reply) -> Check {
    match reply {
        Reply::Exact(want) => {
            let n = got.len().min(want.len());
            if got[..n] != want[..n] || got.len() > want.len() {
                Check::Wrong
            } else if got.len() < want.len() {
                Check::Partial
            } else {
                Check::Good
            }
        }
        Reply::HttpBody(body) => {
            let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Check::Partial;
            };
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if !head.starts_with("http/1.1 200") || length != Some(body.len()) {
                return Check::Wrong;
            }
            check(&got[end + 4..], &Reply::Exact(body.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_checked_byte_for_byte() {
        let exact = Reply::Exact(b"$3\r\nabc\r\n".to_vec());
        assert!(matches!(check(b"$3\r\na", &exact), Check::Partial));
        assert!(matches!(check(b"$3\r\nabc\r\n", &exact), Check::Good));
        assert!(matches!(check(b"$3\r\nabd", &exact), Check::Wrong));
        assert!(matches!(check(b"$3\r\nabc\r\n+", &exact), Check::Wrong));
        let http = Reply::HttpBody(b"hello".to_vec());
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert!(matches!(check(&head[..10], &http), Check::Partial));
        let mut ok = head.to_vec();
        ok.extend_from_slice(b"hel");
        assert!(matches!(check(&ok, &http), Check::Partial));
        ok.extend_from_slice(b"lo");
        assert!(matches!(check(&ok, &http), Check::Good));
        let mut bad = head.to_vec();
        bad.extend_from_slice(b"hellO");
        assert!(matches!(check(&bad, &http), Check::Wrong));
        let other = b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nhello";
        assert!(matches!(check(other, &http), Check::Wrong));
    }
}
