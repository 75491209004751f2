//! A scanner over JSON text that finds where one top-level key's value lies, so the gateway can
//! replace those bytes and leave every other byte of a body as the client wrote it.
//!
//! It is meant for text already parsed as one JSON object (so it does not re-check the grammar),
//! but it stays panic-free and returns an error on anything it does not expect.

use std::ops::Range;

use super::FormatError;

fn unexpected() -> FormatError {
    FormatError::NotJson("unexpected text while looking for a top-level key".to_owned())
}

fn skip_whitespace(text: &[u8], mut at: usize) -> usize {
    while matches!(text.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// `at` is on the opening quote; returns the index just past the closing one.
fn skip_string(text: &[u8], at: usize) -> Result<usize, FormatError> {
    let mut at = at + 1;
    loop {
        match text.get(at) {
            Some(b'"') => return Ok(at + 1),
            // The escaped byte can be a quote; skipping it whole is enough (`\uXXXX` is ASCII).
            Some(b'\\') => at += 2,
            Some(_) => at += 1,
            None => return Err(unexpected()),
        }
    }
}

/// `at` is on the first byte of a value; returns the index just past it.
fn skip_value(text: &[u8], at: usize) -> Result<usize, FormatError> {
    match text.get(at) {
        Some(b'"') => skip_string(text, at),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut at = at;
            loop {
                match text.get(at) {
                    Some(b'"') => at = skip_string(text, at)?,
                    Some(b'{' | b'[') => {
                        depth += 1;
                        at += 1;
                    }
                    Some(b'}' | b']') => {
                        depth -= 1;
                        at += 1;
                        if depth == 0 {
                            return Ok(at);
                        }
                    }
                    Some(_) => at += 1,
                    None => return Err(unexpected()),
                }
            }
        }
        Some(_) => {
            // A number, `true`, `false` or `null`: up to the next delimiter.
            let mut end = at;
            while let Some(byte) = text.get(end) {
                if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                end += 1;
            }
            if end == at { Err(unexpected()) } else { Ok(end) }
        }
        None => Err(unexpected()),
    }
}

/// The byte range of the value of the top-level `key` in the object `text`, or `None` when the
/// object has no such key. Keys are compared decoded, so `"mod\u0065l"` is `model` here as it is
/// to the provider.
pub(super) fn value_span(text: &[u8], key: &str) -> Result<Option<Range<usize>>, FormatError> {
    let mut at = skip_whitespace(text, 0);
    if text.get(at) != Some(&b'{') {
        return Err(unexpected());
    }
    at = skip_whitespace(text, at + 1);
    if text.get(at) == Some(&b'}') {
        return Ok(None);
    }
    loop {
        if text.get(at) != Some(&b'"') {
            return Err(unexpected());
        }
        let key_end = skip_string(text, at)?;
        let raw_key = text.get(at..key_end).ok_or_else(unexpected)?;
        let matches = if raw_key.contains(&b'\\') {
            serde_json::from_slice::<String>(raw_key).map_err(|_| unexpected())? == key
        } else {
            raw_key.get(1..raw_key.len() - 1) == Some(key.as_bytes())
        };
        at = skip_whitespace(text, key_end);
        if text.get(at) != Some(&b':') {
            return Err(unexpected());
        }
        let value_start = skip_whitespace(text, at + 1);
        let value_end = skip_value(text, value_start)?;
        if matches {
            return Ok(Some(value_start..value_end));
        }
        at = skip_whitespace(text, value_end);
        match text.get(at) {
            Some(b',') => at = skip_whitespace(text, at + 1),
            Some(b'}') => return Ok(None),
            _ => return Err(unexpected()),
        }
    }
}
