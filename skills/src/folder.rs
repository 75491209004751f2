//! A skill folder on disk: its `SKILL.md` and every file beside it, walked without following links.

use std::path::Path;

use crate::Problem;
use crate::manifest::{MAX_SKILL_MD_BYTES, Manifest, parse_skill_md};
use crate::signature::SIGNATURE_FILE;

/// The most files a skill may hold, `SKILL.md` included.
pub const MAX_FILES: usize = 1000;
/// The largest single file.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// The most bytes a skill may hold in all.
pub const MAX_TOTAL_BYTES: u64 = 50 * 1024 * 1024;

/// Deeper than any real skill; bounds the walk. A file sits inside at most this many folders.
pub(crate) const MAX_DEPTH: usize = 16;

/// One file of a skill, by its path relative to the folder (`/`-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillFile {
    pub path: String,
    pub size: u64,
}

/// A checked skill folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    pub manifest: Manifest,
    /// Every file, `SKILL.md` included, sorted by path. The signature file at the root
    /// ([`SIGNATURE_FILE`]) is not content and is not listed or counted.
    pub files: Vec<SkillFile>,
}

impl Skill {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|file| file.size).sum()
    }
}

/// Checks the folder `dir`: a `SKILL.md` whose `name` is the folder's name, only regular files and
/// folders (no symlinks, devices or sockets), names that are UTF-8 and not hidden traversal tricks,
/// and the limits on count and size. Every problem found is returned.
pub fn check_dir(dir: &Path) -> Result<Skill, Vec<Problem>> {
    let label = dir.display().to_string();
    let problem = |file: String, message: String| Problem { file, line: 0, message };
    let folder = match dir.file_name().and_then(|name| name.to_str()) {
        Some(name) => name.to_string(),
        None => return Err(vec![problem(label, "is not a folder with a UTF-8 name".into())]),
    };
    match std::fs::symlink_metadata(dir) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => return Err(vec![problem(label, "is not a folder (a symlink is not followed)".into())]),
        Err(error) => return Err(vec![problem(label, format!("cannot be read: {error}"))]),
    }
    let mut problems = Vec::new();
    let mut files = Vec::new();
    walk(dir, "", 0, &label, &mut files, &mut problems);
    files.sort_by(|a: &SkillFile, b: &SkillFile| a.path.cmp(&b.path));
    if files.len() > MAX_FILES {
        problems
            .push(problem(label.clone(), format!("holds {} files; a skill holds at most {MAX_FILES}", files.len())));
    }
    let total: u64 = files.iter().map(|file| file.size).sum();
    if total > MAX_TOTAL_BYTES {
        problems.push(problem(
            label.clone(),
            format!("holds {total} bytes; a skill holds at most {} MiB", MAX_TOTAL_BYTES >> 20),
        ));
    }
    let skill_md = dir.join("SKILL.md");
    let skill_label = skill_md.display().to_string();
    let manifest = match files.iter().find(|file| file.path == "SKILL.md") {
        None => {
            problems.push(problem(label.clone(), "has no SKILL.md".into()));
            None
        }
        Some(file) if file.size > MAX_SKILL_MD_BYTES as u64 => None,
        Some(_) => match std::fs::read(&skill_md) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => match parse_skill_md(&text, &skill_label, Some(&folder)) {
                    Ok(manifest) => Some(manifest),
                    Err(found) => {
                        problems.extend(found);
                        None
                    }
                },
                Err(_) => {
                    problems.push(problem(skill_label, "is not UTF-8 text".into()));
                    None
                }
            },
            Err(error) => {
                problems.push(problem(skill_label, format!("cannot be read: {error}")));
                None
            }
        },
    };
    match manifest {
        Some(manifest) if problems.is_empty() => Ok(Skill { manifest, files }),
        _ => Err(problems),
    }
}

fn walk(dir: &Path, prefix: &str, depth: usize, label: &str, files: &mut Vec<SkillFile>, problems: &mut Vec<Problem>) {
    let at = |relative: &str| format!("{label}/{relative}");
    if depth > MAX_DEPTH {
        problems.push(Problem {
            file: at(prefix),
            line: 0,
            message: format!("is nested more than {MAX_DEPTH} folders deep"),
        });
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            problems.push(Problem { file: label.to_string(), line: 0, message: format!("cannot be read: {error}") });
            return;
        }
    };
    for entry in entries {
        // Once over the count, the rest is not walked: the problem is reported once.
        if files.len() > MAX_FILES {
            return;
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                problems.push(Problem {
                    file: label.to_string(),
                    line: 0,
                    message: format!("cannot be read: {error}"),
                });
                continue;
            }
        };
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            problems.push(Problem {
                file: at(prefix),
                line: 0,
                message: "holds a file whose name is not UTF-8".into(),
            });
            continue;
        };
        let relative = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        if name == "." || name == ".." || name.contains(['\\', '\0']) {
            problems.push(Problem { file: at(&relative), line: 0, message: "is not an acceptable file name".into() });
            continue;
        }
        let metadata = match std::fs::symlink_metadata(entry.path()) {
            Ok(metadata) => metadata,
            Err(error) => {
                problems.push(Problem { file: at(&relative), line: 0, message: format!("cannot be read: {error}") });
                continue;
            }
        };
        let kind = metadata.file_type();
        if kind.is_symlink() {
            problems.push(Problem {
                file: at(&relative),
                line: 0,
                message: "is a symlink; a skill holds only regular files".into(),
            });
        } else if kind.is_dir() {
            walk(&entry.path(), &relative, depth + 1, label, files, problems);
        } else if !kind.is_file() {
            problems.push(Problem { file: at(&relative), line: 0, message: "is not a regular file".into() });
        } else if depth == 0 && name == SIGNATURE_FILE {
            // Signs the content rather than being part of it; `load_dir` reads it with its own bound.
        } else if metadata.len() > MAX_FILE_BYTES {
            problems.push(Problem {
                file: at(&relative),
                line: 0,
                message: format!(
                    "is {} bytes; a file of a skill is at most {} MiB",
                    metadata.len(),
                    MAX_FILE_BYTES >> 20
                ),
            });
        } else {
            files.push(SkillFile { path: relative, size: metadata.len() });
        }
    }
}
