//! Following GitLab's pages, pure: which URL is next, and when to refuse.
//!
//! GitLab paginates REST listings two ways (https://docs.gitlab.com/api/rest/#pagination):
//! offset (`page`/`per_page`, the next page number in `X-Next-Page`, also a `Link` header)
//! and keyset (`pagination=keyset`, the next page only as `Link: <…>; rel="next"`; keyset
//! answers carry no `X-Total*`, gitlab-org/gitlab#220903). `Link` is preferred; `X-Next-Page`
//! is the fallback for answers without it. A server that names a page twice, names more than
//! `gitlab.max_pages` pages, or sends us to another host is refused: the token would follow.

use std::collections::HashSet;

/// The URL of the next page, if any: `Link` rel="next", else `X-Next-Page` applied to `current`.
pub fn next_url(
    current: &str,
    link: Option<&str>,
    x_next_page: Option<&str>,
) -> Result<Option<String>, String> {
    if let Some(url) = link.and_then(link_next) {
        return Ok(Some(url));
    }
    match x_next_page.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(None),
        Some(p) => {
            let n: u64 = p
                .parse()
                .map_err(|_| format!("X-Next-Page is not a page number: {p:?}"))?;
            Ok(Some(with_query_param(current, "page", &n.to_string())))
        }
    }
}

/// The `rel="next"` target of an RFC 8288 `Link` header.
pub fn link_next(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_owned())
    })
}

/// `url` with `key=value` set (replaced when present).
pub fn with_query_param(url: &str, key: &str, value: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(key))
        .map(str::to_owned)
        .collect();
    params.push(format!("{key}={value}"));
    format!("{path}?{}", params.join("&"))
}

/// `scheme://host[:port]` of a URL.
pub fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// Refuses loops, endless listings and pages on another host.
#[derive(Debug)]
pub struct PageGuard {
    origin: String,
    max_pages: u32,
    seen: HashSet<String>,
}

impl PageGuard {
    pub fn new(first_url: &str, max_pages: u32) -> Self {
        let mut seen = HashSet::new();
        seen.insert(first_url.to_owned());
        PageGuard {
            origin: origin(first_url).to_ascii_lowercase(),
            max_pages,
            seen,
        }
    }

    /// Accepts `next` as the next page to read, or says why not.
    pub fn admit(&mut self, next: &str) -> Result<(), String> {
        if origin(next).to_ascii_lowercase() != self.origin {
            return Err(format!(
                "the next page is on another host ({}); not following it with the token",
                origin(next)
            ));
        }
        if !self.seen.insert(next.to_owned()) {
            return Err(format!(
                "the server named a page it already sent ({next}): a pagination loop"
            ));
        }
        if self.seen.len() > self.max_pages as usize {
            return Err(format!(
                "more than gitlab.max_pages = {} pages",
                self.max_pages
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next() {
        // Keyset example from gitlab-org/gitlab-ce!18584 (shortened).
        let h = "<https://gitlab.example.com/api/v4/projects?pagination=keyset&id_after=42&per_page=2>; rel=\"next\", <https://gitlab.example.com/api/v4/projects?page=1>; rel=\"first\"";
        assert_eq!(
            link_next(h).as_deref(),
            Some(
                "https://gitlab.example.com/api/v4/projects?pagination=keyset&id_after=42&per_page=2"
            )
        );
        assert_eq!(link_next("<https://x/a>; rel=\"first\""), None);
        assert_eq!(link_next("garbage"), None);
    }

    #[test]
    fn x_next_page_fallback() {
        let n = next_url(
            "https://h/api/v4/groups/1/projects?per_page=2&page=1",
            None,
            Some("2"),
        );
        assert_eq!(
            n.unwrap().as_deref(),
            Some("https://h/api/v4/groups/1/projects?per_page=2&page=2")
        );
        assert_eq!(next_url("https://h/a", None, Some("")).unwrap(), None);
        assert!(next_url("https://h/a", None, Some("two")).is_err());
    }

    #[test]
    fn guard_refuses_loops_other_hosts_and_endless_listings() {
        let mut g = PageGuard::new("https://h/api/v4/p?page=1", 3);
        assert!(g.admit("https://h/api/v4/p?page=2").is_ok());
        assert!(
            g.admit("https://h/api/v4/p?page=1")
                .unwrap_err()
                .contains("loop")
        );
        assert!(
            g.admit("https://evil.example/api/v4/p?page=3")
                .unwrap_err()
                .contains("another host")
        );
        assert!(g.admit("https://h/api/v4/p?page=3").is_ok());
        assert!(
            g.admit("https://h/api/v4/p?page=4")
                .unwrap_err()
                .contains("max_pages")
        );
    }
}
