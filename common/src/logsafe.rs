//! Text from outside — a file name a clerk chose, a string a peer sent —
//! made safe to put in a log line: control characters escaped, so a
//! newline in a name cannot split one record into two or forge another,
//! and (for peer text) cut to a length a log can carry.

use std::fmt;

/// Characters of peer-supplied text a log line shows at most.
pub const CLIP_CHARS: usize = 200;

/// Displays a string with its control characters escaped (`\n`, `\t`,
/// `\u{1b}` …); everything else, Chinese included, as it is.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0.chars())
    }
}

/// A path, shown as [`Escaped`] shows text (bytes that are not UTF-8 as
/// U+FFFD).
#[derive(Debug, Clone, Copy)]
pub struct EscapedPath<'a>(pub &'a std::path::Path);

impl fmt::Display for EscapedPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0.to_string_lossy().chars())
    }
}

/// Like [`Escaped`], cut after [`CLIP_CHARS`] characters with a note of
/// how long the text was.
#[derive(Debug, Clone, Copy)]
pub struct Clipped<'a>(pub &'a str);

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0.chars().take(CLIP_CHARS))?;
        if self.0.chars().nth(CLIP_CHARS).is_some() {
            write!(f, "… ({} bytes in all)", self.0.len())?;
        }
        Ok(())
    }
}

fn write_escaped(f: &mut fmt::Formatter<'_>, chars: impl Iterator<Item = char>) -> fmt::Result {
    use fmt::Write;
    for c in chars {
        if c.is_control() {
            for e in c.escape_default() {
                f.write_char(e)?;
            }
        } else {
            f.write_char(c)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_chinese_is_kept() {
        assert_eq!(
            Escaped("通知\n2026-12-06 ERROR forged.txt").to_string(),
            "通知\\n2026-12-06 ERROR forged.txt"
        );
        assert_eq!(
            Escaped("a\tb\r\u{1b}[31m").to_string(),
            "a\\tb\\r\\u{1b}[31m"
        );
        assert_eq!(
            Escaped("关于做好冬季安全生产工作的通知.pdf").to_string(),
            "关于做好冬季安全生产工作的通知.pdf"
        );
    }

    #[test]
    fn long_peer_text_is_cut_with_its_length() {
        let long = "x".repeat(1 << 20);
        let shown = Clipped(&long).to_string();
        assert!(shown.len() < 300, "{}", shown.len());
        assert!(shown.ends_with("(1048576 bytes in all)"), "{shown}");
        assert_eq!(Clipped("short").to_string(), "short");
    }
}
