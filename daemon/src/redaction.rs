//! Redaction: every secret value that would leave the process (in a tool result, an error, an audit
//! row, a log line) is replaced by `[REDACTED:NAME]` first.
//!
//! One Aho-Corasick automaton holds, for every secret, the forms in which it shows up in text: the
//! value itself, JSON-escaped, percent-encoded, and the base64 characters that the value alone
//! determines at each of the three byte alignments (so the value is found inside a larger base64
//! blob such as HTTP Basic credentials or a JWT). Values shorter than [`MIN_SECRET_LEN`] bytes are
//! not redacted: matching them would shred ordinary output; `secrets set` warns about them.
//! Structured data is redacted string by string after parsing, so escapes are already undone there.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, MatchKind};
use arc_swap::ArcSwap;
use base64::Engine;
use serde_json::Value;

/// The shortest value that is redacted.
pub const MIN_SECRET_LEN: usize = 8;
/// Base64 fragments shorter than this are not patterns (too likely to occur by chance).
const MIN_FRAGMENT_LEN: usize = 12;

/// The automaton and the secret name of each pattern.
#[derive(Default)]
pub struct Redactor {
    automaton: Option<AhoCorasick>,
    names: Vec<String>,
}

impl Redactor {
    /// Builds the patterns for `(name, value)` pairs.
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut patterns: Vec<String> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (name, value) in secrets {
            if value.len() < MIN_SECRET_LEN {
                continue;
            }
            for form in forms(value) {
                if !patterns.contains(&form) {
                    patterns.push(form);
                    names.push(name.to_string());
                }
            }
        }
        if patterns.is_empty() {
            return Redactor::default();
        }
        let automaton = AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(&patterns).ok();
        Redactor { automaton, names }
    }

    /// `text` with every secret form replaced; borrowed when nothing matched.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let Some(automaton) = &self.automaton else { return Cow::Borrowed(text) };
        if !automaton.is_match(text) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        automaton.replace_all_with(text, &mut out, |found, _, out| {
            out.push_str("[REDACTED:");
            out.push_str(self.names.get(found.pattern().as_usize()).map_or("secret", String::as_str));
            out.push(']');
            true
        });
        Cow::Owned(out)
    }

    /// Bytes (log lines): redacted when they are UTF-8, passed through otherwise.
    pub fn redact_bytes<'b>(&self, bytes: &'b [u8]) -> Cow<'b, [u8]> {
        match std::str::from_utf8(bytes) {
            Ok(text) => match self.redact(text) {
                Cow::Borrowed(_) => Cow::Borrowed(bytes),
                Cow::Owned(owned) => Cow::Owned(owned.into_bytes()),
            },
            Err(_) => Cow::Borrowed(bytes),
        }
    }

    /// Every string (and object key) of a JSON value, in place.
    pub fn redact_value(&self, value: &mut Value) {
        if self.automaton.is_none() {
            return;
        }
        match value {
            Value::String(text) => {
                if let Cow::Owned(redacted) = self.redact(text) {
                    *text = redacted;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.redact_value(item)),
            Value::Object(map) => {
                let needs_key_change = map.keys().any(|key| matches!(self.redact(key), Cow::Owned(_)));
                if needs_key_change {
                    let entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
                    for (key, item) in entries {
                        map.insert(self.redact(&key).into_owned(), item);
                    }
                }
                map.values_mut().for_each(|item| self.redact_value(item));
            }
            _ => {}
        }
    }
}

/// The textual forms of one value.
fn forms(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_string()];
    if let Ok(json) = serde_json::to_string(value) {
        forms.push(json[1..json.len() - 1].to_string());
    }
    forms.push(percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string());
    let bytes = value.as_bytes();
    for engine in [base64::engine::general_purpose::STANDARD_NO_PAD, base64::engine::general_purpose::URL_SAFE_NO_PAD] {
        for alignment in 0..3usize {
            let mut shifted = vec![0u8; alignment];
            shifted.extend_from_slice(bytes);
            let encoded = engine.encode(&shifted);
            // Leading characters mix in the zero padding; a trailing partial group mixes in what follows.
            let lead = [0, 2, 3][alignment];
            let tail = usize::from(!(alignment + bytes.len()).is_multiple_of(3));
            if encoded.len() > lead + tail {
                let fragment = &encoded[lead..encoded.len() - tail];
                if fragment.len() >= MIN_FRAGMENT_LEN {
                    forms.push(fragment.to_string());
                }
            }
        }
    }
    forms.retain(|form| !form.is_empty());
    forms
}

static CURRENT: OnceLock<ArcSwap<Redactor>> = OnceLock::new();

fn cell() -> &'static ArcSwap<Redactor> {
    CURRENT.get_or_init(|| ArcSwap::from_pointee(Redactor::default()))
}

/// The redactor of this process (one secret store per process).
pub fn current() -> Arc<Redactor> {
    cell().load_full()
}

/// Replaces the process's redactor (after the secret store was read).
pub fn install(redactor: Redactor) {
    cell().store(Arc::new(redactor));
}

/// A log writer that redacts each formatted line before it reaches stderr.
pub struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let redactor = current();
        std::io::stderr().write_all(&redactor.redact_bytes(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_replaced_by_its_name() {
        let secret = "s3cr3t/value+with=symbols";
        let redactor = Redactor::new([("api_token", secret)]);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{secret}"));
        let cases = [
            format!("token={secret}"),
            serde_json::to_string(&serde_json::json!({"t": secret})).unwrap(),
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC).to_string(),
            format!("Authorization: Basic {basic}"),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("ab{secret}cd")),
        ];
        for text in &cases {
            let redacted = redactor.redact(text);
            assert!(redacted.contains("[REDACTED:api_token]"), "{text:?} -> {redacted:?}");
            assert!(!redacted.contains(secret), "{text:?} still shows the value: {redacted:?}");
        }
        assert!(matches!(redactor.redact("nothing here"), Cow::Borrowed(_)), "no copy when nothing matches");
    }

    #[test]
    fn values_are_redacted_in_nested_json_and_short_values_are_left_alone() {
        let redactor = Redactor::new([("long", "abcdefgh-1234"), ("short", "abc")]);
        let mut value = serde_json::json!({
            "content": [{"type": "text", "text": "env: abcdefgh-1234 and abc"}],
            "abcdefgh-1234": {"nested": ["x abcdefgh-1234 y"]},
        });
        redactor.redact_value(&mut value);
        let text = value.to_string();
        assert!(!text.contains("abcdefgh-1234"), "{text}");
        assert!(text.contains("[REDACTED:long]"), "{text}");
        assert!(text.contains("and abc"), "a value shorter than the minimum is not redacted: {text}");
    }

    #[test]
    fn the_longest_match_wins_when_one_secret_contains_another() {
        let redactor = Redactor::new([("inner", "12345678"), ("outer", "x12345678y")]);
        assert_eq!(redactor.redact("[x12345678y]"), "[[REDACTED:outer]]", "the longer secret is named");
        assert_eq!(redactor.redact("[12345678]"), "[[REDACTED:inner]]", "the shorter alone");
    }
}
