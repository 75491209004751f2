//! The identity migration: up, down and up again, and revocation ids that never repeat.

use castellan_schema::{Migrator, MigratorTrait, oauth, users};

use crate::support::{TestDatabase, instant};

const IDENTITY_TABLES: [&str; 11] = [
    "oauth_clients",
    "oauth_grants",
    "oauth_codes",
    "oauth_refresh_tokens",
    "oauth_revocations",
    "signing_keys",
    "browser_sessions",
    "oauth_consents",
    "webauthn_credentials",
    "auth_flow_states",
    "enrolment_links",
];

async fn table_exists(database: &TestDatabase, table: &str) -> bool {
    use sea_orm::ConnectionTrait;
    database.db.execute_unprepared(&format!("SELECT COUNT(*) FROM {table}")).await.is_ok()
}

/// Rolling back the identity migration drops its tables and nothing else; applying it again
/// brings them back.
pub async fn identity_migration_up_down_up(database: TestDatabase) {
    let alice = users::create(&database.db, "alice", "user", &[], instant(0)).await.expect("create alice");
    for table in IDENTITY_TABLES {
        assert!(table_exists(&database, table).await, "{table} exists after migrating");
    }
    // Later migrations (secrets, tool pins, ...) came after the identity one: roll them back with it.
    let after_initial = (Migrator::migrations().len() - 1) as u32;
    Migrator::down(&database.db, Some(after_initial))
        .await
        .expect("roll back the identity migration and the later ones");
    for table in IDENTITY_TABLES {
        assert!(!table_exists(&database, table).await, "{table} is dropped by the rollback");
    }
    let found = users::find_by_id(&database.db, alice.id).await.expect("find alice");
    assert_eq!(found, Some(alice), "the initial schema and its rows survive");
    let pending = Migrator::get_pending_migrations(&database.db).await.expect("pending");
    assert_eq!(
        pending.len(),
        after_initial as usize,
        "exactly the identity migration and the later ones are pending again"
    );
    castellan_schema::migrate(&database.db).await.expect("migrate again");
    for table in IDENTITY_TABLES {
        assert!(table_exists(&database, table).await, "{table} exists after migrating again");
    }
}

/// A replica polls the revocation log by id, so a purged newest entry must not have its id
/// handed out again (SQLite reuses rowids unless the table is AUTOINCREMENT).
pub async fn revocation_ids_are_never_reused(database: TestDatabase) {
    let db = &database.db;
    oauth::revoke_jti(db, "jti-1", instant(60), instant(0)).await.expect("revoke jti-1");
    oauth::revoke_jti(db, "jti-2", instant(60), instant(0)).await.expect("revoke jti-2");
    let before = oauth::revocations_after(db, 0, instant(0)).await.expect("read the log");
    let last_id = before.last().expect("two entries").id;
    assert_eq!(oauth::purge_expired(db, instant(60)).await.expect("purge"), 2, "both entries expire");
    oauth::revoke_jti(db, "jti-3", instant(120), instant(61)).await.expect("revoke jti-3");
    let after = oauth::revocations_after(db, 0, instant(61)).await.expect("read the log");
    assert_eq!(after.len(), 1);
    assert!(after[0].id > last_id, "new id {} must exceed the purged {last_id}", after[0].id);
    assert_eq!(oauth::revocations_after(db, last_id, instant(61)).await.expect("poll"), after, "a poller sees it");
}
