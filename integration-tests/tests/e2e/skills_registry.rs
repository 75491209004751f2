//! The skills registry in a running daemon: publishing (versions, no-op republish, conflicts,
//! yank), signatures, RBAC over the API, audited fetches, `skills.dirs`, and `skills sync`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use integration_tests::{AppOptions, Database, TempDir, TestApp, eventually, spawn_app_with};
use serde_json::Value;

const RULES: &str = r#"
    - { name: users-may-use-tools, effect: allow, min_tier: user, servers: ["*"], tools: ["*"] }
    - { name: skills-for-users, effect: allow, min_tier: user, skills: ["*"] }
    - { name: release-skills-for-admins, effect: deny, max_tier: user, skills: ["release-*"] }
"#;

pub fn registry_profile(extra: &str) -> String {
    format!(
        r#"
server:
  listen: 127.0.0.1:0
database:
  url: "${{CASTELLAN_DATABASE_URL}}"
mcp_servers:
  customers:
    command: castellan
    args: [demo-server]
rbac:
  default: deny
  rules:{RULES}
rate_limits:
  per_second: {{ mcp_tool_call: 100000, oauth: 100000 }}
{extra}
"#
    )
}

/// Writes a skill folder `root/name` with a SKILL.md (`version` in its metadata when given) and
/// the extra files.
pub fn write_skill(root: &Path, name: &str, version: Option<&str>, body: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let metadata = version.map(|version| format!("metadata:\n  version: \"{version}\"\n")).unwrap_or_default();
    std::fs::write(
        dir.join("SKILL.md"),
        format!("---\nname: {name}\ndescription: The {name} skill, for tests.\n{metadata}---\n\n# {name}\n\n{body}\n"),
    )
    .expect("write SKILL.md");
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

fn cli_ok(app: &TestApp, args: &[&str]) -> String {
    let output = app.cli(args);
    let printed = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{args:?}: {printed}\n{}", String::from_utf8_lossy(&output.stderr));
    printed
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// GET with a bearer key: (status, JSON body or Null).
pub fn get(app: &TestApp, path: &str, key: &str) -> (u16, Value) {
    let response =
        match ureq::get(&format!("{}{path}", app.base_url)).set("Authorization", &format!("Bearer {key}")).call() {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("GET {path}: {error}"),
        };
    let status = response.status();
    (status, response.into_json().unwrap_or(Value::Null))
}

fn names(listing: &Value) -> Vec<String> {
    listing["skills"]
        .as_array()
        .expect("skills")
        .iter()
        .map(|skill| skill["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn versions_are_immutable_a_republish_is_a_no_op_and_a_yank_hides_a_version() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&registry_profile("")));
    let work = TempDir::new();
    let skill =
        write_skill(&work.0, "pdf-processing", Some("1.0.0"), "Use pdftotext.", &[("references/FORMS.md", "Forms.")]);
    let printed = cli_ok(&app, &["skills", "publish", path_arg(&skill)]);
    assert!(printed.starts_with("published pdf-processing 1.0.0 (sha256:"), "{printed}");
    assert!(cli_ok(&app, &["skills", "publish", path_arg(&skill)]).starts_with("unchanged pdf-processing 1.0.0"));
    // Other content under the same version: refused, nothing stored.
    std::fs::write(skill.join("references/FORMS.md"), "Changed forms.").expect("write");
    let refused = app.cli(&["skills", "publish", path_arg(&skill)]);
    let printed = String::from_utf8_lossy(&refused.stdout).to_string();
    assert_eq!(refused.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("already published with different content") && printed.contains("bump metadata.version"),
        "{printed}"
    );
    assert_eq!(app.database.query_scalar("SELECT COUNT(*) FROM skill_versions"), "1");
    // Without metadata.version: 1, 2, ...
    let notes = write_skill(&work.0, "release-notes", None, "v1", &[]);
    assert!(cli_ok(&app, &["skills", "publish", path_arg(&notes)]).starts_with("published release-notes 1 "));
    write_skill(&work.0, "release-notes", None, "v2", &[]);
    assert!(cli_ok(&app, &["skills", "publish", path_arg(&notes)]).starts_with("published release-notes 2 "));
    let shown = cli_ok(&app, &["skills", "show", "release-notes@2"]);
    assert!(shown.contains("SKILL.md"), "{shown}");
    // The daemon's catalog follows what the CLI stored (a generation poll, 2 s).
    let admin = app.admin_key.clone();
    assert!(
        eventually(Duration::from_secs(10), || get(&app, "/api/v1/skills/release-notes", &admin).1["latest"] == "2")
    );
    assert_eq!(cli_ok(&app, &["skills", "yank", "release-notes@2"]).trim(), "yanked release-notes@2");
    assert!(
        eventually(Duration::from_secs(10), || get(&app, "/api/v1/skills/release-notes", &admin).1["latest"] == "1"),
        "the previous version is the latest again"
    );
    let (status, body) = get(&app, "/api/v1/skills/release-notes/2/archive.tar.gz", &admin);
    assert_eq!(status, 410, "a yanked version is not served: {body}");
    assert!(
        cli_ok(&app, &["skills", "show", "release-notes"]).contains("release-notes@2 (yanked)"),
        "the record stays"
    );
}

#[test]
fn bad_folders_are_refused_clearly_and_store_nothing() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&registry_profile("")));
    let work = TempDir::new();
    let linked = write_skill(&work.0, "linked", None, "x", &[]);
    std::os::unix::fs::symlink("/etc/passwd", linked.join("passwd")).expect("symlink");
    let huge = write_skill(&work.0, "huge", None, "x", &[]);
    // A 1 GiB file (sparse: refused by its size before anything is read).
    std::fs::File::create(huge.join("data.bin")).expect("create").set_len(1 << 30).expect("set_len");
    let bomb = work.0.join("bomb");
    std::fs::create_dir_all(&bomb).expect("mkdir");
    let mut laughs = String::from("---\nname: bomb\ndescription: d\nmetadata:\n  a: &a \"lol\"\n");
    for level in 0..9 {
        laughs.push_str(&format!("  l{level}: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"));
    }
    laughs.push_str("---\nBody\n");
    std::fs::write(bomb.join("SKILL.md"), laughs).expect("write");
    let cases = [
        (linked, "passwd: is a symlink"),
        (huge, "data.bin: is 1073741824 bytes; a file of a skill is at most 10 MiB"),
        (bomb, "bomb/SKILL.md:5:"),
    ];
    for (dir, expected) in cases {
        let output = app.cli(&["skills", "publish", path_arg(&dir)]);
        let printed = String::from_utf8_lossy(&output.stdout).to_string();
        assert_eq!(output.status.code(), Some(1), "{printed}");
        assert!(printed.contains(expected), "expected {expected:?} in:\n{printed}");
    }
    assert_eq!(app.database.query_scalar("SELECT COUNT(*) FROM skill_versions"), "0");
    assert_eq!(app.database.query_scalar("SELECT COUNT(*) FROM skill_blobs"), "0");
}

/// An Ed25519 key pair: the PKCS#8 PEM file and the profile's `ed25519:BASE64` public key.
fn key_pair(dir: &Path, name: &str) -> (PathBuf, String) {
    let pem = dir.join(format!("{name}.pem"));
    let generated = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&pem)
        .output()
        .expect("openssl runs");
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let der = std::process::Command::new("openssl")
        .args(["pkey", "-in"])
        .arg(&pem)
        .args(["-pubout", "-outform", "DER"])
        .output()
        .expect("openssl runs");
    use base64::Engine;
    // The raw key is the last 32 bytes of the SubjectPublicKeyInfo.
    let raw = &der.stdout[der.stdout.len() - 32..];
    (pem, format!("ed25519:{}", base64::engine::general_purpose::STANDARD.encode(raw)))
}

#[test]
fn with_signing_keys_only_skills_signed_by_them_are_published_and_served() {
    let work = TempDir::new();
    let (trusted_pem, trusted_key) = key_pair(&work.0, "trusted");
    let (other_pem, _) = key_pair(&work.0, "other");
    let app = spawn_app_with(
        AppOptions::new(Database::Sqlite)
            .profile(&registry_profile(&format!("skills:\n  signing_keys: [\"{trusted_key}\"]\n"))),
    );
    let skill = write_skill(&work.0, "pdf-processing", Some("1.0.0"), "Use pdftotext.", &[]);
    let unsigned = app.cli(&["skills", "publish", path_arg(&skill)]);
    assert!(String::from_utf8_lossy(&unsigned.stdout).contains("is not signed"), "{:?}", unsigned);
    cli_ok(&app, &["skills", "sign", path_arg(&skill), "--key", path_arg(&other_pem)]);
    let untrusted = app.cli(&["skills", "publish", path_arg(&skill)]);
    assert!(
        String::from_utf8_lossy(&untrusted.stdout).contains("not among the trusted signing keys"),
        "{:?}",
        untrusted
    );
    let signed = cli_ok(&app, &["skills", "sign", path_arg(&skill), "--key", path_arg(&trusted_pem)]);
    assert!(signed.contains(&trusted_key), "{signed}");
    // A change after signing breaks the signature.
    std::fs::write(skill.join("extra.md"), "added after signing").expect("write");
    let tampered = app.cli(&["skills", "publish", path_arg(&skill)]);
    assert!(String::from_utf8_lossy(&tampered.stdout).contains("does not match its content"), "{:?}", tampered);
    std::fs::remove_file(skill.join("extra.md")).expect("rm");
    assert!(cli_ok(&app, &["skills", "publish", path_arg(&skill)]).starts_with("published pdf-processing 1.0.0"));
    assert_eq!(app.database.query_scalar("SELECT COUNT(*) FROM skill_versions"), "1");
    let admin = app.admin_key.clone();
    assert!(eventually(Duration::from_secs(10), || names(&get(&app, "/api/v1/skills", &admin).1) == ["pdf-processing"]));
    let (_, version) = get(&app, "/api/v1/skills/pdf-processing/1.0.0", &admin);
    assert_eq!(version["signed_by"], trusted_key.as_str(), "{version}");
    assert_eq!(version["signature"]["key"], trusted_key.as_str(), "{version}");
}

#[test]
fn rbac_decides_who_sees_and_fetches_which_skill_and_every_fetch_is_recorded() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&registry_profile("")));
    let work = TempDir::new();
    for name in ["pdf-processing", "release-notes"] {
        let dir = write_skill(&work.0, name, Some("1.0.0"), "Body.", &[]);
        cli_ok(&app, &["skills", "publish", path_arg(&dir)]);
    }
    let alice = app.user_with_key("alice", "user");
    let bot = app.user_with_key("bot", "mcp");
    let admin = app.admin_key.clone();
    assert!(eventually(Duration::from_secs(10), || names(&get(&app, "/api/v1/skills", &admin).1).len() == 2));
    assert_eq!(names(&get(&app, "/api/v1/skills", &alice).1), ["pdf-processing"], "release-* is for admins");
    assert_eq!(names(&get(&app, "/api/v1/skills", &bot).1), Vec::<String>::new(), "the mcp tier has no skill rule");
    let (status, body) = get(&app, "/api/v1/skills/release-notes/1.0.0/archive.tar.gz", &alice);
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("release-skills-for-admins"), "{body}");
    let (status, _) = get(&app, "/api/v1/skills/pdf-processing/1.0.0/archive.tar.gz", &alice);
    assert_eq!(status, 200);
    let (status, _) = get(&app, "/api/v1/skills/release-notes/latest/archive.tar.gz", &admin);
    assert_eq!(status, 200);
    let (status, body) = get(&app, "/api/v1/skills/no-such-skill", &admin);
    assert_eq!(status, 404, "{body}");
    let (status, _) = get(&app, "/api/v1/skills", "not-a-key");
    assert_eq!(status, 401);
    let fetches = app.database.query_scalar(
        "SELECT group_concat(skill || '@' || version || ':' || user_id || ':' || via, ',') FROM (SELECT * FROM skill_fetches ORDER BY id)",
    );
    assert_eq!(
        fetches, "pdf-processing@1.0.0:alice:api,release-notes@1.0.0:admin:api",
        "the refused fetch is not a fetch"
    );
    // The audit trail has every request, refusals included, as kind `skill`.
    let rows: Vec<Value> = app.audit_rows().into_iter().filter(|row| row["server"] == "skills").collect();
    assert!(rows.iter().any(|row| row["status"] == "denied" && row["user_id"] == "alice"), "{rows:?}");
    assert!(rows.len() >= 6, "{rows:?}");
}

#[test]
fn a_folder_in_skills_dirs_is_published_at_start_and_again_when_it_changes() {
    let work = TempDir::new();
    let root = work.0.join("skills");
    write_skill(&root, "pdf-processing", None, "First.", &[]);
    let profile = registry_profile(&format!("skills:\n  dirs: [\"{}\"]\n", root.display()));
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let admin = app.admin_key.clone();
    let latest = || get(&app, "/api/v1/skills/pdf-processing", &admin).1["latest"].clone();
    assert!(eventually(Duration::from_secs(10), || latest() == "1"), "published at start: {}", app.log());
    write_skill(&root, "pdf-processing", None, "Second.", &[]);
    assert!(eventually(Duration::from_secs(10), || latest() == "2"), "published again on change: {}", app.log());
    // A broken skill is logged with its problem, and the last good version stays.
    std::fs::write(root.join("pdf-processing/SKILL.md"), "no frontmatter").expect("write");
    assert!(app.log_shows("skill not published"));
    assert_eq!(latest(), "2");
}
