//! The skill format: real-world shapes accepted, every defect refused with its file and line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use castellan_skills::{MAX_FILE_BYTES, check_dir, parse_skill_md};

fn lines(text: &str, folder: &str) -> Vec<String> {
    match parse_skill_md(text, "SKILL.md", Some(folder)) {
        Ok(manifest) => panic!("expected problems, parsed {manifest:?}"),
        Err(problems) => problems.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_skill_in_the_agent_skills_shape_parses_with_every_field() {
    let text = "---\nname: pdf-processing\ndescription: Extract text and tables from PDF files. Use when working with PDFs.\nlicense: Apache-2.0\ncompatibility: Requires python3 and pdfplumber\nmetadata:\n  author: platform-team\n  version: \"1.2.0\"\nallowed-tools: Bash(python3:*) Read\n---\n\n# PDF processing\n\nRun `scripts/extract.py`.\n";
    let manifest = parse_skill_md(text, "SKILL.md", Some("pdf-processing")).expect("valid");
    assert_eq!(manifest.name, "pdf-processing");
    assert_eq!(manifest.license.as_deref(), Some("Apache-2.0"));
    assert_eq!(manifest.metadata.get("version").map(String::as_str), Some("1.2.0"));
    assert_eq!(manifest.allowed_tools.as_deref(), Some("Bash(python3:*) Read"));
    assert!(manifest.body.starts_with("\n# PDF processing"), "{:?}", manifest.body);
    // A multi-line description in a block scalar, CRLF line ends and a BOM are fine too.
    let folded =
        "\u{feff}---\r\nname: notes\r\ndescription: >\r\n  Keeps notes.\r\n  Use it for notes.\r\n---\r\nbody\r\n";
    assert_eq!(
        parse_skill_md(folded, "SKILL.md", Some("notes")).expect("valid").description,
        "Keeps notes. Use it for notes.\n"
    );
}

#[test]
fn each_defect_is_named_at_its_line() {
    assert_eq!(lines("name: x\n", "x"), ["SKILL.md:1: must start with a `---` line opening the YAML frontmatter"]);
    assert_eq!(lines("---\nname: x\n", "x"), ["SKILL.md:1: the frontmatter is not closed by a `---` line"]);
    assert_eq!(
        lines("---\nname: Bad_Name\ndescription: d\nversion: 2\n---\n", "Bad_Name"),
        [
            "SKILL.md:2: name `Bad_Name`: a skill name is lowercase letters, digits and `-`",
            "SKILL.md:4: unknown key `version`; expected one of: name, description, license, compatibility, metadata, allowed-tools",
        ]
    );
    assert_eq!(
        lines("---\nname: other\ndescription: d\n---\n", "folder"),
        ["SKILL.md:2: name `other` must equal its folder's name `folder`"]
    );
    assert_eq!(lines("---\nname: a--b\ndescription: d\n---\n", "a--b").len(), 1);
    assert_eq!(
        lines("---\nname: x\n---\n", "x"),
        ["SKILL.md:1: needs `description`: what the skill does and when to use it"]
    );
    let long = format!("---\nname: x\ndescription: {}\n---\n", "d".repeat(1025));
    assert_eq!(lines(&long, "x"), ["SKILL.md:3: `description` is longer than 1024 characters"]);
    assert_eq!(
        lines("---\nname: x\ndescription: d\nmetadata:\n  nested: { deep: 1 }\n---\n", "x"),
        ["SKILL.md:5: `metadata.nested` must be text (nesting is not allowed)"]
    );
    assert_eq!(lines("---\nname: x\nname: y\n---\n", "x"), ["SKILL.md:3: `name` is given twice"]);
    assert!(lines("---\nname: [x\n---\n", "x")[0].starts_with("SKILL.md:"), "a syntax error has a line");
}

#[test]
fn anchors_aliases_and_big_frontmatter_are_refused_before_anything_grows() {
    let bomb = "---\nname: x\ndescription: &a lol\nmetadata:\n  b: *a\n---\n";
    assert_eq!(lines(bomb, "x"), ["SKILL.md:3: anchors, aliases and tags are not allowed in a skill's frontmatter"]);
    let laughs = format!(
        "---\nname: x\ndescription: d\nmetadata:\n{}---\n",
        (0..2000).map(|i| format!("  k{i}: v\n")).collect::<String>()
    );
    assert_eq!(lines(&laughs, "x"), ["SKILL.md:1: the frontmatter is larger than 16 KiB"]);
    assert_eq!(lines("---\nname: !!str x\ndescription: d\n---\n", "x").len(), 1);
}

struct Folder(PathBuf);

impl Folder {
    fn new(name: &str) -> Folder {
        let root = std::env::temp_dir().join(format!("castellan-skill-{}-{}", std::process::id(), rand_suffix()));
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Folder(dir)
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.0.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    hasher.finish()
}

#[test]
fn a_folder_with_scripts_and_references_is_checked_whole() {
    let folder = Folder::new("release-notes");
    folder.write("SKILL.md", "---\nname: release-notes\ndescription: Write release notes from the changelog.\n---\nSee references/style.md.\n");
    folder.write("scripts/collect.sh", "#!/bin/sh\ngit log --oneline\n");
    folder.write("references/style.md", "# Style\n");
    let skill = check_dir(&folder.0).expect("valid");
    let paths: Vec<&str> = skill.files.iter().map(|file| file.path.as_str()).collect();
    assert_eq!(paths, ["SKILL.md", "references/style.md", "scripts/collect.sh"]);
    assert_eq!(skill.manifest.name, "release-notes");
}

#[test]
fn symlinks_oversized_files_and_a_missing_skill_md_are_refused() {
    let folder = Folder::new("linky");
    folder.write("SKILL.md", "---\nname: linky\ndescription: d\n---\n");
    std::os::unix::fs::symlink("/etc/passwd", folder.0.join("passwd")).unwrap();
    let big = std::fs::File::create(folder.0.join("big.bin")).unwrap();
    big.set_len(MAX_FILE_BYTES + 1).unwrap();
    let problems: Vec<String> = check_dir(&folder.0).unwrap_err().iter().map(ToString::to_string).collect();
    let label = folder.0.display().to_string();
    assert!(
        problems.contains(&format!("{label}/passwd: is a symlink; a skill holds only regular files")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|line| line.starts_with(&format!("{label}/big.bin: is 10485761 bytes"))),
        "{problems:?}"
    );

    let empty = Folder::new("empty");
    let problems: Vec<String> = check_dir(&empty.0).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(problems, [format!("{}: has no SKILL.md", empty.0.display())]);
    assert!(check_dir(Path::new("/nonexistent/skill")).is_err());
}
