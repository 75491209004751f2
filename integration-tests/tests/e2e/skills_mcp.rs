//! Skills over MCP (the skills extension, SEP-2640) on `/mcp`, from outside: the conformance
//! suite's `sep-2640-*` server scenarios (the pre-release CLI pinned as `conformance-next`), and
//! the official Python SDK (1.x) as a client under RBAC, with every content read recorded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use integration_tests::{
    AppOptions, Database, TempDir, TestApp, eventually, repo_root, run_python_client, spawn_app_with,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The skill the suite needs for a full pass: a folder with a subfolder.
const PDF_SKILL_MD: &str = "---
name: pdf-processing
description: Extract text and fill forms in PDF files.
metadata:
  version: \"1.0.0\"
---

# PDF processing

Extract text with `pdftotext`; to fill a form, follow [the forms guide](references/FORMS.md).
";
const PDF_FORMS_MD: &str = "# Forms\n\nList the fields with `pdftk form.pdf dump_data_fields`, then fill them.\n";
const RELEASE_SKILL_MD: &str = "---
name: release-notes
description: Write release notes from the merged pull requests.
---

# Release notes

Group the changes by area.
";

const SCENARIOS: [&str; 3] = ["sep-2640-skills-directory", "sep-2640-skills-enumeration", "sep-2640-skills-manifest"];

/// Checks that must be among those run (and passed), so a fixture the suite cannot exercise (no
/// subfolder, nothing listed) fails here rather than passing on fewer checks.
const REQUIRED_CHECKS: [&str; 12] = [
    "sep-2640-directory-read-subdir-mimetype",
    "sep-2640-directory-read-invalid-params",
    "sep-2640-skills-list-cache-attributes",
    "sep-2640-resources-complete",
    "sep-2640-entry-frontmatter-identical",
    "sep-2640-skills-get-entry-shape",
    "sep-2640-skills-get-unknown-uri-invalid-params",
    "sep-2640-skillmd-mimetype",
    "sep-2640-skillmd-metadata-name",
    "sep-2640-skillmd-metadata-description",
    "sep-2640-meta-prefix",
    "wire-schema-valid",
];

/// Writes `root/name` with the given files (path, text).
fn write_folder(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(name);
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

/// Publishes pdf-processing (and release-notes when asked) and waits until the daemon serves them.
fn publish_fixture_skills(app: &TestApp, work: &Path, with_release_notes: bool) {
    let mut dirs = vec![write_folder(
        work,
        "pdf-processing",
        &[("SKILL.md", PDF_SKILL_MD), ("references/FORMS.md", PDF_FORMS_MD)],
    )];
    if with_release_notes {
        dirs.push(write_folder(work, "release-notes", &[("SKILL.md", RELEASE_SKILL_MD)]));
    }
    let mut args = vec!["skills", "publish"];
    args.extend(dirs.iter().map(|dir| dir.to_str().expect("utf-8 path")));
    let output = app.cli(&args);
    assert!(
        output.status.success(),
        "publish: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The daemon's catalog follows the database on a generation poll (2 s).
    let listed = || {
        ureq::get(&format!("{}/api/v1/skills", app.base_url))
            .set("Authorization", &format!("Bearer {}", app.admin_key))
            .call()
            .ok()
            .and_then(|response| response.into_json::<Value>().ok())
            .and_then(|body| body["skills"].as_array().map(Vec::len))
    };
    assert!(eventually(Duration::from_secs(10), || listed() == Some(dirs.len())), "the catalog caught up");
}

/// Runs one scenario of the pre-release suite against `url`: its checks (from `checks.json`) and
/// what the CLI printed.
fn run_scenario(url: &str, scenario: &str) -> (Vec<Value>, String) {
    let results = TempDir::new();
    let output = Command::new(repo_root().join("scripts/conformance.sh"))
        .env("CASTELLAN_CONFORMANCE_CLI", "next")
        .arg(url)
        .args(["--scenario", scenario, "-o"])
        .arg(&results.0)
        .output()
        .expect("conformance.sh runs");
    let printed = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let mut checks = Vec::new();
    let mut pending = vec![results.0.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").map(|entry| entry.expect("entry")) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|name| name == "checks.json") {
                let text = std::fs::read_to_string(&path).expect("read checks.json");
                let found: Vec<Value> = serde_json::from_str(&text).expect("checks.json is a JSON array");
                checks.extend(found);
            }
        }
    }
    assert!(!checks.is_empty(), "{scenario}: no checks.json written (exit {:?}):\n{printed}", output.status.code());
    assert!(output.status.success(), "{scenario}: the suite exits 0 only when no check failed:\n{printed}");
    (checks, printed)
}

fn anonymous_skills_profile() -> &'static str {
    r#"
server:
  allow_anonymous: true
database:
  url: "${CASTELLAN_DATABASE_URL}"
rbac:
  default: deny
  rules:
    - { name: anyone-may-read-skills, effect: allow, min_tier: anonymous, skills: ["*"] }
"#
}

#[test]
fn the_skills_extension_passes_every_check_of_the_conformance_suites_skills_scenarios() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(anonymous_skills_profile()));
    let work = TempDir::new();
    publish_fixture_skills(&app, &work.0, false);
    let url = format!("{}/mcp", app.base_url);
    let mut passed_ids = Vec::new();
    for scenario in SCENARIOS {
        let (checks, printed) = run_scenario(&url, scenario);
        let not_passed: Vec<String> = checks
            .iter()
            .filter(|check| !matches!(check["status"].as_str(), Some("SUCCESS" | "INFO")))
            .map(|check| format!("{} {}: {}", check["status"], check["id"], check["errorMessage"]))
            .collect();
        let passed = checks.iter().filter(|check| check["status"] == "SUCCESS").count();
        eprintln!("{scenario}: {passed} of {} checks passed", checks.len());
        assert!(not_passed.is_empty(), "{scenario}: checks not passed: {not_passed:#?}\n{printed}");
        assert!(passed > 0, "{scenario}: ran no check:\n{printed}");
        passed_ids.extend(checks.iter().filter_map(|check| check["id"].as_str().map(str::to_string)));
    }
    for required in REQUIRED_CHECKS {
        assert!(passed_ids.iter().any(|id| id == required), "{required} was not run; the checks run: {passed_ids:?}");
    }
}

fn user_skills_profile() -> &'static str {
    r#"
database:
  url: "${CASTELLAN_DATABASE_URL}"
rbac:
  default: deny
  rules:
    - { name: skills-for-users, effect: allow, min_tier: user, skills: ["*"] }
    - { name: release-skills-for-admins, effect: deny, max_tier: user, skills: ["release-*"] }
"#
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn the_python_sdk_lists_gets_and_reads_only_the_skills_rbac_allows_and_each_read_is_recorded() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(user_skills_profile()));
    let work = TempDir::new();
    publish_fixture_skills(&app, &work.0, true);
    let alice = app.user_with_key("alice", "user");
    let report = run_python_client(
        "py1",
        "skills_client.py",
        &[&format!("{}/mcp", app.base_url), &alice, "references/FORMS.md"],
    );

    assert_eq!(report["protocol_version"], "2025-11-25", "{report}");
    assert_eq!(
        report["extensions"]["io.modelcontextprotocol/skills"]["directoryRead"], true,
        "initialize declares the extension: {report}"
    );
    let listed: Vec<&str> =
        report["skills"].as_array().expect("skills").iter().filter_map(|skill| skill["uri"].as_str()).collect();
    assert_eq!(listed, ["skill://pdf-processing/SKILL.md"], "release-* is denied to users: {report}");
    assert_eq!(report["get"]["skill"]["frontmatter"]["description"], "Extract text and fill forms in PDF files.");
    let skill_resources: Vec<&str> = report["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|resource| resource["uri"].as_str())
        .filter(|uri| uri.starts_with("skill://"))
        .collect();
    assert_eq!(skill_resources, ["skill://pdf-processing/SKILL.md"], "resources/list is filtered too: {report}");
    for denied in ["denied_get", "denied_read"] {
        let message = report[denied]["message"].as_str().unwrap_or_default();
        assert!(message.contains("release-skills-for-admins"), "{denied}: refused by the rule, not answered: {report}");
    }
    let manifest_files: Vec<(&str, &str)> = report["get"]["skill"]["resources"]
        .as_array()
        .expect("the manifest's resources")
        .iter()
        .filter_map(|file| Some((file["uri"].as_str()?, file["digest"].as_str()?)))
        .collect();
    let expected_files = [
        ("skill://pdf-processing/SKILL.md", format!("sha256:{}", sha256_hex(PDF_SKILL_MD.as_bytes()))),
        ("skill://pdf-processing/references/FORMS.md", format!("sha256:{}", sha256_hex(PDF_FORMS_MD.as_bytes()))),
    ];
    let expected_files: Vec<(&str, &str)> =
        expected_files.iter().map(|(uri, digest)| (*uri, digest.as_str())).collect();
    assert_eq!(manifest_files, expected_files, "skills/get lists each file with its digest: {report}");

    for (read, published) in [("skill_md", PDF_SKILL_MD), ("reference", PDF_FORMS_MD)] {
        let content = &report[read];
        assert_eq!(content["text"], published, "{read}: the published bytes come back: {report}");
        assert_eq!(content["mimeType"], "text/markdown", "{read}");
        assert_eq!(
            content["_meta"]["dev.castellan/sha256"],
            sha256_hex(published.as_bytes()).as_str(),
            "{read}: the digest is the file's: {report}"
        );
    }
    let fetches = app.database.query_scalar(
        "SELECT COUNT(*) FROM skill_fetches \
         WHERE via = 'mcp' AND user_id = 'alice' AND skill = 'pdf-processing' AND version = '1.0.0'",
    );
    assert_eq!(fetches, "2", "one row per resources/read");
    let all = app.database.query_scalar("SELECT COUNT(*) FROM skill_fetches");
    assert_eq!(all, "2", "the refused read and the manifest reads are not fetches");
}
