//! Reading an import folder: every file read and checked before anything is applied. Problems
//! name `FILE:LINE` (the frontmatter's YAML errors at their line in the file); one malformed file
//! makes the whole import refuse.

use std::path::{Path, PathBuf};

use castellan_skills::Bundle;
use serde_yaml_ng::Value;

use super::FileProblem;
use super::frontmatter::{Frontmatter, parse_value, split, yaml_problem};
use super::layout::{
    POLICY_DIR, PolicySection, SKILLS_DIR, USERS_DIR, UserFrontmatter, section_of_file, user_file_name,
};

/// The largest policy or user file read (a profile is at most 16 MiB; real ones are kilobytes).
const MAX_FILE_BYTES: u64 = castellan_config::MAX_PROFILE_BYTES as u64;

/// One policy file: the profile section it holds.
#[derive(Debug, Clone)]
pub struct PolicyFile {
    pub section: &'static PolicySection,
    /// The file's path, as problems name it.
    pub label: String,
    /// The frontmatter as YAML, `<<` merges applied.
    pub value: Value,
    /// The frontmatter's text and the file line it starts on, to locate the profile's problems.
    pub yaml: String,
    pub first_line: usize,
}

/// One user file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFile {
    pub label: String,
    pub user: UserFrontmatter,
}

/// One skill folder, read whole.
#[derive(Debug, Clone)]
pub struct SkillFolder {
    pub label: String,
    pub bundle: Bundle,
}

/// Everything an import folder holds, checked. Policy files in `POLICY_SECTIONS` order, users and
/// skills by name.
#[derive(Debug, Clone, Default)]
pub struct ImportSet {
    pub policy: Vec<PolicyFile>,
    pub users: Vec<UserFile>,
    pub skills: Vec<SkillFolder>,
}

/// Reads the folder `dir`. Files and folders whose name starts with `.` (`.git`, `.gitkeep`) and
/// entries at the root other than `policy/`, `users/` and `skills/` are not read.
pub fn read_folder(dir: &Path) -> Result<ImportSet, Vec<FileProblem>> {
    let shown = dir.display().to_string();
    if !dir.is_dir() {
        return Err(vec![FileProblem::whole(&shown, "is not a folder".into())]);
    }
    let present = [POLICY_DIR, USERS_DIR, SKILLS_DIR].iter().filter(|name| dir.join(name).is_dir()).count();
    if present == 0 {
        return Err(vec![FileProblem::whole(
            &shown,
            format!(
                "holds no {POLICY_DIR}/, {USERS_DIR}/ or {SKILLS_DIR}/ folder: is it a folder `castellan export` wrote?"
            ),
        )]);
    }
    let mut problems = Vec::new();
    let mut set = ImportSet::default();
    for (path, label) in entries(&dir.join(POLICY_DIR), &mut problems) {
        match read_policy_file(&path, &label) {
            Ok(file) => set.policy.push(file),
            Err(problem) => problems.push(problem),
        }
    }
    set.policy.sort_by_key(|file| super::layout::POLICY_SECTIONS.iter().position(|section| section == file.section));
    for (path, label) in entries(&dir.join(USERS_DIR), &mut problems) {
        match read_user_file(&path, &label) {
            Ok(file) => set.users.push(file),
            Err(problem) => problems.push(problem),
        }
    }
    set.users.sort_by(|left, right| left.user.name.cmp(&right.user.name));
    for (path, label) in entries(&dir.join(SKILLS_DIR), &mut problems) {
        match read_skill_folder(&path, &label) {
            Ok(folder) => set.skills.push(folder),
            Err(found) => problems.extend(found),
        }
    }
    set.skills.sort_by(|left, right| left.bundle.manifest.name.cmp(&right.bundle.manifest.name));
    if problems.is_empty() { Ok(set) } else { Err(problems) }
}

/// The entries of `folder` (none when it is missing), sorted, dot entries left out, with the label
/// problems give them.
fn entries(folder: &Path, problems: &mut Vec<FileProblem>) -> Vec<(PathBuf, String)> {
    let listing = match std::fs::read_dir(folder) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => {
            problems.push(FileProblem::whole(&folder.display().to_string(), format!("cannot be read: {error}")));
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    for entry in listing {
        match entry {
            Ok(entry) if entry.file_name().to_string_lossy().starts_with('.') => {}
            Ok(entry) => found.push(entry.path()),
            Err(error) => {
                problems.push(FileProblem::whole(&folder.display().to_string(), format!("cannot be read: {error}")));
            }
        }
    }
    found.sort();
    found.into_iter().map(|path| (path.clone(), path.display().to_string())).collect()
}

/// The text of a regular file (a link is not followed), bounded.
fn read_text(path: &Path, label: &str) -> Result<String, FileProblem> {
    let metadata = std::fs::symlink_metadata(path)
        .map_err(|error| FileProblem::whole(label, format!("cannot be read: {error}")))?;
    if !metadata.is_file() {
        return Err(FileProblem::whole(label, "is not a regular file (a link is not followed)".into()));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(FileProblem::whole(label, format!("is larger than {} MiB", MAX_FILE_BYTES >> 20)));
    }
    let bytes = std::fs::read(path).map_err(|error| FileProblem::whole(label, format!("cannot be read: {error}")))?;
    String::from_utf8(bytes).map_err(|_| FileProblem::whole(label, "is not UTF-8 text".into()))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

fn read_policy_file(path: &Path, label: &str) -> Result<PolicyFile, FileProblem> {
    let Some(section) = section_of_file(&file_name(path)) else {
        let known: Vec<String> =
            super::layout::POLICY_SECTIONS.iter().map(|section| format!("{}.md", section.stem)).collect();
        return Err(FileProblem::whole(label, format!("is not a policy file: expected one of {}", known.join(", "))));
    };
    let text = read_text(path, label)?;
    let (value, frontmatter) = parse_value(&text, label)?;
    Ok(PolicyFile {
        section,
        label: label.to_string(),
        value,
        yaml: frontmatter.yaml.to_string(),
        first_line: frontmatter.first_line,
    })
}

fn read_user_file(path: &Path, label: &str) -> Result<UserFile, FileProblem> {
    let text = read_text(path, label)?;
    let frontmatter: Frontmatter = split(&text, label)?;
    let user: UserFrontmatter =
        serde_yaml_ng::from_str(frontmatter.yaml).map_err(|error| yaml_problem(&error, label, frontmatter))?;
    let at_name = || {
        let line = frontmatter.yaml.lines().position(|line| line.starts_with("name:")).unwrap_or(0);
        frontmatter.first_line + line
    };
    if user.name.is_empty() || user.name.chars().count() > 128 || user.name.chars().any(char::is_control) {
        return Err(FileProblem::at(
            label,
            at_name(),
            None,
            "name: a user name is 1 to 128 printable characters".into(),
        ));
    }
    let expected = user_file_name(&user.name);
    if file_name(path) != expected {
        return Err(FileProblem::at(
            label,
            at_name(),
            None,
            format!("name: the file of user {:?} is named {expected}", user.name),
        ));
    }
    Ok(UserFile { label: label.to_string(), user })
}

fn read_skill_folder(path: &Path, label: &str) -> Result<SkillFolder, Vec<FileProblem>> {
    let is_folder = std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.is_dir());
    if !is_folder {
        return Err(vec![FileProblem::whole(label, "is not a skill folder (a link is not followed)".into())]);
    }
    let bundle = castellan_skills::load_dir(path).map_err(|problems| {
        problems
            .into_iter()
            .map(|problem| FileProblem {
                file: problem.file,
                line: (problem.line > 0).then_some(problem.line),
                col: None,
                message: problem.message,
            })
            .collect::<Vec<_>>()
    })?;
    Ok(SkillFolder { label: label.to_string(), bundle })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Folder(PathBuf);

    impl Folder {
        fn new() -> Folder {
            let path = std::env::temp_dir().join(format!("castellan-read-{}", rand::random::<u64>()));
            std::fs::create_dir_all(&path).unwrap();
            Folder(path)
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.0.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        fn problems(&self) -> Vec<String> {
            let problems = read_folder(&self.0).unwrap_err();
            problems.iter().map(|problem| problem.to_string().replace(&format!("{}/", self.0.display()), "")).collect()
        }
    }

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_folder_reads_into_sections_users_and_skills() {
        let folder = Folder::new();
        folder.write("policy/rbac.md", "---\ndefault: deny\n---\n# RBAC\n");
        folder.write("policy/.gitkeep", "");
        folder.write("users/bob.md", "---\nname: bob\ntier: user\n---\n");
        folder.write("skills/notes/SKILL.md", "---\nname: notes\ndescription: Notes.\n---\n");
        let set = read_folder(&folder.0).unwrap();
        assert_eq!(set.policy.len(), 1);
        assert_eq!(set.policy[0].section.key, "rbac");
        assert_eq!(set.policy[0].yaml, "default: deny\n");
        assert_eq!(set.users[0].user.name, "bob");
        assert_eq!(set.users[0].user.scopes, Vec::<String>::new());
        assert!(!set.users[0].user.disabled);
        assert_eq!(set.skills[0].bundle.manifest.name, "notes");
    }

    #[test]
    fn every_problem_names_its_file_and_line() {
        let folder = Folder::new();
        folder.write("policy/rbac.md", "---\ndefault: [deny\n---\n");
        folder.write("policy/agents.md", "---\n{}\n---\n");
        folder.write("users/bob.md", "---\nname: bob\ntier: boss\n---\n");
        folder.write("users/carol.md", "---\nname: carol\ntier: user\napi_key: x\n---\n");
        folder.write("users/dave.md", "---\nname: eve\ntier: user\n---\n");
        let problems = folder.problems();
        let expected = [
            "policy/agents.md: is not a policy file",
            "policy/rbac.md:3:1: ",
            "users/bob.md:3:7: tier: unknown variant `boss`",
            "users/carol.md:4:1: unknown field `api_key`",
            "users/dave.md:2: name: the file of user \"eve\" is named eve.md",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for (problem, expected) in problems.iter().zip(expected) {
            assert!(problem.starts_with(expected), "{problem} does not start with {expected}");
        }
    }
}
