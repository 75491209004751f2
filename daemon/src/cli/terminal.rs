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

/// `tail` for `audit tail` and `hooks tail`: prints the newest `limit` rows, then with `follow`
/// every newer row, polling once a second. `fetch(after_id, limit)` returns rows oldest first.
pub async fn tail<R, F, Fut>(
    follow: bool,
    limit: u64,
    mut fetch: F,
    id: impl Fn(&R) -> i64,
    mut print: impl FnMut(&R),
) -> Result<std::process::ExitCode, String>
where
    F: FnMut(Option<i64>, u64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<R>, String>>,
{
    let mut after_id = None;
    let mut first = true;
    loop {
        // At least one row the first time, so that following starts after the newest row even
        // with --limit 0; then everything new (the store caps what one read returns).
        let rows = fetch(after_id, if first { limit.max(1) } else { u64::MAX }).await?;
        let shown = if first { rows.len().saturating_sub(usize::try_from(limit).unwrap_or(usize::MAX)) } else { 0 };
        rows[shown..].iter().for_each(&mut print);
        if let Some(last) = rows.last() {
            after_id = Some(id(last));
        }
        first = false;
        if !follow {
            return Ok(std::process::ExitCode::SUCCESS);
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use serde_json::json;

    use super::*;

    /// Over paused time: the first read asks for `limit` (at least one) and prints the newest
    /// `limit`; each later read, a second apart, asks for what came after the last row seen.
    #[tokio::test(start_paused = true)]
    async fn tail_prints_the_newest_then_follows_after_the_last_id_once_a_second() {
        for (limit, first_printed) in [(2u64, vec![2, 3]), (0, vec![])] {
            let reads = std::cell::RefCell::new(Vec::new());
            let started = tokio::time::Instant::now();
            let fetch = |after_id: Option<i64>, asked: u64| {
                reads.borrow_mut().push((after_id, asked.min(1000), started.elapsed().as_secs()));
                let round = reads.borrow().len();
                async move {
                    match round {
                        // The store's newest `asked` of rows 1 to 3.
                        1 => Ok((1..=3).skip(3usize.saturating_sub(asked as usize)).collect()),
                        2 => Ok(vec![]),
                        3 => Ok(vec![4, 5]),
                        _ => Err("stop".to_string()),
                    }
                }
            };
            let mut printed = Vec::new();
            let ended = tail(true, limit, fetch, |row: &i64| *row, |row: &i64| printed.push(*row)).await;
            assert_eq!(ended, Err("stop".to_string()));
            let mut expected = first_printed.clone();
            expected.extend([4, 5]);
            assert_eq!(printed, expected, "--limit {limit}");
            assert_eq!(
                *reads.borrow(),
                [(None, limit.max(1), 0), (Some(3), 1000, 1), (Some(3), 1000, 2), (Some(5), 1000, 3)],
                "--limit {limit}: after the last id, once a second"
            );
        }
        let once = tail(false, 5, |_, _| async { Ok(vec![1, 2]) }, |row: &i64| *row, |_: &i64| {}).await;
        assert_eq!(once, Ok(std::process::ExitCode::SUCCESS), "without --follow one read");
    }

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
