//! `castellan skills check`: the format, from the command line.

use integration_tests::{TempDir, castellan_binary};

#[test]
fn skills_check_passes_a_valid_folder_and_names_each_problem_of_a_broken_one() {
    let dir = TempDir::new();
    let good = dir.0.join("release-notes");
    std::fs::create_dir_all(good.join("scripts")).expect("mkdir");
    std::fs::write(good.join("SKILL.md"), "---\nname: release-notes\ndescription: Write release notes.\n---\nBody.\n")
        .expect("write");
    std::fs::write(good.join("scripts/collect.sh"), "#!/bin/sh\n").expect("write");
    let bad = dir.0.join("broken");
    std::fs::create_dir_all(&bad).expect("mkdir");
    std::fs::write(bad.join("SKILL.md"), "---\nname: other-name\ndescription: d\ncolour: red\n---\n").expect("write");
    std::os::unix::fs::symlink("/etc/hostname", bad.join("hostname")).expect("symlink");

    let checked =
        std::process::Command::new(castellan_binary()).args(["skills", "check"]).arg(&good).output().expect("runs");
    let printed = String::from_utf8_lossy(&checked.stdout).to_string();
    assert!(checked.status.success(), "{printed}");
    assert_eq!(printed.trim(), format!("{}: ok (release-notes, 2 files, {} bytes)", good.display(), 68 + 10));

    let checked = std::process::Command::new(castellan_binary())
        .args(["skills", "check"])
        .arg(&good)
        .arg(&bad)
        .output()
        .expect("runs");
    let printed = String::from_utf8_lossy(&checked.stdout).to_string();
    assert_eq!(checked.status.code(), Some(1), "{printed}");
    let skill_md = bad.join("SKILL.md").display().to_string();
    for expected in [
        format!("{}/hostname: is a symlink; a skill holds only regular files", bad.display()),
        format!("{skill_md}:2: name `other-name` must equal its folder's name `broken`"),
        format!("{skill_md}:4: unknown key `colour`"),
    ] {
        assert!(printed.contains(&expected), "missing {expected:?} in:\n{printed}");
    }
}
