//! The textual forms in which one secret value shows up in text, as automaton patterns.
//!
//! Every form here is computed from the value alone, once, when the redactor is built; matching is
//! ASCII case-insensitive, so upper- and lower-case hex digits (`%2f`/`%2F`, `\u00E9`/`\u00e9`,
//! `&#x2F;`/`&#x2f;`, hex dumps) need one pattern each. A form that mixes encodings within the value
//! (some characters escaped, others not, beyond the encoders' conventions listed below) is not
//! generated: the number of mixes grows exponentially with the length of the value.

use base64::Engine;

/// Base64 fragments shorter than this are not patterns. Ten characters carry 60 bits (about 52
/// with case folded), far beyond chance, and an 8-byte value yields ten at each alignment.
pub(super) const MIN_FRAGMENT_LEN: usize = 10;

/// Every form of `value`, without duplicates or empty strings.
pub(super) fn forms(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_string()];
    forms.extend(json_forms(value));
    forms.extend(percent_forms(value));
    forms.push(hex::encode(value.as_bytes()));
    forms.extend(html_forms(value));
    forms.extend(base64_forms(value.as_bytes()));
    let mut unique: Vec<String> = Vec::with_capacity(forms.len());
    for form in forms {
        if !form.is_empty() && !unique.iter().any(|seen| seen.eq_ignore_ascii_case(&form)) {
            unique.push(form);
        }
    }
    unique
}

/// `\uXXXX` for `c` (a surrogate pair outside the Basic Multilingual Plane), lower-case hex.
fn json_u_escape(c: char, out: &mut String) {
    let mut units = [0u16; 2];
    for unit in c.encode_utf16(&mut units) {
        out.push_str(&format!("\\u{unit:04x}"));
    }
}

/// What every JSON encoder must escape, the way serde_json does it.
fn json_minimal_escape(c: char, out: &mut String) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        c if u32::from(c) < 0x20 => json_u_escape(c, out),
        c => out.push(c),
    }
}

/// The value inside a JSON string, as the common encoders write it: serde_json and JavaScript
/// (minimal), Python's `ensure_ascii` (non-ASCII as `\u`), Go (`<`, `>`, `&`, U+2028, U+2029 as
/// `\u`), PHP (`\/` and non-ASCII as `\u`), and every character as `\u`.
fn json_forms(value: &str) -> Vec<String> {
    type Policy = fn(char, &mut String);
    let policies: [Policy; 5] = [
        json_minimal_escape,
        |c, out| if c.is_ascii() { json_minimal_escape(c, out) } else { json_u_escape(c, out) },
        |c, out| match c {
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => json_u_escape(c, out),
            c => json_minimal_escape(c, out),
        },
        |c, out| match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => json_minimal_escape(c, out),
            c => json_u_escape(c, out),
        },
        json_u_escape,
    ];
    policies
        .iter()
        .map(|policy| {
            let mut out = String::with_capacity(value.len() * 2);
            value.chars().for_each(|c| policy(c, &mut out));
            out
        })
        .collect()
}

/// Percent-encoded, as the common encoders write it: everything but letters and digits encoded,
/// RFC 3986 (`-._~` kept), HTML forms (`*-._` kept), JavaScript's `encodeURIComponent`
/// (`-_.!~*'()` kept) and Python's `quote` (`-._~/` kept); each with a space as `%20` and as `+`.
fn percent_forms(value: &str) -> Vec<String> {
    const KEPT: [&[u8]; 5] = [b"", b"-._~", b"*-._", b"-_.!~*'()", b"-._~/"];
    let mut forms = Vec::new();
    for kept in KEPT {
        for plus_for_space in [false, true] {
            let mut out = String::with_capacity(value.len() * 3);
            for c in value.chars() {
                if c == ' ' && plus_for_space {
                    out.push('+');
                } else if c.is_ascii_alphanumeric() || (c.is_ascii() && kept.contains(&(c as u8))) {
                    out.push(c);
                } else {
                    let mut bytes = [0u8; 4];
                    for byte in c.encode_utf8(&mut bytes).bytes() {
                        out.push_str(&format!("%{byte:02X}"));
                    }
                }
            }
            forms.push(out);
        }
    }
    forms
}

/// HTML-escaped: the named entities for `&<>"` with `'` as `&#39;`, `&apos;` or `&#x27;`; only
/// `&<>` escaped (text content); those five characters as decimal or hex character references;
/// every character as a decimal or hex character reference.
fn html_forms(value: &str) -> Vec<String> {
    type Policy = fn(char) -> Option<String>;
    fn named(c: char, apostrophe: &str) -> Option<String> {
        match c {
            '&' => Some("&amp;".to_string()),
            '<' => Some("&lt;".to_string()),
            '>' => Some("&gt;".to_string()),
            '"' => Some("&quot;".to_string()),
            '\'' => Some(apostrophe.to_string()),
            _ => None,
        }
    }
    fn special(c: char) -> bool {
        matches!(c, '&' | '<' | '>' | '"' | '\'')
    }
    let policies: [Policy; 8] = [
        |c| named(c, "&#39;"),
        |c| named(c, "&apos;"),
        |c| named(c, "&#x27;"),
        |c| if matches!(c, '&' | '<' | '>') { named(c, "'") } else { None },
        |c| special(c).then(|| format!("&#{};", u32::from(c))),
        |c| special(c).then(|| format!("&#x{:x};", u32::from(c))),
        |c| Some(format!("&#{};", u32::from(c))),
        |c| Some(format!("&#x{:x};", u32::from(c))),
    ];
    policies
        .iter()
        .map(|policy| value.chars().map(|c| policy(c).unwrap_or_else(|| c.to_string())).collect::<String>())
        .collect()
}

/// Base64 (standard and URL-safe) characters that the value alone determines, at each of the three
/// byte alignments it can have inside longer data: the inner fragment (the value followed by more
/// data), and, where the value ends the data, the full tail without and with `=` padding.
fn base64_forms(bytes: &[u8]) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut forms = Vec::new();
    for (unpadded, padded) in [(STANDARD_NO_PAD, STANDARD), (URL_SAFE_NO_PAD, URL_SAFE)] {
        for alignment in 0..3usize {
            let mut shifted = vec![0u8; alignment];
            shifted.extend_from_slice(bytes);
            // The first characters mix in the bytes before the value (zeros here).
            let lead = [0, 2, 3][alignment];
            let without_padding = unpadded.encode(&shifted);
            let with_padding = padded.encode(&shifted);
            // A trailing partial group mixes in the bytes after the value, unless it ends the data.
            let tail = usize::from(!(alignment + bytes.len()).is_multiple_of(3));
            let candidates = [
                without_padding.get(lead..without_padding.len().saturating_sub(tail)),
                without_padding.get(lead..),
                with_padding.get(lead..),
            ];
            for fragment in candidates.into_iter().flatten() {
                if fragment.len() >= MIN_FRAGMENT_LEN {
                    forms.push(fragment.to_string());
                }
            }
        }
    }
    forms
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_minimal_json_form_is_what_serde_json_writes() {
        for value in ["plain-value", "quote\"back\\slash", "ctl\u{1}\u{8}\u{c}\n\r\t\u{1f}end", "é∑😀 <&>/"] {
            let serde = serde_json::to_string(value).unwrap();
            assert_eq!(json_forms(value)[0], serde[1..serde.len() - 1], "{value:?}");
        }
    }

    #[test]
    fn every_json_u_form_parses_back_to_the_value() {
        let value = "s3cr3t/é😀<&>\"\\\n";
        for form in json_forms(value) {
            let parsed: String = serde_json::from_str(&format!("\"{form}\"")).unwrap();
            assert_eq!(parsed, value, "{form}");
        }
    }

    #[test]
    fn every_percent_form_decodes_back_to_the_value() {
        let value = "a b+c/d-e_f.g~h*i'j(k)l!m%né";
        for form in percent_forms(value) {
            let spaced = form.replace('+', " ");
            let decoded = percent_encoding::percent_decode_str(&spaced).decode_utf8().unwrap();
            let decoded_plain = percent_encoding::percent_decode_str(&form).decode_utf8().unwrap();
            assert!(decoded == value || decoded_plain == value, "{form} decodes to {decoded:?} / {decoded_plain:?}");
        }
    }

    #[test]
    fn eight_byte_values_have_base64_fragments_at_every_alignment() {
        let forms = base64_forms(b"abcdefgh");
        for alignment in 0..3 {
            let mut data = vec![b'x'; alignment];
            data.extend_from_slice(b"abcdefgh");
            data.extend_from_slice(b"yyy");
            let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
            assert!(forms.iter().any(|form| encoded.contains(form.as_str())), "alignment {alignment}: {encoded}");
        }
    }
}
