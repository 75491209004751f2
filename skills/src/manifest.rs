//! `SKILL.md`: the frontmatter between two `---` lines, read key by key from the YAML event stream,
//! then the Markdown body.

use std::collections::BTreeMap;

use saphyr_parser::{Event, Parser};

use crate::Problem;

/// The longest skill name (the Agent Skills limit).
pub const MAX_NAME_LEN: usize = 64;
/// The longest description.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// The longest `compatibility` text.
pub const MAX_COMPATIBILITY_LEN: usize = 500;
/// The largest frontmatter: real ones are a few hundred bytes.
pub const MAX_FRONTMATTER_BYTES: usize = 16 * 1024;
/// The largest `SKILL.md`.
pub const MAX_SKILL_MD_BYTES: usize = 1024 * 1024;

const KEYS: [&str; 6] = ["name", "description", "license", "compatibility", "metadata", "allowed-tools"];

/// A checked `SKILL.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub description: String,
    pub license: Option<String>,
    pub compatibility: Option<String>,
    /// `metadata`: string keys to string values (`version` here versions the skill).
    pub metadata: BTreeMap<String, String>,
    /// `allowed-tools`: the space-separated tools the skill may use, as written.
    pub allowed_tools: Option<String>,
    /// The Markdown after the frontmatter.
    pub body: String,
}

/// Checks a skill name: 1–64 lowercase letters, digits and `-`, not starting or ending with `-`,
/// no `--`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("a skill name is 1 to {MAX_NAME_LEN} characters"));
    }
    if !name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-') {
        return Err("a skill name is lowercase letters, digits and `-`".to_string());
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err("a skill name does not start or end with `-` or contain `--`".to_string());
    }
    Ok(())
}

/// A top-level entry: key, value, and the key's line in the frontmatter (1-based).
type Entry = (String, Value, usize);

/// Where and why the frontmatter could not be read: its line in the frontmatter, and the message.
type Refusal = (usize, String);

/// A value as read from the frontmatter, with the line of its key.
enum Value {
    Text(String),
    Map(Vec<(String, String, usize)>),
}

/// Parses `SKILL.md` (`file` is what problems name). When `folder` is given, `name` must equal it.
pub fn parse_skill_md(text: &str, file: &str, folder: Option<&str>) -> Result<Manifest, Vec<Problem>> {
    let problem = |line: usize, message: String| Problem { file: file.to_string(), line, message };
    if text.len() > MAX_SKILL_MD_BYTES {
        return Err(vec![problem(0, format!("is larger than {} KiB", MAX_SKILL_MD_BYTES / 1024))]);
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    if lines.next().map(|line| line.trim_end_matches(['\r', '\n'])) != Some("---") {
        return Err(vec![problem(1, "must start with a `---` line opening the YAML frontmatter".into())]);
    }
    let mut frontmatter = String::new();
    let mut closed_at = None;
    for (index, line) in lines.by_ref().enumerate() {
        if line.trim_end_matches(['\r', '\n']) == "---" {
            closed_at = Some(index + 2);
            break;
        }
        frontmatter.push_str(line);
        if frontmatter.len() > MAX_FRONTMATTER_BYTES {
            return Err(vec![problem(
                1,
                format!("the frontmatter is larger than {} KiB", MAX_FRONTMATTER_BYTES / 1024),
            )]);
        }
    }
    if closed_at.is_none() {
        return Err(vec![problem(1, "the frontmatter is not closed by a `---` line".into())]);
    }
    let body: String = lines.collect();
    // Frontmatter line 1 is the file's line 2.
    let entries = read_entries(&frontmatter).map_err(|(line, message)| vec![problem(line + 1, message)])?;
    let mut problems = Vec::new();
    let take = |key: &str| entries.iter().find(|(name, _, _)| name == key);
    for (key, _, line) in &entries {
        if !KEYS.contains(&key.as_str()) {
            problems.push(problem(line + 1, format!("unknown key `{key}`; expected one of: {}", KEYS.join(", "))));
        }
    }
    let text_of = |key: &str, problems: &mut Vec<Problem>, entry: Option<&Entry>| match entry {
        Some((_, Value::Text(text), _)) => Some(text.clone()),
        Some((_, Value::Map(_), line)) => {
            problems.push(problem(line + 1, format!("`{key}` must be text, not a mapping")));
            None
        }
        None => None,
    };
    let name = text_of("name", &mut problems, take("name"));
    let name_line = take("name").map_or(1, |(_, _, line)| line + 1);
    match &name {
        None if take("name").is_none() => problems.push(problem(1, "needs `name`".into())),
        None => {}
        Some(name) => {
            if let Err(reason) = check_name(name) {
                problems.push(problem(name_line, format!("name `{name}`: {reason}")));
            } else if let Some(folder) = folder
                && folder != name
            {
                problems.push(problem(name_line, format!("name `{name}` must equal its folder's name `{folder}`")));
            }
        }
    }
    let description = text_of("description", &mut problems, take("description"));
    let description_line = take("description").map_or(1, |(_, _, line)| line + 1);
    match &description {
        None if take("description").is_none() => {
            problems.push(problem(1, "needs `description`: what the skill does and when to use it".into()))
        }
        Some(text) if text.trim().is_empty() => {
            problems.push(problem(description_line, "`description` is empty".into()))
        }
        Some(text) if text.chars().count() > MAX_DESCRIPTION_LEN => problems
            .push(problem(description_line, format!("`description` is longer than {MAX_DESCRIPTION_LEN} characters"))),
        _ => {}
    }
    let license = text_of("license", &mut problems, take("license"));
    let compatibility = text_of("compatibility", &mut problems, take("compatibility"));
    if let Some(text) = &compatibility
        && text.chars().count() > MAX_COMPATIBILITY_LEN
    {
        let line = take("compatibility").map_or(1, |(_, _, line)| line + 1);
        problems.push(problem(line, format!("`compatibility` is longer than {MAX_COMPATIBILITY_LEN} characters")));
    }
    let allowed_tools = text_of("allowed-tools", &mut problems, take("allowed-tools"));
    let mut metadata = BTreeMap::new();
    match take("metadata") {
        Some((_, Value::Map(pairs), _)) => {
            for (key, value, _) in pairs {
                metadata.insert(key.clone(), value.clone());
            }
        }
        Some((_, Value::Text(_), line)) => {
            problems.push(problem(line + 1, "`metadata` must be a mapping of text keys to text values".into()))
        }
        None => {}
    }
    if !problems.is_empty() {
        problems.sort_by_key(|problem| problem.line);
        return Err(problems);
    }
    match (name, description) {
        (Some(name), Some(description)) => {
            Ok(Manifest { name, description, license, compatibility, metadata, allowed_tools, body })
        }
        _ => Err(vec![problem(1, "needs `name` and `description`".into())]),
    }
}

/// The frontmatter's top-level entries with their 1-based line in the frontmatter, or the first
/// problem (its line and message).
fn read_entries(frontmatter: &str) -> Result<Vec<Entry>, Refusal> {
    let mut events = Vec::new();
    for result in Parser::new_from_str(frontmatter) {
        match result {
            Ok((event, span)) => events.push((event, span.start.line())),
            Err(error) => return Err((error.marker().line(), format!("not valid YAML: {}", error.info()))),
        }
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut iter = events.into_iter().peekable();
    // StreamStart, DocumentStart, then the mapping (or nothing at all).
    let mut started = false;
    while let Some((event, line)) = iter.next() {
        match event {
            Event::StreamStart | Event::DocumentStart(_) | Event::Nothing => {}
            Event::StreamEnd | Event::DocumentEnd if started => break,
            Event::StreamEnd | Event::DocumentEnd => return Err((1, "the frontmatter is empty".into())),
            Event::MappingStart(anchor, tag) if !started => {
                if anchor != 0 || tag.is_some() {
                    return Err((line, "anchors, aliases and tags are not allowed in a skill's frontmatter".into()));
                }
                started = true;
            }
            _ if !started => return Err((line, "the frontmatter must be a mapping of keys".into())),
            Event::MappingEnd => {
                if let Some((Event::DocumentEnd | Event::StreamEnd, _)) = iter.peek() {
                    return Ok(entries);
                }
                return Err((line, "only one YAML document is allowed in the frontmatter".into()));
            }
            Event::Scalar(key, _, anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    return Err((line, "anchors, aliases and tags are not allowed in a skill's frontmatter".into()));
                }
                let key = key.into_owned();
                if entries.iter().any(|(existing, _, _)| *existing == key) {
                    return Err((line, format!("`{key}` is given twice")));
                }
                let value = read_value(&mut iter, &key)?;
                entries.push((key, value, line));
            }
            _ => return Err((line, "keys must be text".into())),
        }
    }
    Ok(entries)
}

fn read_value(
    iter: &mut std::iter::Peekable<std::vec::IntoIter<(Event<'_>, usize)>>,
    key: &str,
) -> Result<Value, Refusal> {
    let refused =
        |line: usize| (line, "anchors, aliases and tags are not allowed in a skill's frontmatter".to_string());
    match iter.next() {
        Some((Event::Scalar(value, _, anchor, tag), line)) => {
            if anchor != 0 || tag.is_some() {
                return Err(refused(line));
            }
            Ok(Value::Text(value.into_owned()))
        }
        Some((Event::MappingStart(anchor, tag), line)) => {
            if anchor != 0 || tag.is_some() {
                return Err(refused(line));
            }
            let mut pairs: Vec<(String, String, usize)> = Vec::new();
            loop {
                match iter.next() {
                    Some((Event::MappingEnd, _)) => return Ok(Value::Map(pairs)),
                    Some((Event::Scalar(name, _, 0, None), line)) => {
                        let name = name.into_owned();
                        let value = match iter.next() {
                            Some((Event::Scalar(value, _, 0, None), _)) => value.into_owned(),
                            Some((Event::Alias(_), line)) => return Err(refused(line)),
                            Some((_, line)) => {
                                return Err((line, format!("`{key}.{name}` must be text (nesting is not allowed)")));
                            }
                            None => return Err((line, format!("`{key}.{name}` has no value"))),
                        };
                        if pairs.iter().any(|(existing, _, _)| *existing == name) {
                            return Err((line, format!("`{key}.{name}` is given twice")));
                        }
                        pairs.push((name, value, line));
                    }
                    Some((Event::Alias(_) | Event::Scalar(..), line)) => return Err(refused(line)),
                    Some((_, line)) => return Err((line, format!("`{key}` keys must be text"))),
                    None => return Err((line, format!("`{key}` is not closed"))),
                }
            }
        }
        Some((Event::Alias(_), line)) => Err(refused(line)),
        Some((Event::SequenceStart(..), line)) => Err((line, format!("`{key}` must be text, not a list"))),
        Some((_, line)) => Err((line, format!("`{key}` has no value"))),
        None => Err((1, format!("`{key}` has no value"))),
    }
}
