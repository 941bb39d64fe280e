//! Request rewriting: the origin URL and `X-Forwarded-For`. The forwarded `Cookie` is
//! [`crate::http::cookie_header`]'s, the reserved headers [`crate::http::headers`]'s.

/// The parts of a request URL: scheme, host (with port) and path with query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    pub scheme: &'a str,
    pub host: &'a str,
    pub path_and_query: &'a str,
}

impl UrlParts<'_> {
    /// The URL's origin, `scheme://host[:port]`, as the runtime serializes it.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}

/// Splits an absolute URL as the runtime gives it (already normalized) without a full
/// URL parser. Returns `None` for anything that is not `scheme://host/...`.
pub fn split_url(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(cut);
    let path_and_query = tail.split('#').next().unwrap_or("");
    Some(UrlParts {
        scheme,
        host,
        path_and_query,
    })
}

/// The URL to forward to: `base` (scheme, host and port from `ORIGIN_URL`) with the
/// request's path and query, or the request's own URL in route mode.
pub fn origin_url(base: Option<&str>, request_url: &str) -> String {
    match (base, split_url(request_url)) {
        (Some(b), Some(p)) => {
            let pq = if p.path_and_query.is_empty() {
                "/"
            } else {
                p.path_and_query
            };
            let mut u = String::with_capacity(b.len() + pq.len());
            u.push_str(b);
            u.push_str(pq);
            u
        }
        _ => request_url.to_owned(),
    }
}

/// The request URL without query and fragment, for the `jwt` format's `htu` claim.
pub fn url_without_query(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// `X-Forwarded-For`: the client's address from `CF-Connecting-IP` appended to any
/// existing list, or the existing list alone when the address is unknown.
pub fn forwarded_for(existing: Option<&str>, client_ip: Option<&str>) -> Option<String> {
    match (existing.map(str::trim).filter(|e| !e.is_empty()), client_ip) {
        (Some(e), Some(ip)) if e.rsplit(',').next().map(str::trim) == Some(ip) => {
            Some(e.to_owned())
        }
        (Some(e), Some(ip)) => Some(format!("{e}, {ip}")),
        (None, Some(ip)) => Some(ip.to_owned()),
        (Some(e), None) => Some(e.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_url_replaces_scheme_host_port_only() {
        assert_eq!(
            origin_url(
                Some("http://127.0.0.1:9000"),
                "https://app.example.com/a/b?c=d#e"
            ),
            "http://127.0.0.1:9000/a/b?c=d"
        );
        assert_eq!(origin_url(Some("http://o"), "https://h"), "http://o/");
        assert_eq!(origin_url(None, "https://h/p?q"), "https://h/p?q");
    }

    #[test]
    fn split_url_parts() {
        let p = split_url("https://h:8443/p?q=1").unwrap();
        assert_eq!(
            (p.scheme, p.host, p.path_and_query),
            ("https", "h:8443", "/p?q=1")
        );
        assert_eq!(url_without_query("https://h/p?q=1"), "https://h/p");
    }

    #[test]
    fn forwarded_for_appends() {
        assert_eq!(
            forwarded_for(None, Some("1.2.3.4")).as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(
            forwarded_for(Some("9.9.9.9"), Some("1.2.3.4")).as_deref(),
            Some("9.9.9.9, 1.2.3.4")
        );
        assert_eq!(
            forwarded_for(Some("9.9.9.9, 1.2.3.4"), Some("1.2.3.4")).as_deref(),
            Some("9.9.9.9, 1.2.3.4")
        );
        assert_eq!(forwarded_for(None, None), None);
    }
}
