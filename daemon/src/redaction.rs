//! Redaction: every secret value that would leave the process (in a tool result, an error, an audit
//! row, a log line) is replaced by `[REDACTED:NAME]` first.
//!
//! One Aho-Corasick automaton, built when the secret store is read, holds for every secret the forms
//! in which it shows up in text ([`forms`]): the value itself, JSON-escaped, percent-encoded, hex,
//! HTML-escaped, and the base64 characters that the value alone determines at each of the three
//! byte alignments (so the value is found inside a larger base64 blob such as HTTP Basic
//! credentials or a JWT). Matching is ASCII case-insensitive. Values shorter than
//! [`MIN_SECRET_LEN`] bytes are not redacted: matching them would shred ordinary output; `secrets
//! set` warns about them. Structured data is redacted string by string after parsing, so escapes
//! are already undone there. docs/profile.md#secrets lists what is caught and what cannot be.

mod forms;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use arc_swap::ArcSwap;
use serde_json::Value;

/// The shortest value that is redacted.
pub const MIN_SECRET_LEN: usize = 8;
/// Up to this many patterns (a few dozen secrets) the automaton is a DFA.
const MAX_DFA_PATTERNS: usize = 1024;

/// The automaton and the secret name of each pattern.
///
/// Matching ignores ASCII case the cheap way: patterns are stored lower-cased and the text is
/// lower-cased (ASCII only, so byte offsets do not move) before the search. The automaton itself
/// stays case-sensitive, which keeps its prefilters (memmem, Teddy): aho-corasick turns them off
/// for its own case-insensitive mode, and the search then runs several times slower.
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
        let mut seen: HashSet<String> = HashSet::new();
        for (name, value) in secrets {
            if value.len() < MIN_SECRET_LEN {
                continue;
            }
            for form in forms::forms(value) {
                let folded = form.to_ascii_lowercase();
                if seen.insert(folded.clone()) {
                    patterns.push(folded);
                    names.push(name.to_string());
                }
            }
        }
        if patterns.is_empty() {
            return Redactor::default();
        }
        // A DFA scans about 1.5 times faster than the NFA aho-corasick picks beyond 100 patterns
        // (a secret has about 16 to 40 forms); it costs about 8 KiB a pattern, so it is capped.
        let kind = (patterns.len() <= MAX_DFA_PATTERNS).then_some(AhoCorasickKind::DFA);
        let automaton = AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).kind(kind).build(&patterns).ok();
        Redactor { automaton, names }
    }

    fn push_marker(&self, found: &aho_corasick::Match, out: &mut Vec<u8>) {
        out.extend_from_slice(b"[REDACTED:");
        out.extend_from_slice(self.names.get(found.pattern().as_usize()).map_or("secret", String::as_str).as_bytes());
        out.push(b']');
    }

    /// `bytes` with every match that starts before `safe_end` replaced, and nothing from there on;
    /// `None` when nothing matched and everything is shown.
    fn replace(&self, bytes: &[u8], safe_end: usize) -> Option<Vec<u8>> {
        let automaton = self.automaton.as_ref()?;
        // Most text to redact (JSON keys, short strings) has no upper-case letter: no copy then.
        let folded: Cow<[u8]> = if bytes.iter().any(u8::is_ascii_uppercase) {
            Cow::Owned(bytes.to_ascii_lowercase())
        } else {
            Cow::Borrowed(bytes)
        };
        let mut matches = automaton.find_iter(folded.as_ref()).peekable();
        if matches.peek().is_none() && safe_end >= bytes.len() {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut shown_up_to = 0;
        for found in matches {
            // A match that starts before the safe end is whole: no form is longer than the margin.
            if found.start() >= safe_end {
                break;
            }
            out.extend_from_slice(bytes.get(shown_up_to..found.start()).unwrap_or_default());
            self.push_marker(&found, &mut out);
            shown_up_to = found.end();
        }
        if shown_up_to < safe_end {
            out.extend_from_slice(bytes.get(shown_up_to..safe_end.min(bytes.len())).unwrap_or_default());
        }
        Some(out)
    }

    /// `text` with every secret form replaced; borrowed when nothing matched.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match self.replace(text.as_bytes(), usize::MAX) {
            None => Cow::Borrowed(text),
            // Matches start and end on character boundaries (patterns are whole UTF-8 strings and
            // folding touches ASCII bytes only), so the output is UTF-8.
            Some(out) => Cow::Owned(
                String::from_utf8(out).unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned()),
            ),
        }
    }

    /// The first part of a longer text (a line cut at a length limit), redacted, up to the point
    /// from which a secret could continue past the cut: the last `longest form - 1` bytes are
    /// dropped, so no beginning of a secret is shown whose rest was cut off.
    pub fn redact_head(&self, head: &str) -> String {
        let Some(automaton) = &self.automaton else { return head.to_string() };
        let mut safe_end = head.len().saturating_sub(automaton.max_pattern_len().saturating_sub(1));
        while !head.is_char_boundary(safe_end) {
            safe_end -= 1;
        }
        match self.replace(head.as_bytes(), safe_end) {
            None => head.to_string(),
            Some(out) => String::from_utf8_lossy(&out).into_owned(),
        }
    }

    /// Bytes (log lines, a child's output): redacted whether or not they are UTF-8.
    pub fn redact_bytes<'b>(&self, bytes: &'b [u8]) -> Cow<'b, [u8]> {
        match self.replace(bytes, usize::MAX) {
            None => Cow::Borrowed(bytes),
            Some(out) => Cow::Owned(out),
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

/// The process's redactor at the moment of each line, for children's output (the actors crate does
/// not know the secret store).
pub struct CurrentRedactor;

impl castellan_actors::child_output::OutputRedactor for CurrentRedactor {
    fn redact_line(&self, line: &str) -> String {
        current().redact(line).into_owned()
    }

    fn redact_line_head(&self, head: &str) -> String {
        current().redact_head(head)
    }
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

    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

    /// A value with a space, the HTML and JSON specials, a slash and a non-ASCII letter.
    const SECRET: &str = "s3cr3t/Välue+with=sym <&> 'q\"x";

    fn all_chars(value: &str, escape: impl Fn(char) -> String) -> String {
        value.chars().map(escape).collect()
    }

    fn json_u(c: char) -> String {
        let mut units = [0u16; 2];
        c.encode_utf16(&mut units).iter().map(|unit| format!("\\u{unit:04X}")).collect()
    }

    /// The text each encoder writes for SECRET (written out by hand, not with our own form builder).
    fn encoded_cases() -> Vec<(&'static str, String)> {
        let secret = SECRET;
        vec![
            ("raw", format!("token={secret}")),
            ("lower case", format!("token={}", secret.to_ascii_lowercase())),
            ("upper case", format!("token={}", secret.to_ascii_uppercase())),
            ("serde_json", serde_json::to_string(&serde_json::json!({"t": secret})).unwrap()),
            ("json every char \\u", format!("{{\"t\":\"{}\"}}", all_chars(secret, json_u))),
            ("json python ensure_ascii", format!("\"{}\"", r#"s3cr3t/V\u00e4lue+with=sym <&> 'q\"x"#)),
            ("json go html-safe", format!("\"{}\"", r#"s3cr3t/Välue+with=sym \u003c\u0026\u003e 'q\"x"#)),
            ("json php", format!("\"{}\"", r#"s3cr3t\/V\u00e4lue+with=sym <&> 'q\"x"#)),
            (
                "percent, every byte",
                percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC).to_string(),
            ),
            ("percent, lower-case hex", "s3cr3t%2fV%c3%a4lue%2bwith%3dsym%20%3c%26%3e%20%27q%22x".to_string()),
            ("percent, + for space (forms)", "q=s3cr3t%2FV%C3%A4lue%2Bwith%3Dsym+%3C%26%3E+%27q%22x&n=1".to_string()),
            ("percent, encodeURIComponent", "s3cr3t%2FV%C3%A4lue%2Bwith%3Dsym%20%3C%26%3E%20'q%22x".to_string()),
            ("percent, python quote", "s3cr3t/V%C3%A4lue%2Bwith%3Dsym%20%3C%26%3E%20%27q%22x".to_string()),
            ("hex lower", format!("dump: {}", hex::encode(secret))),
            ("hex upper", format!("dump: {}", hex::encode_upper(secret))),
            ("html named, &#39;", "<p>s3cr3t/Välue+with=sym &lt;&amp;&gt; &#39;q&quot;x</p>".to_string()),
            ("html named, &apos;", "<p>s3cr3t/Välue+with=sym &lt;&amp;&gt; &apos;q&quot;x</p>".to_string()),
            ("html text (&<> only)", "<p>s3cr3t/Välue+with=sym &lt;&amp;&gt; 'q\"x</p>".to_string()),
            ("html specials decimal", "s3cr3t/Välue+with=sym &#60;&#38;&#62; &#39;q&#34;x".to_string()),
            ("html every char decimal", all_chars(secret, |c| format!("&#{};", u32::from(c)))),
            ("html every char hex", all_chars(secret, |c| format!("&#x{:X};", u32::from(c)))),
            ("basic credentials", format!("Authorization: Basic {}", STANDARD.encode(format!("user:{secret}")))),
            ("base64url inside", URL_SAFE_NO_PAD.encode(format!("ab{secret}cd"))),
        ]
    }

    #[test]
    fn every_encoding_of_a_secret_is_replaced_by_its_name() {
        let redactor = Redactor::new([("api_token", SECRET)]);
        let mut missed = Vec::new();
        for (encoding, text) in encoded_cases() {
            let redacted = redactor.redact(&text);
            if !redacted.contains("[REDACTED:api_token]") {
                missed.push(format!("{encoding}: {text:?} -> {redacted:?}"));
            }
        }
        assert!(missed.is_empty(), "missed:\n{}", missed.join("\n"));
        assert!(matches!(redactor.redact("nothing here"), Cow::Borrowed(_)), "no copy when nothing matches");
    }

    #[test]
    fn base64_is_caught_at_every_alignment_with_and_without_padding_and_leaves_no_tail() {
        let secret = "sv-5b1e9d0c-leak-canary";
        let redactor = Redactor::new([("canary", secret)]);
        let engines = [
            ("standard", STANDARD),
            ("url", URL_SAFE),
            ("standard no pad", STANDARD_NO_PAD),
            ("url no pad", URL_SAFE_NO_PAD),
        ];
        for (engine_name, engine) in engines {
            for before in ["", "a", "ab"] {
                // The value followed by more data, and the value ending the data.
                for after in ["", "!", "?!", "tail-data"] {
                    let encoded = engine.encode(format!("{before}{secret}{after}"));
                    let redacted = redactor.redact(&encoded);
                    let case = format!(
                        "{engine_name}, {} bytes before, {after:?} after: {encoded} -> {redacted}",
                        before.len()
                    );
                    assert!(redacted.contains("[REDACTED:canary]"), "{case}");
                    let (head, rest) = redacted.split_once("[REDACTED:canary]").unwrap();
                    assert!(head.len() <= 3, "at most the mixed leading characters stay: {case}");
                    let tail_allowed = if after.is_empty() { 0 } else { engine.encode(format!("xxx{after}")).len() };
                    assert!(rest.len() <= tail_allowed, "what follows is only the data after the value: {case}");
                }
            }
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_redacted_too() {
        let redactor = Redactor::new([("canary", "sv-5b1e9d0c-leak-canary")]);
        let redacted = redactor.redact_bytes(b"\xff\xfe sv-5b1e9d0c-leak-canary \xff");
        assert_eq!(&*redacted, b"\xff\xfe [REDACTED:canary] \xff".as_slice());
    }

    #[test]
    fn the_head_of_a_cut_line_never_shows_the_beginning_of_a_secret() {
        let secret = "sv-5b1e9d0c-leak-canary";
        let redactor = Redactor::new([("canary", secret)]);
        let margin = redactor.automaton.as_ref().unwrap().max_pattern_len() - 1;
        for kept in 1..secret.len() {
            let head = format!("{secret} and {}{}", "x".repeat(margin), &secret[..kept]);
            let shown = redactor.redact_head(&head);
            assert!(shown.contains("[REDACTED:canary] and"), "a whole secret is redacted: {shown}");
            assert!(!shown.contains(&secret[..kept.min(4)]), "no cut-off beginning ({kept} bytes kept): {shown}");
        }
        assert_eq!(Redactor::default().redact_head("no secrets at all"), "no secrets at all");
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
