//! Escaping for the report's formats, and the GitLab links. Every string from the database
//! reaches HTML through [`html`] (text and attribute values alike) and Markdown through
//! [`markdown`]; a link's path through [`url_path`] first. (src/output_escape.rs does the
//! same for the terminal and CSV.)

use std::fmt::Write;

/// Text safe in HTML element content and in double- or single-quoted attribute values.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Controls other than tab and newline are invisible or disruptive: show them.
            c if c.is_control() && c != '\t' && c != '\n' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text safe in a Markdown table cell or paragraph: Markdown and HTML syntax characters are
/// backslash-escaped or turned into entities, line breaks and pipes cannot end the cell.
pub fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '|' | '!' | '~' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A GitLab path percent-encoded for a URL: `/` separates, everything outside the
/// unreserved set is encoded, so a path cannot leave its URL.
pub fn url_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Links into the GitLab instance; `None` when no instance is configured or the path is
/// empty.
#[derive(Debug, Clone, Copy)]
pub struct Links<'a> {
    pub base: &'a str,
}

impl Links<'_> {
    pub fn project(&self, path: &str) -> Option<String> {
        (!self.base.is_empty() && !path.is_empty())
            .then(|| format!("{}/{}", self.base, url_path(path.trim_matches('/'))))
    }

    pub fn job(&self, project: &str, job_id: Option<i64>) -> Option<String> {
        let id = job_id?;
        self.project(project).map(|p| format!("{p}/-/jobs/{id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup_and_quotes() {
        assert_eq!(
            html(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(html("a\u{1b}[31m"), "a\\u{1b}[31m");
    }

    #[test]
    fn markdown_escapes_syntax_and_cannot_break_a_table() {
        assert_eq!(
            markdown("a|b\n[x](javascript:y) <img> *z*"),
            r"a\|b \[x\]\(javascript:y\) &lt;img&gt; \*z\*"
        );
    }

    #[test]
    fn links_encode_paths_and_need_an_instance() {
        let l = Links {
            base: "https://gitlab.example.com",
        };
        assert_eq!(
            l.project("g/p\"><script>").unwrap(),
            "https://gitlab.example.com/g/p%22%3E%3Cscript%3E"
        );
        assert_eq!(
            l.job("g/p", Some(42)).unwrap(),
            "https://gitlab.example.com/g/p/-/jobs/42"
        );
        assert_eq!(l.job("g/p", None), None);
        assert_eq!(Links { base: "" }.project("g/p"), None);
    }
}
