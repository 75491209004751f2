//! Secrets from Vault: `castellan::vault` pulls from the fake Vault over real HTTP (the KV version 2
//! and AppRole shapes) and applies into a fresh SQLite database sealed under the test master key.
//! Only what differs is written; errors name the status and never a credential or a value.

use std::collections::BTreeMap;
use std::sync::Arc;

use castellan::identity::master_key::MasterKey;
use castellan::secrets::SecretStore;
use castellan::vault::{self, Refusal, RefusedEntry, VaultAuth, VaultError, VaultSource};
use castellan_schema::{DatabaseConnection, MigratorTrait};
use integration_tests::vault::{FakeVault, ROLE_ID, ROOT_TOKEN, SECRET_ID};
use integration_tests::{Database, TEST_MASTER_KEY, TempDir, TestDatabase};
use serde_json::json;

const MOUNT: &str = "kv";
const PATH: &str = "castellan";
const DB_PASSWORD: &str = "pg-pass-2b7e151628aed2a6";
const API_KEY: &str = "sk-live-6bc1bee22e409f96";
const NEW_API_KEY: &str = "sk-live-ae2d8a571e03ac9c";

fn run<F: std::future::Future>(future: F) -> F::Output {
    actix_web::rt::System::new().block_on(future)
}

/// A fresh SQLite database with Castellan's tables and the daemon's view of its secret store.
struct Store {
    _dir: TempDir,
    _database: TestDatabase,
    db: DatabaseConnection,
    master: Arc<MasterKey>,
    store: SecretStore,
}

impl Store {
    async fn fresh() -> Store {
        let dir = TempDir::new();
        let database = TestDatabase::new(Database::Sqlite, &dir.0);
        let db = castellan_schema::connect(&database.url).await.expect("the database opens");
        castellan_schema::Migrator::up(&db, None).await.expect("migrations run");
        let master = Arc::new(MasterKey::parse(TEST_MASTER_KEY).expect("the test master key parses"));
        let store = SecretStore::new(db.clone(), Arc::clone(&master), castellan_config::SecretValidation::Strict);
        Store { _dir: dir, _database: database, db, master, store }
    }

    async fn apply(&self, values: &BTreeMap<String, String>) -> vault::ApplyReport {
        vault::apply(&self.store, &self.db, &self.master, values).await.expect("apply succeeds")
    }

    /// Sets a secret the way `castellan secrets set` does.
    async fn set_by_hand(&self, name: &str, value: &str) {
        let sealed = self.master.seal(&castellan::secrets::purpose(name), value.as_bytes());
        castellan_schema::secrets::set(&self.db, name, &sealed, chrono::Utc::now()).await.expect("stored");
        self.store.reload().await.expect("the store reloads");
    }

    /// Name and update time of every stored secret.
    async fn rows(&self) -> Vec<(String, String)> {
        let rows = castellan_schema::secrets::list(&self.db).await.expect("the secrets list");
        rows.into_iter().map(|row| (row.name, row.updated_at.to_rfc3339())).collect()
    }
}

fn source(vault: &FakeVault, auth: VaultAuth) -> VaultSource {
    VaultSource { url: vault.url.clone(), mount: MOUNT.into(), path: PATH.into(), auth, namespace: None }
}

fn token(vault: &FakeVault) -> VaultSource {
    source(vault, VaultAuth::Token(ROOT_TOKEN.into()))
}

async fn pull(source: &VaultSource) -> Result<BTreeMap<String, String>, VaultError> {
    vault::pull(&vault::client().expect("the Vault client builds"), source).await
}

fn fake_with_two_secrets() -> FakeVault {
    let vault = FakeVault::start();
    vault.put(MOUNT, PATH, json!({ "db-password": DB_PASSWORD, "api-key": API_KEY }));
    vault
}

fn pairs(values: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    values.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect()
}

#[test]
fn a_token_pull_reads_the_string_entries_and_refuses_the_others_by_key() {
    let vault = FakeVault::start();
    vault.put(
        MOUNT,
        PATH,
        json!({ "db-password": DB_PASSWORD, "api-key": API_KEY, "port": 5432, "bad name": "a value with a space" }),
    );
    let pulled = run(async { vault::pull_entries(&vault::client().expect("the client builds"), &token(&vault)).await })
        .expect("the pull succeeds");
    assert_eq!(pairs(&pulled.values), vec![("api-key", API_KEY), ("db-password", DB_PASSWORD)]);
    assert_eq!(pulled.version, Some(1), "the version read");
    let refused: Vec<&RefusedEntry> = pulled.refused.iter().collect();
    assert_eq!(
        refused,
        vec![
            &RefusedEntry { key: "bad name".into(), refusal: Refusal::InvalidName },
            &RefusedEntry { key: "port".into(), refusal: Refusal::NotAString("number") },
        ],
        "non-string values and invalid names are refused, the rest is kept"
    );
    let values = run(pull(&token(&vault))).expect("the pull succeeds");
    assert_eq!(values, pulled.values, "pull gives the same values");
    let seen = vault.seen();
    assert!(
        seen.iter().all(|request| request.method == "GET"
            && request.path == "/v1/kv/data/castellan"
            && request.token.as_deref() == Some(ROOT_TOKEN)
            && request.namespace.is_none()),
        "one KV read per pull, with the token and no namespace: {seen:?}"
    );
}

#[test]
fn an_approle_pull_logs_in_reads_with_the_issued_token_and_revokes_it() {
    let vault = fake_with_two_secrets();
    let approle = source(&vault, VaultAuth::approle(ROLE_ID.into(), SECRET_ID.into()));
    let values = run(pull(&approle)).expect("the pull succeeds");
    assert_eq!(pairs(&values), vec![("api-key", API_KEY), ("db-password", DB_PASSWORD)]);
    let seen = vault.seen();
    let steps: Vec<(&str, &str)> =
        seen.iter().map(|request| (request.method.as_str(), request.path.as_str())).collect();
    assert_eq!(
        steps,
        vec![
            ("POST", "/v1/auth/approle/login"),
            ("GET", "/v1/kv/data/castellan"),
            ("POST", "/v1/auth/token/revoke-self")
        ],
        "login, read, revoke"
    );
    let issued = seen[1].token.clone().expect("the read carries a token");
    assert!(issued.starts_with("hvs.fake-approle-"), "the read uses the issued token: {issued}");
    assert_eq!(seen[2].token.as_deref(), Some(issued.as_str()), "the issued token revokes itself");
    assert_eq!(vault.live_approle_tokens(), 0, "no token is left behind");
}

#[test]
fn a_wrong_secret_id_is_a_login_refusal_that_does_not_carry_the_credentials() {
    let vault = fake_with_two_secrets();
    let wrong = "wrong-secret-id-9d2f7a";
    let approle = source(&vault, VaultAuth::approle(ROLE_ID.into(), wrong.into()));
    let error = run(pull(&approle)).expect_err("the login is refused");
    let message = error.to_string();
    assert!(matches!(error, VaultError::LoginRefused { status: 400, .. }), "{message}");
    assert!(message.contains("invalid role or secret ID") && message.contains("auth/approle/login"), "{message}");
    assert!(!message.contains(wrong) && !message.contains(ROLE_ID), "no credential in: {message}");
}

#[test]
fn a_bad_token_is_a_403_that_does_not_name_the_token() {
    let vault = fake_with_two_secrets();
    let bad = "hvs.not-a-valid-token-4e8d";
    let error = run(pull(&source(&vault, VaultAuth::Token(bad.into())))).expect_err("refused");
    let message = error.to_string();
    assert!(matches!(error, VaultError::PermissionDenied { .. }), "{message}");
    assert!(message.contains("403") && message.contains("permission denied"), "names the status: {message}");
    assert!(message.contains("kv/data/castellan"), "names what was read: {message}");
    assert!(!message.contains(bad) && !message.contains(DB_PASSWORD), "no token, no value in: {message}");
}

#[test]
fn a_missing_path_is_a_404_naming_the_path() {
    let vault = fake_with_two_secrets();
    let mut missing = token(&vault);
    missing.path = "nobody/home".into();
    let error = run(pull(&missing)).expect_err("there is nothing there");
    let message = error.to_string();
    assert!(matches!(error, VaultError::NoSuchPath { .. }), "{message}");
    assert!(message.contains("404") && message.contains("kv/data/nobody/home"), "{message}");
    assert!(!message.contains(ROOT_TOKEN), "{message}");
}

#[test]
fn the_namespace_is_sent_and_selects_where_the_path_is_read() {
    let vault = FakeVault::start();
    vault.put_in_namespace("team-a", MOUNT, PATH, json!({ "api-key": API_KEY }));
    let mut in_namespace = token(&vault);
    in_namespace.namespace = Some("team-a".into());
    let values = run(pull(&in_namespace)).expect("found in the namespace");
    assert_eq!(pairs(&values), vec![("api-key", API_KEY)]);
    assert_eq!(vault.seen()[0].namespace.as_deref(), Some("team-a"), "X-Vault-Namespace is sent");
    let error = run(pull(&token(&vault))).expect_err("not in the root namespace");
    assert!(matches!(error, VaultError::NoSuchPath { .. }), "{error}");
}

#[test]
fn apply_writes_only_what_differs_and_a_second_run_writes_nothing() {
    let vault = fake_with_two_secrets();
    run(async {
        let store = Store::fresh().await;
        store.set_by_hand("local-only", "set-by-hand-3a9f1c").await;
        store.set_by_hand("db-password", DB_PASSWORD).await;
        let before = store.rows().await;

        let values = pull(&token(&vault)).await.expect("the pull succeeds");
        let first = store.apply(&values).await;
        assert_eq!(first.changed, vec!["api-key".to_string()], "only the new secret is written: {first}");
        assert_eq!(first.unchanged, 1, "the password was already stored as it is");
        assert_eq!(store.store.get("api-key").as_deref(), Some(API_KEY), "the store sees it at once");
        assert_eq!(store.store.get("local-only").as_deref(), Some("set-by-hand-3a9f1c"), "others are left alone");
        let after_first = store.rows().await;
        let time_of = |rows: &[(String, String)], name: &str| {
            rows.iter().find(|(row, _)| row == name).map(|(_, time)| time.clone())
        };
        assert_eq!(time_of(&after_first, "db-password"), time_of(&before, "db-password"), "not rewritten");

        let second = store.apply(&values).await;
        assert_eq!(second, vault::ApplyReport { changed: vec![], unchanged: 2 }, "{second}");
        assert_eq!(second.to_string(), "no secret changed (2 unchanged)");
        assert_eq!(store.rows().await, after_first, "the second run wrote nothing");
    });
}

#[test]
fn a_value_changed_in_vault_is_reported_by_its_name_alone() {
    let mut vault = fake_with_two_secrets();
    run(async {
        let store = Store::fresh().await;
        let values = pull(&token(&vault)).await.expect("the pull succeeds");
        assert_eq!(store.apply(&values).await.changed.len(), 2, "both are new");

        assert_eq!(vault.set(MOUNT, PATH, "api-key", json!(NEW_API_KEY)), 2, "a new version");
        let values = pull(&token(&vault)).await.expect("the pull succeeds");
        let report = store.apply(&values).await;
        assert_eq!(report, vault::ApplyReport { changed: vec!["api-key".into()], unchanged: 1 });
        let line = report.to_string();
        assert_eq!(line, "1 secret changed: api-key (1 unchanged)");
        assert!(!line.contains(NEW_API_KEY) && !line.contains(API_KEY), "no value in: {line}");
        assert_eq!(store.store.get("api-key").as_deref(), Some(NEW_API_KEY), "the new value is in use");
        assert_eq!(store.store.get("db-password").as_deref(), Some(DB_PASSWORD));

        // Vault goes away: the pull fails, nothing is applied, the store keeps the last values.
        let rows = store.rows().await;
        vault.stop();
        let error = pull(&token(&vault)).await.expect_err("Vault is down");
        let message = error.to_string();
        assert!(matches!(error, VaultError::Unreachable { .. }), "{message}");
        assert!(message.contains("unreachable") && message.contains(&vault.url), "{message}");
        assert!(!message.contains(ROOT_TOKEN), "{message}");
        store.store.reload().await.expect("the store reloads");
        assert_eq!(store.store.get("api-key").as_deref(), Some(NEW_API_KEY), "the last value stays");
        assert_eq!(store.rows().await, rows, "nothing was written");
    });
}
