//! The few pages keycard shows a person itself, all about signing in: the provider
//! chooser, a refusal, and what went wrong. Every value in them is HTML-escaped.

use crate::oidc::Provider;

/// `Content-Type` of keycard's pages.
pub const HTML: &str = "text/html; charset=utf-8";

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `title` (text) and `body` (HTML, its values already escaped).
fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{t}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;\
         margin:3rem auto;padding:0 1rem;color:#222}}button,a.button{{display:block;width:100%;\
         margin:.5rem 0;padding:.7rem;font:inherit;border:1px solid #888;border-radius:6px;\
         background:#f6f6f6;text-align:center;color:inherit;text-decoration:none;cursor:pointer}}</style>\
         </head><body><h1>{t}</h1>\n{body}\n</body></html>\n",
        t = escape(title)
    )
}

/// The login URL for `next`, with `provider` when given.
pub fn login_url(prefix: &str, next: &str, provider: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("next", next);
    if let Some(p) = provider {
        q.append_pair("provider", p);
    }
    format!("{prefix}login?{}", q.finish())
}

/// The login URL that signs in as someone else: the provider asks who, rather than
/// sign in again whoever it still knows.
pub fn switch_url(prefix: &str, next: &str, provider: Option<&str>) -> String {
    format!("{}&prompt=login", login_url(prefix, next, provider))
}

/// The chooser: one button per provider, each starting its sign-in.
pub fn chooser(prefix: &str, next: &str, providers: &[Provider]) -> String {
    let mut buttons = String::new();
    for p in providers {
        let name = p.name.as_deref().unwrap_or("");
        buttons.push_str(&format!(
            "<button type=\"submit\" name=\"provider\" value=\"{v}\">Sign in with {v}</button>\n",
            v = escape(name)
        ));
    }
    let form = format!(
        "<form method=\"get\" action=\"{action}\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\n{buttons}</form>",
        action = escape(&format!("{prefix}login")),
        next = escape(next),
    );
    page("Sign in", &form)
}

/// A user the provider vouched for, refused by `rule`, with a way to sign in as
/// someone else.
pub fn refused(rule: &str, email: Option<&str>, retry: &str) -> String {
    let who = match email {
        Some(e) => format!(
            "You are signed in at the provider as <strong>{}</strong>. ",
            escape(e)
        ),
        None => String::new(),
    };
    let why = match rule {
        "KEYCARD_ALLOW_EMAIL_DOMAINS" => "Your email address is not in a domain this site allows",
        "KEYCARD_ALLOW_GROUPS" => "You are not in a group this site allows",
        "email_verified" => "Your provider has not verified your email address",
        _ => "Your provider did not say who you are",
    };
    let body = format!(
        "<p>{who}{why} (<code>{rule}</code>).</p>\n\
         <a class=\"button\" href=\"{retry}\">Sign in as someone else</a>",
        rule = escape(rule),
        retry = escape(retry),
    );
    page("You cannot sign in here", &body)
}

/// A sign-in that did not finish: `what` happened (plain text), and a way to start
/// again.
pub fn failed(title: &str, what: &str, retry: &str) -> String {
    let body = format!(
        "<p>{}</p>\n<a class=\"button\" href=\"{}\">Start again</a>",
        escape(what),
        escape(retry)
    );
    page(title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_everywhere() {
        let html = refused(
            "KEYCARD_ALLOW_GROUPS",
            Some("Zoë <script>\"'&@x"),
            "/x?a=1&b=\"2\"",
        );
        assert!(html.contains("Zoë &lt;script&gt;&quot;&#39;&amp;@x"));
        assert!(html.contains("href=\"/x?a=1&amp;b=&quot;2&quot;\""));
        assert!(!html.contains("<script>"));
        let html = failed("Sign-in failed", "<b>", "/");
        assert!(html.contains("&lt;b&gt;"));
    }

    #[test]
    fn the_login_url_carries_next_and_provider_encoded() {
        assert_eq!(
            login_url("/.keycard/", "/a?b=c&d", Some("corp")),
            "/.keycard/login?next=%2Fa%3Fb%3Dc%26d&provider=corp"
        );
    }
}
