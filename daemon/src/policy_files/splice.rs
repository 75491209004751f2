//! Finding a profile's top-level sections in its text, line by line, and swapping a section's
//! lines for new ones: what lets an import change one section and leave every other line (and
//! comment) as the operator wrote it. Each line of the result remembers where it came from.

/// Where a line of a merged text came from, to put a problem back where the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin {
    pub file: String,
    /// None: the line was generated (a section re-emitted), so only the file is known.
    pub line: Option<usize>,
    /// Columns added in front of the original line.
    pub indent: usize,
}

/// A merged text, line by line, with each line's origin.
#[derive(Debug, Default)]
pub(super) struct Lines {
    pub text: String,
    pub origins: Vec<Origin>,
}

impl Lines {
    pub fn push(&mut self, line: &str, origin: Origin) {
        self.text.push_str(line);
        if !line.ends_with('\n') {
            self.text.push('\n');
        }
        self.origins.push(origin);
    }
}

/// What a line of a profile is, as far as finding its top-level sections goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LineKind {
    Blank,
    /// A comment in the first column.
    Comment,
    /// Indented: part of the section above.
    Inner,
    /// `---` or `...`.
    Marker,
    /// A top-level key.
    Key(String),
}

/// `target_text` with the lines of each section named in `blocks` replaced by its block (appended
/// at the end when the target has no such section). None when a line cannot be classified.
pub(super) fn splice(target_text: &str, target_label: &str, blocks: &[(&str, Lines)]) -> Option<Lines> {
    let lines: Vec<&str> = target_text.split_inclusive('\n').collect();
    let kinds: Vec<LineKind> = lines.iter().map(|line| classify(line)).collect::<Option<_>>()?;
    let first_key = kinds.iter().position(|kind| matches!(kind, LineKind::Key(_)));
    if let Some(first_key) = first_key
        && kinds[first_key..].contains(&LineKind::Marker)
    {
        return None;
    }
    let mut merged = Lines::default();
    let mut used = vec![false; blocks.len()];
    let mut index = 0;
    while index < lines.len() {
        let replacement = match &kinds[index] {
            LineKind::Key(key) => blocks.iter().position(|(name, _)| name == key),
            _ => None,
        };
        let Some(block) = replacement else {
            merged.push(lines[index], Origin { file: target_label.to_string(), line: Some(index + 1), indent: 0 });
            index += 1;
            continue;
        };
        used[block] = true;
        append(&mut merged, &blocks[block].1);
        index = section_end(&kinds, index);
    }
    for (block, (_, lines)) in blocks.iter().enumerate() {
        if !used[block] {
            append(&mut merged, lines);
        }
    }
    Some(merged)
}

fn append(merged: &mut Lines, block: &Lines) {
    for (line, origin) in block.text.split_inclusive('\n').zip(&block.origins) {
        merged.push(line, origin.clone());
    }
}

/// The index after the last line of the section whose key is at `start`: up to the next key,
/// leaving the blank lines and first-column comments just before it to the next section.
fn section_end(kinds: &[LineKind], start: usize) -> usize {
    let next = kinds[start + 1..].iter().position(|kind| matches!(kind, LineKind::Key(_)));
    let mut end = next.map_or(kinds.len(), |offset| start + 1 + offset);
    while end > start + 1 && matches!(kinds[end - 1], LineKind::Blank | LineKind::Comment) {
        end -= 1;
    }
    end
}

fn classify(line: &str) -> Option<LineKind> {
    let content = line.trim_end_matches(['\n', '\r']);
    if content.trim().is_empty() {
        return Some(LineKind::Blank);
    }
    // A block sequence may sit in the first column under its key (`budgets:` then `- ...`), as
    // serde_yaml_ng writes it.
    if content.starts_with([' ', '\t']) || content == "-" || content.starts_with("- ") {
        return Some(LineKind::Inner);
    }
    if content.starts_with('#') {
        return Some(LineKind::Comment);
    }
    let marker =
        |prefix: &str| content == prefix || content.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(' '));
    if marker("---") || marker("...") {
        return Some(LineKind::Marker);
    }
    top_level_key(content).map(LineKind::Key)
}

/// The key of a first-column `KEY: ...` line: plain, or quoted without escapes. None for anything
/// else (a flow collection, a complex key, a sequence).
fn top_level_key(content: &str) -> Option<String> {
    let (key, rest) = match content.chars().next()? {
        quote @ ('"' | '\'') => {
            let inner = &content[1..];
            let end = inner.find(quote)?;
            if inner[..end].contains('\\') {
                return None;
            }
            (&inner[..end], &inner[end + 1..])
        }
        first if "-?:,[]{}#&*!|>%@`".contains(first) => return None,
        _ => {
            let bytes = content.as_bytes();
            let colon = (0..bytes.len()).find(|&at| {
                bytes[at] == b':' && bytes.get(at + 1).is_none_or(|next| *next == b' ' || *next == b'\t')
            })?;
            (content[..colon].trim_end(), &content[colon..])
        }
    };
    let after = rest.strip_prefix(':')?;
    (after.is_empty() || after.starts_with([' ', '\t'])).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_keys_are_found_and_odd_lines_defeat_the_splice() {
        let cases = [
            ("rbac:", Some("rbac")),
            ("rbac: {default: deny}", Some("rbac")),
            ("\"rbac\": x", Some("rbac")),
            ("a:b: c", Some("a:b")),
            ("- rbac", None),
            ("{rbac: x}", None),
            ("rbac", None),
            ("\"r\\x\": 1", None),
        ];
        for (line, expected) in cases {
            assert_eq!(top_level_key(line).as_deref(), expected, "{line}");
        }
        assert!(splice("a: 1\n---\nb: 2\n", "p", &[]).is_none(), "a second document");
    }
}
