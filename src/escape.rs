//! Bytes from input records and file names reach stderr inside messages; a terminal would act
//! on an ESC sequence, a NUL or CR would garble the line, and a newline would forge a line of
//! its own. Control characters are shown escaped, as `\e`, `\0`, `\n`, `\x7f`, `\u{85}`.

use std::borrow::Cow;
use std::path::Path;

fn needs(c: char, keep_newline: bool) -> bool {
    c.is_control() && !(keep_newline && c == '\n') && c != '\t'
}

fn escape(s: &str, keep_newline: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| needs(c, keep_newline)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs(c, keep_newline) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\x1b' => out.push_str("\\e"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// A fragment of data (a file name, a raw line) for a one-line message: every control
/// character escaped, newlines included.
pub fn text(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// A path for a message, escaped as [`text`] (invalid UTF-8 shows as U+FFFD).
pub fn path(p: &Path) -> String {
    text(&p.to_string_lossy()).into_owned()
}

/// A whole message just before it is printed: control characters escaped, but the newlines
/// weir itself puts between the lines of a message kept.
pub fn message(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_are_shown_not_sent() {
        assert_eq!(
            text("a\x1b[31mb\0c\nd\re\x7f"),
            "a\\e[31mb\\0c\\nd\\re\\x7f"
        );
        assert_eq!(text("caf\u{e9}\tok"), "caf\u{e9}\tok");
        assert_eq!(text("\u{85}"), "\\u{85}");
        assert_eq!(message("one\ntwo\x1b"), "one\ntwo\\e");
        assert!(matches!(text("plain"), Cow::Borrowed(_)));
    }
}
