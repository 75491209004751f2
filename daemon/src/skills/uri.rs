//! `skill://` URIs: `skill://{name}/SKILL.md` for a skill, `skill://{name}/{path}` for each of
//! its files, `skill://{name}` and `skill://{name}/{folder}` for its directories. Path segments
//! are percent-encoded beyond the unreserved characters, so any stored path makes a valid URI and
//! decoding gives it back.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

pub const SCHEME: &str = "skill://";

/// Everything but RFC 3986's unreserved characters is encoded in a segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The URI of `path` in skill `name` (`SKILL.md` for the skill itself).
pub fn file_uri(name: &str, path: &str) -> String {
    let encoded: Vec<String> =
        path.split('/').map(|segment| utf8_percent_encode(segment, SEGMENT).to_string()).collect();
    format!("{SCHEME}{name}/{}", encoded.join("/"))
}

/// The URI of a directory of skill `name`: the skill's root when `path` is empty.
pub fn directory_uri(name: &str, path: &str) -> String {
    if path.is_empty() { format!("{SCHEME}{name}") } else { file_uri(name, path) }
}

/// The skill's own URI: its SKILL.md.
pub fn skill_uri(name: &str) -> String {
    file_uri(name, "SKILL.md")
}

/// A `skill://` URI taken apart: the skill's name and the decoded path (empty for the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillUri {
    pub name: String,
    pub path: String,
}

/// Parses a `skill://` URI; `None` when it is not one of ours (another scheme, a query or fragment,
/// an empty, `.` or `..` segment, or a segment that does not decode to UTF-8).
pub fn parse(uri: &str) -> Option<SkillUri> {
    let rest = uri.strip_prefix(SCHEME)?;
    if rest.contains(['?', '#']) {
        return None;
    }
    let (name, path) = match rest.split_once('/') {
        Some((name, path)) => (name, path),
        None => (rest, ""),
    };
    castellan_skills::check_name(name).ok()?;
    if path.is_empty() {
        return Some(SkillUri { name: name.to_string(), path: String::new() });
    }
    let mut segments = Vec::new();
    for segment in path.split('/') {
        let decoded = percent_decode_str(segment).decode_utf8().ok()?;
        if decoded.is_empty() || decoded == "." || decoded == ".." || decoded.contains(['/', '\\', '\0']) {
            return None;
        }
        segments.push(decoded.into_owned());
    }
    Some(SkillUri { name: name.to_string(), path: segments.join("/") })
}

/// What a file is, by its extension: what `mimeType` says in listings and reads.
pub fn mime_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, extension)| extension.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "md" | "markdown" => "text/markdown",
        "txt" => "text/plain",
        "py" => "text/x-python",
        "sh" => "text/x-shellscript",
        "js" | "mjs" => "text/javascript",
        "ts" => "text/x-typescript",
        "json" => "application/json",
        "yaml" | "yml" => "application/yaml",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_refuse_what_is_not_a_plain_path() {
        let cases = [("pdf", "SKILL.md"), ("pdf", "references/FORMS.md"), ("pdf", "a b/ü%.txt")];
        for (name, path) in cases {
            let uri = file_uri(name, path);
            assert_eq!(parse(&uri), Some(SkillUri { name: name.into(), path: path.into() }), "{uri}");
        }
        assert_eq!(file_uri("pdf", "a b/x"), "skill://pdf/a%20b/x");
        assert_eq!(parse("skill://pdf"), Some(SkillUri { name: "pdf".into(), path: String::new() }));
        for bad in [
            "file:///etc/passwd",
            "skill://pdf/../x",
            "skill://pdf/%2e%2e/x",
            "skill://pdf/a%2fb",
            "skill://pdf//x",
            "skill://PDF/SKILL.md",
            "skill://pdf/SKILL.md?x=1",
            "skill://pdf/%ff",
            "skill:///SKILL.md",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
