//! Which response header values are masked, and their comparison form.
//!
//! - `Date` always: a value in IMF-fixdate format (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110
//!   section 5.6.7, the only format a server may send) compares as the fixed
//!   [`CANONICAL_DATE`]; any other value compares byte for byte, so a replica whose `Date` has
//!   another format (or is missing) is caught.
//! - Each header named in [`HeaderMasks`] (the service's `mask_headers`): its value compares by
//!   shape: every ASCII letter and digit compares as `x`, every other byte as itself. Presence,
//!   length and punctuation must agree (`"5f3a1c2b-267"` matches `"60a9e0f1-267"`, not
//!   `"60a9e0f1-1267"` nor `W/"60a9e0f1-267"`).
//!
//! Header names compare exactly in both cases, and so does the whitespace around a value.

/// The comparison form of a `Date` value in IMF-fixdate format.
pub const CANONICAL_DATE: &[u8; 29] = b"Thu, 01 Jan 1970 00:00:00 GMT";

/// The framing headers, which cannot be masked: the framer reads them to find bodies.
const UNMASKABLE: [&str; 2] = ["content-length", "transfer-encoding"];

/// A header list that cannot be masked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// The name is not an HTTP field name (a token, RFC 9110 section 5.1).
    #[error("mask_headers: {0:?} is not an HTTP header name")]
    NotAName(String),
    /// The name is a framing header.
    #[error("mask_headers: {0} frames the message body and cannot be masked")]
    Framing(String),
}

/// The header names (besides `Date`) whose values compare by shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMasks {
    /// Lowercase names.
    names: Vec<Vec<u8>>,
}

impl HeaderMasks {
    /// Checks a configured list of header names (any case). `Date` in the list changes nothing:
    /// it is always masked, and by its format.
    pub fn new(names: &[String]) -> Result<Self, MaskError> {
        let mut masks = Self::default();
        for name in names {
            if name.is_empty() || !name.bytes().all(super::wire::is_tchar) {
                return Err(MaskError::NotAName(name.clone()));
            }
            let lower = name.to_ascii_lowercase();
            if UNMASKABLE.contains(&lower.as_str()) {
                return Err(MaskError::Framing(name.clone()));
            }
            if lower != "date" {
                masks.names.push(lower.into_bytes());
            }
        }
        Ok(masks)
    }

    /// The comparison form of a header's value, if it is masked.
    pub fn mask(&self, name: &[u8], value: &[u8]) -> Option<Vec<u8>> {
        if name.eq_ignore_ascii_case(b"date") && is_imf_fixdate(value) {
            return Some(CANONICAL_DATE.to_vec());
        }
        if self.names.iter().any(|n| name.eq_ignore_ascii_case(n)) {
            return Some(shape(value));
        }
        None
    }
}

/// `value` with every ASCII letter and digit replaced by `x`.
fn shape(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .map(|&b| if b.is_ascii_alphanumeric() { b'x' } else { b })
        .collect()
}

/// Whether `value` is an IMF-fixdate: `Day, DD Mon YYYY HH:MM:SS GMT`.
pub fn is_imf_fixdate(value: &[u8]) -> bool {
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    const PATTERN: &[u8; 29] = b"www, dd mmm dddd dd:dd:dd GMT";
    value.len() == PATTERN.len()
        && DAYS.contains(&&value[0..3])
        && MONTHS.contains(&&value[8..11])
        && PATTERN.iter().zip(value).all(|(&p, &v)| match p {
            b'w' | b'm' => true,
            b'd' => v.is_ascii_digit(),
            _ => p == v,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imf_fixdate_only() {
        assert!(is_imf_fixdate(b"Sun, 06 Nov 1994 08:49:37 GMT"));
        assert!(is_imf_fixdate(CANONICAL_DATE));
        for other in [
            &b"Sunday, 06-Nov-94 08:49:37 GMT"[..],
            b"Sun Nov  6 08:49:37 1994",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Sun, 6 Nov 1994 08:49:37 GMT ",
            b"Sun, 06 Nob 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 08:49:3x GMT",
            b"Sum, 06 Nov 1994 08:49:37 GMT",
            b"",
        ] {
            assert!(
                !is_imf_fixdate(other),
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn date_is_always_masked_when_well_formed() {
        let masks = HeaderMasks::default();
        let date = b"Mon, 30 Nov 2026 17:45:01 GMT";
        assert_eq!(masks.mask(b"DATE", date), Some(CANONICAL_DATE.to_vec()));
        assert_eq!(masks.mask(b"Date", b"yesterday"), None);
        assert_eq!(masks.mask(b"ETag", b"\"1-2\""), None);
    }

    #[test]
    fn configured_headers_compare_by_shape() {
        let masks = HeaderMasks::new(&["etag".into(), "Last-Modified".into()]).unwrap();
        let a = masks.mask(b"ETag", b"\"5f3a1c2b-267\"").unwrap();
        assert_eq!(a, b"\"xxxxxxxx-xxx\"");
        assert_eq!(masks.mask(b"etag", b"\"60a9e0f1-267\""), Some(a.clone()));
        assert_ne!(masks.mask(b"etag", b"W/\"60a9e0f1-26\""), Some(a));
        assert!(masks
            .mask(b"last-modified", b"Mon, 30 Nov 2026 17:45:01 GMT")
            .is_some());
        assert_eq!(masks.mask(b"server", b"nginx"), None);
    }

    #[test]
    fn bad_lists_are_refused() {
        assert_eq!(
            HeaderMasks::new(&["x y".into()]),
            Err(MaskError::NotAName("x y".into()))
        );
        assert_eq!(
            HeaderMasks::new(&["".into()]),
            Err(MaskError::NotAName("".into()))
        );
        let err = HeaderMasks::new(&["Content-Length".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mask_headers: Content-Length frames the message body and cannot be masked"
        );
        assert!(HeaderMasks::new(&["transfer-encoding".into()]).is_err());
        let date_listed = HeaderMasks::new(&["Date".into()]).unwrap();
        assert_eq!(date_listed, HeaderMasks::default());
        assert_eq!(
            date_listed.mask(b"date", b"Sunday, 06-Nov-94 08:49:37 GMT"),
            None
        );
    }
}
