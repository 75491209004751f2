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

fn sync(app: &TestApp, key: &str, dest: &Path) -> (bool, String) {
    let output = app.cli(&["skills", "sync", "--url", &app.base_url, "--token", key, "--dest", path_arg(dest)]);
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).expect("read_dir").map(|entry| entry.expect("entry")) {
            let path = entry.path();
            let relative = path.strip_prefix(dir).expect("prefix").display().to_string();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(relative);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn sync_installs_updates_and_removes_what_it_installed_and_leaves_the_rest_alone() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&registry_profile("")));
    let work = TempDir::new();
    let pdf = write_skill(&work.0, "pdf-processing", None, "v1", &[("scripts/extract.py", "print('text')\n")]);
    let notes = write_skill(&work.0, "notes", None, "v1", &[]);
    cli_ok(&app, &["skills", "publish", path_arg(&pdf), path_arg(&notes)]);
    let alice = app.user_with_key("alice", "user");
    let dest = work.0.join("home/.claude/skills");
    // A skill the user wrote by hand, and one of the same name as a published skill: both stay.
    write_skill(&dest, "my-own", None, "mine", &[]);
    let caught_up = || eventually(Duration::from_secs(10), || names(&get(&app, "/api/v1/skills", &alice).1).len() == 2);
    assert!(caught_up());
    let (ok, printed) = sync(&app, &alice, &dest);
    assert!(ok, "{printed}");
    assert!(printed.contains("installed notes") && printed.contains("installed pdf-processing"), "{printed}");
    assert_eq!(
        std::fs::read_to_string(dest.join("pdf-processing/scripts/extract.py")).expect("installed file"),
        "print('text')\n"
    );
    assert_eq!(
        std::fs::read_to_string(pdf.join("SKILL.md")).unwrap(),
        std::fs::read_to_string(dest.join("pdf-processing/SKILL.md")).unwrap()
    );
    let installed = tree(&dest);
    // Idempotent: a second run writes nothing.
    let (ok, printed) = sync(&app, &alice, &dest);
    assert!(ok && printed.contains("unchanged notes") && printed.contains("unchanged pdf-processing"), "{printed}");
    assert_eq!(tree(&dest), installed);
    // An edited install is put back; a new version replaces the old one.
    std::fs::write(dest.join("notes/SKILL.md"), "edited by hand").expect("write");
    write_skill(&work.0, "pdf-processing", None, "v2", &[]);
    std::fs::remove_file(pdf.join("scripts/extract.py")).expect("rm");
    cli_ok(&app, &["skills", "publish", path_arg(&pdf)]);
    assert!(
        eventually(Duration::from_secs(10), || get(&app, "/api/v1/skills/pdf-processing", &alice).1["latest"] == "2")
    );
    // An interrupted earlier run left a work folder behind.
    std::fs::create_dir_all(dest.join(".castellan-sync-pdf-processing-0000/half")).expect("mkdir");
    let (ok, printed) = sync(&app, &alice, &dest);
    assert!(ok && printed.contains("updated notes") && printed.contains("updated pdf-processing"), "{printed}");
    assert!(!dest.join("pdf-processing/scripts/extract.py").exists(), "the new version's files only");
    assert!(std::fs::read_to_string(dest.join("pdf-processing/SKILL.md")).unwrap().contains("v2"));
    assert!(!dest.join(".castellan-sync-pdf-processing-0000").exists(), "leftovers of an interrupted run are removed");
    // Revoked (yanked here): removed; the folders sync did not install stay.
    cli_ok(&app, &["skills", "yank", "notes@1"]);
    assert!(eventually(Duration::from_secs(10), || names(&get(&app, "/api/v1/skills", &alice).1) == ["pdf-processing"]));
    let (ok, printed) = sync(&app, &alice, &dest);
    assert!(ok && printed.contains("removed notes"), "{printed}");
    assert!(!dest.join("notes").exists());
    assert!(std::fs::read_to_string(dest.join("my-own/SKILL.md")).unwrap().contains("mine"), "left alone");
    let fetched =
        app.database.query_scalar("SELECT COUNT(*) FROM skill_fetches WHERE via = 'sync' AND user_id = 'alice'");
    assert_eq!(fetched, "4", "one fetch per download: two installs, two updates");
}

#[test]
fn sync_catches_content_tampered_with_in_the_database_and_writes_nothing() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&registry_profile("")));
    let work = TempDir::new();
    let pdf = write_skill(&work.0, "pdf-processing", None, "the real instructions", &[]);
    cli_ok(&app, &["skills", "publish", path_arg(&pdf)]);
    app.database.execute("UPDATE skill_blobs SET content = CAST('---\nname: pdf-processing\ndescription: evil\n---\nexfiltrate\n' AS BLOB)");
    let alice = app.user_with_key("alice", "user");
    let dest = work.0.join("skills");
    assert!(eventually(Duration::from_secs(10), || names(&get(&app, "/api/v1/skills", &alice).1).len() == 1));
    let (ok, printed) = sync(&app, &alice, &dest);
    assert!(!ok, "{printed}");
    assert!(printed.contains("failed pdf-processing") && printed.contains("does not match its sha256"), "{printed}");
    assert_eq!(tree(&dest), Vec::<String>::new(), "nothing written");
}

#[test]
fn sync_installs_a_hundred_skills_into_an_empty_folder() {
    // How long it takes is measured by bench/skills.py on a release build, not here.
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&registry_profile("")));
    let work = TempDir::new();
    let dirs: Vec<PathBuf> = (0..100)
        .map(|index| {
            write_skill(&work.0.join("src"), &format!("skill-{index:03}"), None, "Body.", &[("references/a.md", "A.")])
        })
        .collect();
    let mut args = vec!["skills", "publish"];
    args.extend(dirs.iter().map(|dir| path_arg(dir)));
    cli_ok(&app, &args);
    let alice = app.user_with_key("alice", "user");
    assert!(eventually(Duration::from_secs(10), || names(&get(&app, "/api/v1/skills", &alice).1).len() == 100));
    let dest = work.0.join("skills");
    let (ok, printed) = sync(&app, &alice, &dest);
    assert!(ok, "{printed}");
    assert_eq!(printed.matches("installed ").count(), 100, "{printed}");
    assert_eq!(tree(&dest).len(), 300, "SKILL.md, references/a.md and the marker, 100 times");
}

#[test]
fn the_marketplace_lists_the_callers_skills_as_claude_code_plugins_and_serves_each_as_a_zip() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&registry_profile("")));
    let work = TempDir::new();
    for name in ["pdf-processing", "release-notes"] {
        let dir = write_skill(&work.0, name, Some("1.2.0"), "Body.", &[("references/FORMS.md", "Forms.")]);
        cli_ok(&app, &["skills", "publish", path_arg(&dir)]);
    }
    let alice = app.user_with_key("alice", "user");
    assert!(eventually(Duration::from_secs(10), || names(&get(&app, "/api/v1/skills", &alice).1).len() == 1));
    let (status, marketplace) = get(&app, "/marketplace/.claude-plugin/marketplace.json", &alice);
    assert_eq!(status, 200, "{marketplace}");
    assert_eq!(marketplace["name"], "castellan");
    assert!(marketplace["owner"]["name"].is_string());
    let plugins = marketplace["plugins"].as_array().expect("plugins");
    assert_eq!(plugins.len(), 1, "release-* is not alice's: {marketplace}");
    assert_eq!(plugins[0]["name"], "pdf-processing");
    assert_eq!(plugins[0]["version"], "1.2.0");
    let url = plugins[0]["source"]["url"].as_str().expect("an archive source");
    assert_eq!(plugins[0]["source"]["source"], "archive");
    let path = url.split_once("/marketplace/").map(|(_, rest)| format!("/marketplace/{rest}")).expect("our URL");
    let response = ureq::get(&format!("{}{path}", app.base_url))
        .set("Authorization", &format!("Bearer {alice}"))
        .call()
        .expect("the plugin zip");
    assert_eq!(response.content_type(), "application/zip");
    let mut zip = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut zip).expect("read");
    let zip_path = work.0.join("plugin.zip");
    std::fs::write(&zip_path, &zip).expect("write");
    // Python's zipfile is the independent reader.
    let listing = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile, json; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(json.dumps({n: z.read(n).decode() for n in z.namelist()}))"])
        .arg(&zip_path)
        .output()
        .expect("python3 runs");
    assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
    let entries: Value = serde_json::from_slice(&listing.stdout).expect("json");
    let manifest: Value =
        serde_json::from_str(entries[".claude-plugin/plugin.json"].as_str().expect("plugin.json")).expect("json");
    assert_eq!(manifest["name"], "pdf-processing");
    assert_eq!(entries["skills/pdf-processing/references/FORMS.md"], "Forms.");
    assert!(
        entries["skills/pdf-processing/SKILL.md"].as_str().unwrap_or_default().starts_with("---\nname: pdf-processing")
    );
    let (status, _) = get(&app, "/marketplace/plugins/release-notes/plugin.zip", &alice);
    assert_eq!(status, 403, "RBAC holds for the zips too");
    assert_eq!(get(&app, "/marketplace/.claude-plugin/marketplace.json", "bad-key").0, 401);
    assert_eq!(
        app.database
            .query_scalar("SELECT COUNT(*) FROM skill_fetches WHERE user_id = 'alice' AND skill = 'pdf-processing'"),
        "1"
    );
}

#[test]
fn a_skill_holding_a_secrets_value_is_never_sent_with_it() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&registry_profile("")));
    let value = "sk-live-0123456789abcdef0123";
    let set = app.cli_with_stdin(&["secrets", "set", "billing_key"], value);
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let work = TempDir::new();
    let leaky = write_skill(&work.0, "billing", None, &format!("Call the API with {value}."), &[]);
    cli_ok(&app, &["skills", "publish", path_arg(&leaky)]);
    let alice = app.user_with_key("alice", "user");
    assert!(eventually(Duration::from_secs(10), || names(&get(&app, "/api/v1/skills", &alice).1) == ["billing"]));
    // A running daemon re-reads the secret store every 5 s.
    std::thread::sleep(Duration::from_secs(6));
    let (status, body) = get(&app, "/api/v1/skills/billing/latest/archive.tar.gz", &alice);
    assert_eq!(status, 409, "the archive is refused: {body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains("billing/SKILL.md") && !message.contains(value), "{body}");
    let (status, _) = get(&app, "/marketplace/plugins/billing/plugin.zip", &alice);
    assert_eq!(status, 409);
    assert_eq!(app.database.query_scalar("SELECT COUNT(*) FROM skill_fetches"), "0", "nothing was sent");
    let dest = work.0.join("skills");
    let (ok, printed) = sync(&app, &alice, &dest);
    assert!(!ok && printed.contains("failed billing") && !printed.contains(value), "{printed}");
    assert!(!dest.join("billing").exists());
}

#[test]
fn policy_explain_names_the_rule_that_decides_a_skill() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&registry_profile("")));
    app.user_with_key("alice", "user");
    let cases = [
        (
            "alice",
            "pdf-processing",
            Some(0),
            "rbac.rules[1] 'skills-for-users' { effect: allow, min_tier: user, skills: [\"*\"] }",
        ),
        ("alice", "release-notes", Some(1), "rbac.rules[2] 'release-skills-for-admins'"),
        ("admin", "release-notes", Some(0), "rbac.rules[1] 'skills-for-users'"),
    ];
    for (user, skill, code, rule) in cases {
        let output = app.cli(&["policy", "explain", "--user", user, "--skill", skill]);
        let shown = String::from_utf8_lossy(&output.stdout).to_string();
        assert_eq!(output.status.code(), code, "{user} {skill}: {shown}");
        assert!(shown.contains(rule) && shown.contains(&format!("skill: {skill}")), "{user} {skill}: {shown}");
    }
}
