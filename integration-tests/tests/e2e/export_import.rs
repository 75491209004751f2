//! `castellan export` and `castellan import`, daemon-less: the CLI works on the database and the
//! profile directly. A round trip (export, import into an empty database with a minimal profile,
//! export again) gives the same bytes on SQLite and PostgreSQL; no secret value or credential is
//! ever in the export; a malformed file or an invalid section changes nothing; `--dry-run` lists
//! the changes and makes none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use integration_tests::{Database, TempDir, TestDatabase, castellan_binary};

const SECRET_VALUE: &str = "sk-ant-export-test-0123456789abcdef";

/// The profile whose policy is exported: every kind of section, a secret reference, an env
/// reference, comments.
const FULL_PROFILE: &str = r#"# The source installation.
server:
  listen: 127.0.0.1:0
database:
  url: "${CASTELLAN_DATABASE_URL}"
rbac:
  default: deny
  rules:
    - { name: users-may-use-tools, effect: allow, min_tier: user, servers: ["*"], tools: ["*"] }
    - { name: no-destructive-for-users, effect: deny, max_tier: user, servers: ["customers"], tools: ["delete_*"] }
    - { name: models-for-users, effect: allow, min_tier: user, models: ["claude-*", "fast"] }
    - { name: skills-for-users, effect: allow, min_tier: user, skills: ["*"] }
rate_limits:
  burst_multiplier: 3
  tier_multipliers: { admin: 10, user: 1, service: 5, a2a: 5, mcp: 5, anonymous: 0.5 }
  per_second: { mcp_tool_call: 20, oauth: 5, ai_request: 5 }
hooks:
  PreToolUse:
    - { builtin: deny_arguments, pattern: "(?i)drop\\s+table" }
providers:
  anthropic: { kind: anthropic, api_key: "${secret:anthropic_key}", base_url: "https://api.anthropic.com" }
models:
  "claude-*": { provider: anthropic }
  fast: { provider: anthropic, model: claude-haiku-4-5 }
pricing:
  claude-haiku-4-5: { input: 1.00, output: 5.00 }
budgets:
  - { name: engineers-monthly, per: user, tier: user, usd: 50, period: month }
  - { name: alice-daily, user: alice, usd: 5, period: day }
"#;

/// The profile of the installation imported into: no policy at all.
const MINIMAL_PROFILE: &str = "# A new installation.\nserver:\n  listen: 127.0.0.1:0   # loopback only\n";

/// A database and a profile, with the CLI pointed at both.
struct Installation {
    database: TestDatabase,
    profile: PathBuf,
    dir: TempDir,
}

impl Installation {
    fn new(kind: Database, profile: &str) -> Installation {
        let dir = TempDir::new();
        let database = TestDatabase::new(kind, &dir.0);
        let path = dir.0.join("profile.yaml");
        std::fs::write(&path, profile).expect("write profile");
        let installation = Installation { database, profile: path, dir };
        installation.ok(&["migrate"]);
        installation
    }

    fn run(&self, args: &[&str], input: &str) -> Output {
        let mut command = Command::new(castellan_binary());
        command.current_dir(&self.dir.0);
        integration_tests::run_cli(command, &self.profile, &self.database.url, args, input)
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args, "");
        let printed = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(output.status.success(), "{args:?}: {printed}\n{}", String::from_utf8_lossy(&output.stderr));
        printed
    }

    /// Runs a command that must fail with exit 1; returns stdout and stderr together.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args, "");
        let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert_eq!(output.status.code(), Some(1), "{args:?} should fail: {printed}");
        printed
    }

    fn count(&self, table: &str) -> String {
        self.database.query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
    }

    fn profile_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.profile).expect("read profile")
    }
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Every file under `root` by relative path, with its bytes.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(root).expect("under root").display().to_string();
                files.insert(relative, std::fs::read(&path).expect("read"));
            }
        }
    }
    files
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// The source installation: users (one disabled, one with a key), a secret, two skills (one in a
/// subfolder layout, one signed).
fn source(kind: Database) -> (Installation, String) {
    let source = Installation::new(kind, FULL_PROFILE);
    source.ok(&["users", "add", "alice", "--tier", "admin"]);
    source.ok(&["users", "add", "bob", "--tier", "user", "--scope", "mcp:tools", "--scope", "ai:messages"]);
    source.ok(&["users", "add", "carol", "--tier", "service"]);
    source.database.execute("UPDATE users SET disabled = true WHERE name = 'carol'");
    let api_key = source.ok(&["keys", "create", "--user", "alice"]).trim().to_string();
    let stored = source.run(&["secrets", "set", "anthropic_key"], SECRET_VALUE);
    assert!(stored.status.success(), "secrets set: {}", String::from_utf8_lossy(&stored.stderr));

    let skills = source.dir.0.join("skill-folders");
    let pdf = skills.join("pdf-processing");
    write(
        &pdf.join("SKILL.md"),
        "---\nname: pdf-processing\ndescription: Extract text from PDFs.\nmetadata:\n  version: \"1.0.0\"\n---\n\n# PDF\n",
    );
    write(&pdf.join("scripts/extract.py"), "print('text')\n");
    write(&pdf.join("references/deep/notes.md"), "# Notes\n");
    let notes = skills.join("notes");
    write(&notes.join("SKILL.md"), "---\nname: notes\ndescription: Keep notes.\n---\n\nWrite things down.\n");
    let pem = source.dir.0.join("signing.pem");
    let generated = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&pem)
        .output()
        .expect("openssl runs");
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    source.ok(&["skills", "sign", path_arg(&notes), "--key", path_arg(&pem)]);
    source.ok(&["skills", "publish", path_arg(&pdf), path_arg(&notes)]);
    (source, api_key)
}

fn round_trip(kind: Database) {
    let (source, api_key) = source(kind);
    let first = source.dir.0.join("export-a");
    let printed = source.ok(&["export", "--out", path_arg(&first)]);
    assert!(printed.contains("exported 7 policy sections, 3 users and 2 skills"), "{printed}");
    let exported = tree(&first);
    let paths: Vec<&str> = exported.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "README.md",
            "policy/budgets.md",
            "policy/hooks.md",
            "policy/models.md",
            "policy/pricing.md",
            "policy/providers.md",
            "policy/rate-limits.md",
            "policy/rbac.md",
            "skills/notes/.castellan-signature.json",
            "skills/notes/SKILL.md",
            "skills/pdf-processing/SKILL.md",
            "skills/pdf-processing/references/deep/notes.md",
            "skills/pdf-processing/scripts/extract.py",
            "users/alice.md",
            "users/bob.md",
            "users/carol.md",
        ],
        "{kind:?}"
    );
    for (path, bytes) in &exported {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(SECRET_VALUE), "{kind:?}: {path} holds the secret value");
        assert!(!text.contains(&api_key), "{kind:?}: {path} holds an API key");
        assert!(!bytes.contains(&b'\r'), "{kind:?}: {path} has a CR");
    }
    let providers = String::from_utf8_lossy(&exported["policy/providers.md"]).to_string();
    assert!(providers.contains("api_key: ${secret:anthropic_key}"), "{providers}");
    let carol = String::from_utf8_lossy(&exported["users/carol.md"]).to_string();
    assert!(carol.starts_with("---\nname: carol\ntier: service\nscopes: []\ndisabled: true\n---\n"), "{carol}");
    source.ok(&["export", "--out", path_arg(&first)]);
    assert_eq!(tree(&first), exported, "{kind:?}: export twice gives the same bytes");

    let target = Installation::new(kind, MINIMAL_PROFILE);
    let printed = target.ok(&["import", path_arg(&first)]);
    for expected in [
        "+ user alice (admin)",
        "+ user carol (service)",
        "+ skill notes 1",
        "+ skill pdf-processing 1.0.0",
        "+ policy rbac",
    ] {
        assert!(printed.contains(expected), "{kind:?}: missing {expected:?} in:\n{printed}");
    }
    let profile = String::from_utf8(target.profile_bytes()).expect("utf-8");
    assert!(profile.starts_with(MINIMAL_PROFILE), "{kind:?}: the rest of the profile stays as written:\n{profile}");
    assert!(profile.contains("api_key: ${secret:anthropic_key}"), "{profile}");
    let second = target.dir.0.join("export-b");
    target.ok(&["export", "--out", path_arg(&second)]);
    let again = tree(&second);
    for (path, bytes) in &exported {
        assert_eq!(
            again.get(path).map(|again| String::from_utf8_lossy(again)),
            Some(String::from_utf8_lossy(bytes)),
            "{kind:?}: {path}"
        );
    }
    assert_eq!(again, exported, "{kind:?}: export, import, export gives the same files");

    let printed = target.ok(&["import", path_arg(&first)]);
    assert!(printed.contains("0 changes applied"), "{kind:?}: importing again changes nothing: {printed}");
}

#[test]
fn export_import_export_gives_the_same_files_and_no_secret_on_sqlite() {
    round_trip(Database::Sqlite);
}

#[test]
fn export_import_export_gives_the_same_files_and_no_secret_on_postgres() {
    round_trip(Database::Postgres);
}

/// An export of the source installation, copied to `name` beside it for editing.
fn exported_copy(source: &Installation, name: &str) -> PathBuf {
    let folder = source.dir.0.join(name);
    source.ok(&["export", "--out", path_arg(&folder)]);
    folder
}

fn malformed_files_change_nothing(kind: Database) {
    let (source, _) = source(kind);
    let target = Installation::new(kind, MINIMAL_PROFILE);
    target.ok(&["users", "add", "zoe", "--tier", "user"]);
    let before = target.profile_bytes();

    let bad_yaml = exported_copy(&source, "bad-yaml");
    let bob = bad_yaml.join("users/bob.md");
    write(&bob, "---\nname: bob\n  tier: user\n---\n");
    let printed = target.fails(&["import", path_arg(&bad_yaml)]);
    assert!(
        printed.contains(&format!("{}:3:7: mapping values are not allowed", bob.display())),
        "{kind:?}: the file and line:\n{printed}"
    );
    assert!(printed.contains("nothing was changed"), "{printed}");

    let unknown_key = exported_copy(&source, "unknown-key");
    let rbac = unknown_key.join("policy/rbac.md");
    let text = std::fs::read_to_string(&rbac).expect("read rbac");
    let broken = text.replacen("- name: users-may-use-tools\n", "- name: users-may-use-tools\n  colour: red\n", 1);
    assert_ne!(broken, text, "the rule is in the export:\n{text}");
    let line = broken.lines().position(|line| line.contains("colour: red")).expect("the line") + 1;
    write(&rbac, &broken);
    let printed = target.fails(&["import", path_arg(&unknown_key)]);
    assert!(
        printed.contains(&format!("{}:{line}:3: rbac.rules[0].colour: unknown key", rbac.display())),
        "{kind:?}: the policy file and line:\n{printed}"
    );

    assert_eq!(target.count("users"), "1", "{kind:?}: no user was added");
    assert_eq!(target.count("skill_versions"), "0", "{kind:?}: no skill was published");
    assert_eq!(target.profile_bytes(), before, "{kind:?}: the profile is unchanged");
}

#[test]
fn a_malformed_file_or_an_invalid_rule_changes_nothing_on_sqlite() {
    malformed_files_change_nothing(Database::Sqlite);
}

#[test]
fn a_malformed_file_or_an_invalid_rule_changes_nothing_on_postgres() {
    malformed_files_change_nothing(Database::Postgres);
}

#[test]
fn dry_run_lists_the_changes_and_makes_none() {
    let (source, _) = source(Database::Sqlite);
    let folder = exported_copy(&source, "dry-run");
    let target = Installation::new(Database::Sqlite, MINIMAL_PROFILE);
    target.ok(&["users", "add", "alice", "--tier", "user"]);
    target.ok(&["users", "add", "zoe", "--tier", "user"]);
    let before = target.profile_bytes();

    let printed = target.ok(&["import", path_arg(&folder), "--dry-run"]);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines,
        [
            "~ user alice: tier user -> admin",
            "+ user bob (user)",
            "+ user carol (service)",
            "+ skill notes 1",
            "+ skill pdf-processing 1.0.0",
            "+ policy rbac",
            "+ policy rate-limits",
            "+ policy hooks",
            "+ policy providers",
            "+ policy models",
            "+ policy pricing",
            "+ policy budgets",
            "12 changes; dry run: nothing was changed",
        ],
        "zoe is not in the folder and is left alone"
    );
    assert_eq!(target.count("users"), "2");
    assert_eq!(target.count("skill_versions"), "0");
    assert_eq!(target.profile_bytes(), before);

    target.ok(&["import", path_arg(&folder)]);
    assert_eq!(target.count("users"), "4", "zoe stays");
    let rbac = folder.join("policy/rbac.md");
    let text = std::fs::read_to_string(&rbac).expect("read");
    write(&rbac, &text.replacen("default: deny", "default: allow", 1));
    write(&folder.join("users/bob.md"), "---\nname: bob\ntier: user\ndisabled: true\n---\n");
    let printed = target.ok(&["import", path_arg(&folder), "--dry-run"]);
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        [
            "~ user bob: scopes [mcp:tools, ai:messages] -> [], disabled false -> true",
            "~ policy rbac",
            "2 changes; dry run: nothing was changed"
        ]
    );
}
