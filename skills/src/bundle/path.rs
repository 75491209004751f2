//! The rules for a path inside a skill, for paths that come from elsewhere (an import folder, an
//! archive, an upload) and could otherwise climb out of the folder they are written to.

use crate::folder::MAX_DEPTH;

/// The longest path inside a skill, in bytes (the usual `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// The most characters of a path repeated in a problem.
const MAX_SHOWN_CHARS: usize = 200;

/// Checks a path inside a skill: not empty, relative and `/`-separated, with no empty, `.` or `..`
/// segment, no backslash, NUL or other control character, and inside at most [`MAX_DEPTH`] folders
/// (as `check_dir` walks them). Returns why not, as a problem's message.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is an empty path".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("is longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.starts_with('/') {
        return Err("is an absolute path; a skill's paths are relative".into());
    }
    if path.contains('\\') {
        return Err("holds a backslash; a skill's paths are `/`-separated".into());
    }
    if path.contains('\0') {
        return Err("holds a NUL character".into());
    }
    if path.chars().any(char::is_control) {
        return Err("holds a control character".into());
    }
    let mut segments = 0;
    for segment in path.split('/') {
        segments += 1;
        match segment {
            "" => return Err("has an empty segment (`//` or a trailing `/`)".into()),
            "." | ".." => return Err(format!("has a `{segment}` segment; a skill's paths go only downwards")),
            _ => {}
        }
    }
    if segments > MAX_DEPTH + 1 {
        return Err(format!("is nested more than {MAX_DEPTH} folders deep"));
    }
    Ok(())
}

/// A path as a problem names it: control characters escaped and a long path cut short, so a
/// hostile name cannot forge or flood the lines it is reported on.
pub(crate) fn printable(path: &str) -> String {
    let mut shown = String::new();
    for (index, character) in path.chars().enumerate() {
        if index == MAX_SHOWN_CHARS {
            shown.push('…');
            break;
        }
        if character.is_control() {
            shown.extend(character.escape_default());
        } else {
            shown.push(character);
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_are_accepted() {
        let deepest = vec!["d"; MAX_DEPTH + 1].join("/");
        for path in ["SKILL.md", "scripts/collect.sh", ".hidden", "a/b..c/...d", "ünïcode/файл.md", deepest.as_str()]
        {
            assert_eq!(check_path(path), Ok(()), "{path}");
        }
    }

    #[test]
    fn each_path_that_could_escape_or_confuse_is_refused_with_its_reason() {
        let too_deep = vec!["d"; MAX_DEPTH + 2].join("/");
        let too_long = "a".repeat(MAX_PATH_BYTES + 1);
        let cases = [
            ("", "is an empty path"),
            ("../x", "has a `..` segment; a skill's paths go only downwards"),
            ("a/../../x", "has a `..` segment; a skill's paths go only downwards"),
            ("a/..", "has a `..` segment; a skill's paths go only downwards"),
            ("./a", "has a `.` segment; a skill's paths go only downwards"),
            ("/etc/passwd", "is an absolute path; a skill's paths are relative"),
            ("a\\b", "holds a backslash; a skill's paths are `/`-separated"),
            ("..\\x", "holds a backslash; a skill's paths are `/`-separated"),
            ("a//b", "has an empty segment (`//` or a trailing `/`)"),
            ("a/", "has an empty segment (`//` or a trailing `/`)"),
            ("a\0b", "holds a NUL character"),
            ("a\nb", "holds a control character"),
            ("a\u{1b}[2Jb", "holds a control character"),
            (too_deep.as_str(), "is nested more than 16 folders deep"),
            (too_long.as_str(), "is longer than 4096 bytes"),
        ];
        for (path, reason) in cases {
            assert_eq!(check_path(path), Err(reason.to_string()), "{:?}", path);
        }
    }

    #[test]
    fn a_printed_path_has_no_control_characters_and_is_short() {
        assert_eq!(printable("a\nb\u{1b}c"), "a\\nb\\u{1b}c");
        assert_eq!(printable("a\\b"), "a\\b", "a backslash is shown as it is");
        assert_eq!(printable(&"x".repeat(1000)).chars().count(), MAX_SHOWN_CHARS + 1);
    }
}
