//! Making stored text safe to print on a terminal: a value written by a client or an MCP server
//! (tool names, arguments, error messages, hook reasons) must not move the cursor, clear the screen
//! or retitle the window of the operator who reads it.

use std::fmt::Write;

use serde_json::Value;

/// `text` with every control character escaped: `\t`, `\n`, `\r`, other C0 controls and DEL as
/// `\xNN`, C1 controls and the Unicode format characters that reorder or hide text (bidi overrides
/// and isolates, line and paragraph separators, zero-width characters, the BOM) as `\u{NNNN}`, and
/// the backslash itself as `\\` so that what is shown reads back unambiguously.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        push_escaped(&mut escaped, character);
    }
    escaped
}

fn push_escaped(out: &mut String, character: char) {
    match character {
        '\\' => out.push_str("\\\\"),
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\u{0}'..='\u{1f}' | '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", u32::from(character));
        }
        character if needs_unicode_escape(character) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(character));
        }
        character => out.push(character),
    }
}

fn needs_unicode_escape(character: char) -> bool {
    matches!(
        character,
        '\u{80}'..='\u{9f}'              // C1 controls (U+009B is a one-byte CSI on some terminals)
            | '\u{200b}'..='\u{200f}'    // zero-width space/joiners, LRM, RLM
            | '\u{2028}'..='\u{202e}'    // line/paragraph separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'    // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'    // bidi isolates
            | '\u{feff}'                 // BOM / zero-width no-break space
            | '\u{fff9}'..='\u{fffb}' // interlinear annotation
    )
}

/// A JSON value on one line for people: the shape of compact JSON, with every string (keys
/// included) passed through [`escape`] instead of JSON's escaping. Not meant to be parsed back:
/// `--json` is for machines.
pub fn render_json(value: &Value) -> String {
    let mut out = String::new();
    render_into(&mut out, value);
    out
}

fn render_into(out: &mut String, value: &Value) {
    match value {
        Value::String(text) => push_quoted(out, text),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                render_into(out, item);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (index, (key, item)) in fields.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                push_quoted(out, key);
                out.push(':');
                render_into(out, item);
            }
            out.push('}');
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => out.push_str(&value.to_string()),
    }
}

fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            character => push_escaped(out, character),
        }
    }
    out.push('"');
}

/// `value` as one line of JSON that is also safe on a terminal: serde already writes C0 controls as
/// `\u00XX`; the C1 controls and format characters [`escape`] handles, which JSON allows raw, are
/// written as `\uXXXX` too. Those characters only occur inside strings, so the value read back is
/// the same.
pub fn json_line(value: &Value) -> String {
    let serialized = value.to_string();
    let mut out = String::with_capacity(serialized.len());
    for character in serialized.chars() {
        if needs_unicode_escape(character) {
            let _ = write!(out, "\\u{:04x}", u32::from(character));
        } else {
            out.push(character);
        }
    }
    out
}

/// `text` cut to at most `max_chars` characters, with `…` when something was cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Rows as a table: every column as wide as its widest cell (header included), separated by two
/// spaces; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (index, cell) in row.iter().enumerate().take(columns) {
            widths[index] = widths[index].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|title| (*title).to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate().take(columns) {
            if index + 1 == columns {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[index]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use serde_json::json;

    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_raw_remains() {
        let cases = [
            ("\u{1b}[2J\r", "\\x1b[2J\\r"),
            ("a\tb\nc", "a\\tb\\nc"),
            ("bell\u{7}del\u{7f}nul\u{0}", "bell\\x07del\\x7fnul\\x00"),
            ("csi\u{9b}31m", "csi\\u{9b}31m"),
            ("rtl\u{202e}txt.exe", "rtl\\u{202e}txt.exe"),
            ("isolate\u{2067}x\u{2069}", "isolate\\u{2067}x\\u{2069}"),
            ("zero\u{200b}width\u{feff}", "zero\\u{200b}width\\u{feff}"),
            ("C:\\path", "C:\\\\path"),
            ("plain ünïcode 日本 ✓", "plain ünïcode 日本 ✓"),
        ];
        for (raw, expected) in cases {
            let escaped = escape(raw);
            assert_eq!(escaped, expected, "escaping {raw:?}");
            assert!(
                !escaped.chars().any(|character| character.is_control() || needs_unicode_escape(character)),
                "nothing raw remains in {escaped:?}"
            );
        }
        for code in (0u32..0x20).chain(0x7f..0xa0) {
            let character = char::from_u32(code).unwrap();
            assert!(!escape(&character.to_string()).chars().any(char::is_control), "U+{code:04X}");
        }
    }

    #[test]
    fn json_renders_on_one_line_with_strings_escaped() {
        let value = json!({"id": "\u{1b}[2J\r", "say \"hi\"": [1, true, null, "\u{9b}"]});
        assert_eq!(render_json(&value), r#"{"id":"\x1b[2J\r","say \"hi\"":[1,true,null,"\u{9b}"]}"#);
    }

    #[test]
    fn json_lines_escape_c1_and_format_characters_and_read_back_the_same() {
        let value = json!({"text": "\u{1b}[2J\r\u{9b}31m\u{202e}\u{2028}é"});
        let line = json_line(&value);
        assert!(!line.chars().any(|character| character.is_control() || needs_unicode_escape(character)), "{line:?}");
        assert!(line.contains("\\u009b") && line.contains("\\u202e") && line.contains('é'), "{line}");
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), value, "the same value");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("日本語", 3), "日本語");
        assert_eq!(truncate("日本語です", 2), "日本…");
    }

    #[test]
    fn table_columns_are_as_wide_as_their_widest_cell() {
        let rows = vec![
            vec!["1".to_string(), "a-very-long-user-name-indeed".to_string(), "x".to_string()],
            vec!["22".to_string(), "bo".to_string(), "y,z".to_string()],
        ];
        let text = table(&["ID", "USER", "SCOPES"], &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID  USER                          SCOPES");
        assert_eq!(lines[1], "1   a-very-long-user-name-indeed  x");
        assert_eq!(lines[2], "22  bo                            y,z");
    }
}
