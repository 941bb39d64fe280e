//! The exchange's plans as the drivers carry them out: header edits as a type, and the
//! one text form of them that `src/driver/entry.js` reads.
//!
//! A [`Forward`], a [`Rewrap`] and a request to an identity provider ([`Outbound`])
//! are typed. Their [`HeaderEdit`]s are what a driver
//! applies to a header list, in order: `keycard::worker` applies them as they are, and
//! the standalone edge renders them, with the forwarding instructions, into the text
//! below, once, for JS. No driver reads a header name or parses the text back.
//!
//! | line | meaning |
//! | --- | --- |
//! | `-name` | delete the header `name` |
//! | `=name:value` | set it (replacing any value) |
//! | `+name:value` | append it (for `Set-Cookie`) |
//! | `Uurl` | forward to `url` (requests only) |
//! | `Sbinding` | through this service binding (requests only) |
//! | `Tms` | give up on the origin after `ms` milliseconds (requests only) |
//! | `B` | forward without the body (requests only) |
//! | `Qtext` | the response needs no `answered` unless a header name holds `text` ([`Forward::pass_unless`]) |
//!
//! Names never hold `:` or a newline, values never hold a newline, so the form is
//! unambiguous. A plan's instructions come before its edits, so that the driver reads
//! them first and then applies the edits in place, with no array of lines.

use std::borrow::Cow;

use super::{CookieEdit, Forward, Rewrap};
use crate::http::outbound::Outbound;

/// One change to a header list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit<'a> {
    /// Delete every header of this name.
    Delete(&'a str),
    /// Set this header, replacing any of its name.
    Set(&'a str, Cow<'a, str>),
    /// Add this header beside any of its name (`Set-Cookie`).
    Append(&'a str, &'a str),
}

impl Forward {
    /// The changes to the client's request headers, in order: the reserved ones and the
    /// session cookie out, then what keycard tells the origin.
    pub fn header_edits(&self) -> Vec<HeaderEdit<'_>> {
        let mut edits: Vec<HeaderEdit<'_>> =
            self.strip.iter().map(|n| HeaderEdit::Delete(n)).collect();
        match &self.cookie {
            CookieEdit::Keep => {}
            CookieEdit::Set(c) => edits.push(set("cookie", c)),
            CookieEdit::Remove => edits.push(HeaderEdit::Delete("cookie")),
        }
        let s = &self.session;
        edits.extend(s.session.as_deref().map(|v| set("x-session", v)));
        edits.push(set("x-session-status", s.status));
        edits.extend(s.handle.as_deref().map(|v| set("x-session-id", v)));
        if let Some(v) = s.expires {
            edits.push(HeaderEdit::Set(
                "x-session-expires",
                Cow::Owned(v.to_string()),
            ));
        }
        edits.extend(
            self.forwarded_for
                .as_deref()
                .map(|v| set("x-forwarded-for", v)),
        );
        edits.push(set("x-forwarded-host", &self.forwarded_host));
        edits.push(set("x-forwarded-proto", &self.forwarded_proto));
        edits.extend(self.real_ip.as_deref().map(|v| set("x-real-ip", v)));
        edits.extend(self.identity.iter().map(|(n, v)| set(n, v)));
        edits.push(set("x-session-via", &self.via));
        edits
    }

    /// The plan in the text form: the forwarding instructions, then the edits.
    pub fn wire(&self) -> String {
        let mut w = String::new();
        line(&mut w, 'U', &self.url);
        if let Some(s) = &self.service {
            line(&mut w, 'S', s);
        }
        if let Some(ms) = self.timeout_ms {
            line(&mut w, 'T', &ms.to_string());
        }
        if self.drop_body {
            line(&mut w, 'B', "");
        }
        if let Some(mark) = self.pass_unless {
            line(&mut w, 'Q', mark);
        }
        render(&mut w, &self.header_edits());
        w
    }
}

impl Rewrap {
    /// The changes to the origin's response headers: the control headers out,
    /// keycard's cookie in, the `Cache-Control` that goes with it, and binding offered.
    pub fn header_edits(&self) -> Vec<HeaderEdit<'_>> {
        let mut edits: Vec<HeaderEdit<'_>> =
            self.strip.iter().map(|n| HeaderEdit::Delete(n)).collect();
        if let Some(sc) = &self.set_cookie {
            edits.push(HeaderEdit::Append("set-cookie", sc));
        }
        if let Some(cc) = &self.cache_control {
            edits.push(HeaderEdit::Set("cache-control", Cow::Borrowed(cc)));
        }
        if let Some(offer) = &self.offer {
            edits.push(set(crate::dbsc::REGISTRATION, offer));
        }
        edits
    }

    /// The edits in the text form.
    pub fn wire(&self) -> String {
        let mut w = String::new();
        render(&mut w, &self.header_edits());
        w
    }
}

impl Outbound {
    /// Its headers, as edits to an empty header list.
    pub fn header_edits(&self) -> Vec<HeaderEdit<'_>> {
        self.headers.iter().map(|(n, v)| set(n, v)).collect()
    }

    /// The edits in the text form.
    pub fn wire(&self) -> String {
        let mut w = String::new();
        render(&mut w, &self.header_edits());
        w
    }
}

fn line(w: &mut String, tag: char, text: &str) {
    w.push(tag);
    w.push_str(text);
    w.push('\n');
}

/// Appends the edits' lines, sized once and pushed piece by piece: `core::fmt` cost
/// about 1% of the isolate's time here (BENCHMARKS.md, "Issue 26, thirteenth session").
fn render(w: &mut String, edits: &[HeaderEdit<'_>]) {
    let size: usize = edits
        .iter()
        .map(|e| match e {
            HeaderEdit::Delete(name) => name.len() + 2,
            HeaderEdit::Set(name, value) => name.len() + value.len() + 3,
            HeaderEdit::Append(name, value) => name.len() + value.len() + 3,
        })
        .sum();
    w.reserve(size);
    for e in edits {
        match e {
            HeaderEdit::Delete(name) => line(w, '-', name),
            HeaderEdit::Set(name, value) => pair(w, '=', name, value),
            HeaderEdit::Append(name, value) => pair(w, '+', name, value),
        }
    }
}

fn pair(w: &mut String, tag: char, name: &str, value: &str) {
    w.push(tag);
    w.push_str(name);
    w.push(':');
    w.push_str(value);
    w.push('\n');
}

/// `Set` with a value borrowed from the plan.
fn set<'a>(name: &'a str, value: &'a str) -> HeaderEdit<'a> {
    HeaderEdit::Set(name, Cow::Borrowed(value))
}
