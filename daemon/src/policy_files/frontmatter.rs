//! Markdown with YAML frontmatter: `---`, the YAML, `---`, then a body nobody reads back. Writing
//! is one stable emission; reading splits the text and locates every YAML error at its line in
//! the file, not in the frontmatter.

use serde_yaml_ng::Value;

use super::FileProblem;

/// What opens and closes the frontmatter, each alone on its line.
const DELIMITER: &str = "---";

/// The frontmatter of a file, before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frontmatter<'a> {
    /// The YAML between the delimiters, every line with its line ending.
    pub yaml: &'a str,
    /// The file's line number (1-based) of the YAML's first line: 2.
    pub first_line: usize,
}

/// `---`, `yaml` (which ends with a newline, as serde_yaml_ng writes it), `---`, a blank line and
/// `body`. LF line endings only.
pub fn render(yaml: &str, body: &str) -> String {
    let mut text = String::with_capacity(yaml.len() + body.len() + 10);
    text.push_str(DELIMITER);
    text.push('\n');
    text.push_str(yaml);
    if !yaml.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(DELIMITER);
    text.push_str("\n\n");
    text.push_str(body);
    text
}

/// The YAML text of `value` as every export writes it: serde_yaml_ng's emission, keys in the order
/// the value holds them (profile sections keep the order the profile has: `models` is first match).
pub fn emit(value: &Value) -> Result<String, String> {
    serde_yaml_ng::to_string(value).map_err(|error| format!("cannot write YAML: {error}"))
}

/// Whether two values are the same YAML, key order included (a `Mapping`'s `==` ignores order).
pub fn same_yaml(left: &Value, right: &Value) -> bool {
    match (emit(left), emit(right)) {
        (Ok(left), Ok(right)) => left == right,
        _ => false,
    }
}

/// The frontmatter of `text`: it must open on the first line with `---` and close with a later
/// `---` line (a trailing `\r` is allowed on both). Problems name `file`.
pub fn split<'a>(text: &'a str, file: &str) -> Result<Frontmatter<'a>, FileProblem> {
    let problem = |line: usize, message: &str| FileProblem::at(file, line, None, message.to_string());
    let mut lines = text.split_inclusive('\n');
    let opening = lines.next().unwrap_or_default();
    if opening.trim_end_matches(['\n', '\r']) != DELIMITER {
        return Err(problem(
            1,
            "does not start with a `---` line: the file is YAML frontmatter between `---` lines, then Markdown",
        ));
    }
    let start = opening.len();
    let mut offset = start;
    for line in lines {
        if line.trim_end_matches(['\n', '\r']) == DELIMITER {
            return Ok(Frontmatter { yaml: &text[start..offset], first_line: 2 });
        }
        offset += line.len();
    }
    Err(problem(1, "the frontmatter opened here is never closed with a `---` line"))
}

/// The frontmatter of `text` parsed as YAML, `<<` merges applied.
pub fn parse_value<'a>(text: &'a str, file: &str) -> Result<(Value, Frontmatter<'a>), FileProblem> {
    let frontmatter = split(text, file)?;
    let mut value: Value =
        serde_yaml_ng::from_str(frontmatter.yaml).map_err(|error| yaml_problem(&error, file, frontmatter))?;
    value
        .apply_merge()
        .map_err(|error| FileProblem::at(file, frontmatter.first_line, None, format!("invalid `<<` merge: {error}")))?;
    Ok((value, frontmatter))
}

/// A serde_yaml_ng error (from parsing or from deserializing into a type) at its line in the file.
pub fn yaml_problem(error: &serde_yaml_ng::Error, file: &str, frontmatter: Frontmatter<'_>) -> FileProblem {
    let message = error.to_string();
    match error.location() {
        Some(location) => {
            let suffix = format!(" at line {} column {}", location.line(), location.column());
            let message = message.replacen(&suffix, "", 1);
            let line = frontmatter.first_line + location.line().max(1) - 1;
            FileProblem::at(file, line, Some(location.column().max(1)), message)
        }
        None => FileProblem::at(file, frontmatter.first_line, None, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_file_splits_back_into_its_yaml() {
        let value: Value = serde_yaml_ng::from_str("b: 1\na: [x, \"${secret:key}\"]\n").unwrap();
        let yaml = emit(&value).unwrap();
        let text = render(&yaml, "# Title\n");
        assert!(text.starts_with("---\nb: 1\na:\n- x\n- ${secret:key}\n---\n\n# Title\n"), "{text}");
        let (parsed, frontmatter) = parse_value(&text, "f.md").unwrap();
        assert!(same_yaml(&parsed, &value));
        assert_eq!(frontmatter.yaml, yaml);
        assert_eq!(frontmatter.first_line, 2);
    }

    #[test]
    fn key_order_counts_as_a_difference() {
        let one: Value = serde_yaml_ng::from_str("a: 1\nb: 2\n").unwrap();
        let other: Value = serde_yaml_ng::from_str("b: 2\na: 1\n").unwrap();
        assert_eq!(one, other, "serde_yaml_ng's == ignores the order");
        assert!(!same_yaml(&one, &other));
    }

    #[test]
    fn problems_are_at_their_line_in_the_file() {
        let cases: [(&str, &str); 4] = [
            ("name: bob\n", "f.md:1: does not start with a `---` line"),
            ("---\nname: bob\n", "f.md:1: the frontmatter opened here is never closed"),
            ("---\nname: bob\ntier: [user\n---\n", "f.md:4:1: "),
            ("---\r\nname: bob\r\n  tier: user\r\n---\r\nbody", "f.md:3:7: mapping values are not allowed"),
        ];
        for (text, expected) in cases {
            let problem = parse_value(text, "f.md").unwrap_err().to_string();
            assert!(problem.starts_with(expected), "{text:?}: {problem}");
        }
        let (value, _) = parse_value("---\r\nname: bob\r\n---\r\n", "f.md").unwrap();
        assert_eq!(value, serde_yaml_ng::from_str::<Value>("name: bob").unwrap(), "CRLF is read");
        let (value, _) = parse_value("---\n---\n", "f.md").unwrap();
        assert_eq!(value, Value::Null, "an empty frontmatter is null");
    }
}
