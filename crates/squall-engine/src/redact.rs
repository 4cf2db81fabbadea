//! Redaction: what squall knows to be secret never reaches a log line, a
//! console message, a journal field or an exception text. Known secret
//! values (resolved `secrets:`, sensitive `--var` values, sensitive header
//! values) are replaced by `***` wherever they appear, and so are the
//! password of a URL's userinfo and the values of sensitive query
//! parameters, known or not. One process-wide set, because every writer
//! (the log, the journal) must apply the same one.

use std::borrow::Cow;
use std::sync::{LazyLock, RwLock};

use serde_json::{Map, Value};

/// What a redacted value is replaced with.
pub const MASK: &str = "***";

/// Words that make a header, query parameter or variable name sensitive.
const SENSITIVE: &[&str] = &[
    "authorization",
    "auth",
    "cookie",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "apikey",
    "api_key",
    "api-key",
    "key",
    "signature",
    "sig",
    "credential",
    "session",
];

/// Whether a header, parameter or variable name suggests a secret value.
pub fn is_sensitive_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE.iter().any(|w| lower.contains(w))
}

/// The process-wide set of secret values.
#[derive(Default)]
pub struct Redactor {
    values: RwLock<Vec<String>>,
}

static GLOBAL: LazyLock<Redactor> = LazyLock::new(Redactor::default);

/// The redactor every writer of this process uses.
pub fn global() -> &'static Redactor {
    &GLOBAL
}

impl Redactor {
    /// Adds a secret value. Values shorter than three characters would
    /// mask ordinary text everywhere, so they are kept out (and documented).
    pub fn add(&self, value: &str) {
        if value.chars().count() < 3 || value == MASK {
            return;
        }
        if let Ok(mut v) = self.values.write()
            && !v.iter().any(|x| x == value)
        {
            v.push(value.to_owned());
            // Longest first, so a secret containing another is masked whole.
            v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Adds every string and number inside `v` (a resolved secrets
    /// mapping, scope by scope).
    pub fn add_all(&self, v: &Value) {
        match v {
            Value::String(s) => self.add(s),
            Value::Number(n) => self.add(&n.to_string()),
            Value::Array(items) => items.iter().for_each(|i| self.add_all(i)),
            Value::Object(m) => m.values().for_each(|i| self.add_all(i)),
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// Adds the values of sensitive keys of a mapping (headers, variables).
    pub fn add_sensitive(&self, m: &Map<String, Value>) {
        for (k, v) in m {
            if is_sensitive_name(k) {
                self.add_all(v);
            }
        }
    }

    /// `text` with every known secret, URL password and sensitive query
    /// value replaced by `***`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        if let Ok(values) = self.values.read()
            && !values.is_empty()
        {
            for v in values.iter() {
                if out.contains(v.as_str()) {
                    out = Cow::Owned(out.replace(v.as_str(), MASK));
                }
                // The same value as JSON writes it inside a string.
                let escaped = serde_json::to_string(v).unwrap_or_default();
                let escaped = escaped.trim_matches('"');
                if escaped != v && out.contains(escaped) {
                    out = Cow::Owned(out.replace(escaped, MASK));
                }
            }
        }
        match redact_urls(&out) {
            Some(s) => Cow::Owned(s),
            None => out,
        }
    }
}

/// Characters that end a URL inside free text or JSON.
fn ends_url(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | '\\')
}

/// Masks URL userinfo passwords and sensitive query values; `None` when
/// nothing changed. A first pass only looks, so the common case (no URL
/// needs masking) copies nothing, however long the text (a journal).
fn redact_urls(text: &str) -> Option<String> {
    if !needs_url_mask(text) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest.find(ends_url).unwrap_or(rest.len());
        let (url, tail) = rest.split_at(end);
        let masked = mask_url(url);
        changed |= masked != url;
        out.push_str(&masked);
        rest = tail;
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Whether any URL in `text` has a userinfo password or a sensitive,
/// non-empty query value.
fn needs_url_mask(text: &str) -> bool {
    text.match_indices("://").any(|(i, _)| {
        let rest = &text[i + 3..];
        let url = &rest[..rest.find(ends_url).unwrap_or(rest.len())];
        let authority = &url[..url.find(['/', '?', '#']).unwrap_or(url.len())];
        let password = authority
            .rfind('@')
            .is_some_and(|at| authority[..at].contains(':'));
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let query = &query[..query.find('#').unwrap_or(query.len())];
        password
            || query.split('&').any(|pair| {
                pair.split_once('=')
                    .is_some_and(|(k, v)| !v.is_empty() && is_sensitive_name(k))
            })
    })
}

/// One URL after its `scheme://`.
fn mask_url(url: &str) -> String {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, path) = url.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => format!("{}:{MASK}{}", &authority[..colon], &authority[at..]),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let Some(q) = path.find('?') else {
        return authority + path;
    };
    let (before, query) = path.split_at(q + 1);
    let (query, fragment) = query.split_at(query.find('#').unwrap_or(query.len()));
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if is_sensitive_name(k) && !v.is_empty() => format!("{k}={MASK}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{authority}{before}{}{fragment}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_values_are_masked_longest_first_also_json_escaped() {
        let r = Redactor::default();
        r.add("s3cr3t");
        r.add("s3cr3t-and-more");
        r.add("a\"b\\c");
        r.add("ab"); // too short to mask safely
        assert_eq!(r.redact("x s3cr3t-and-more y s3cr3t"), "x *** y ***");
        assert_eq!(r.redact(r#"{"k": "a\"b\\c"}"#), r#"{"k": "***"}"#);
        assert_eq!(r.redact("ab cd"), "ab cd");
    }

    #[test]
    fn secrets_mappings_and_sensitive_keys_are_collected() {
        let r = Redactor::default();
        r.add_all(&json!({"scope": {"token": "tok-123", "port": 65000}}));
        r.add_sensitive(
            json!({"Authorization": "Bearer abc.def", "Accept": "text/plain"})
                .as_object()
                .unwrap(),
        );
        assert_eq!(
            r.redact("tok-123 65000 Bearer abc.def text/plain"),
            "*** *** *** text/plain"
        );
    }

    #[test]
    fn url_passwords_and_sensitive_query_values_are_masked() {
        let r = Redactor::default();
        assert_eq!(
            r.redact("GET https://bob:hunter2@example.test/p?api_key=K1&page=2#top failed"),
            "GET https://bob:***@example.test/p?api_key=***&page=2#top failed"
        );
        assert_eq!(
            r.redact(r#"{"url": "http://h/x?token=abc"}"#),
            r#"{"url": "http://h/x?token=***"}"#
        );
        assert_eq!(r.redact("http://h/x?q=1"), "http://h/x?q=1");
        assert!(matches!(r.redact("no url here"), Cow::Borrowed(_)));
    }
}
