//! Text from other domains made safe for a terminal: the NV domain writes its status (replica
//! names, fault kinds and details, listen addresses) into xenstore, and nvctl prints it. A control
//! character there (an escape sequence, a carriage return, a C1 control) could rewrite the
//! admin's terminal, so every one is shown escaped (`\u{1b}`, `\r`) instead.

/// `s` with every control character (C0, DEL, C1, line breaks included) escaped as in Rust
/// source (`\u{1b}`, `\n`).
pub fn printable(s: &str) -> String {
    escape(s, false)
}

/// Like [`printable`], but line feeds stay (for multi-line messages such as errors).
pub fn printable_lines(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && !(keep_newlines && c == '\n') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\r\ny\u{9b}\u{7f}"), "x\\r\\ny\\u{9b}\\u{7f}");
        assert_eq!(printable_lines("one\ntwo\u{7}"), "one\ntwo\\u{7}");
        assert_eq!(printable("plain – ünïcode"), "plain – ünïcode");
    }
}
