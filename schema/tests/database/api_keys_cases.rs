//! The `api_keys` functions.

use castellan_schema::{DbError, api_keys, truncate_to_micros, users};

use crate::support::{TestDatabase, instant};

const HASH_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const HASH_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

async fn user(database: &TestDatabase, name: &str) -> users::UserRow {
    users::create(&database.db, name, "user", &["user".to_owned()], instant(0)).await.expect("create user")
}

pub async fn api_keys_insert_find_list(database: TestDatabase) {
    let db = &database.db;
    let alice = user(&database, "alice").await;
    let bob = user(&database, "bob").await;
    let key_scopes = vec!["mcp:tools".to_owned()];
    let inserted =
        api_keys::insert(db, alice.id, "pub_alice001", HASH_A, &key_scopes, Some(instant(3600)), instant(10))
            .await
            .expect("insert");
    assert_eq!(inserted.public_id, "pub_alice001");
    assert_eq!(inserted.user_id, alice.id);
    assert_eq!(inserted.key_hash, HASH_A);
    assert_eq!(inserted.scopes, key_scopes);
    assert_eq!(inserted.created_at, truncate_to_micros(instant(10)));
    assert_eq!(inserted.expires_at, Some(truncate_to_micros(instant(3600))));
    assert_eq!(inserted.revoked_at, None);
    assert_eq!(inserted.last_used_at, None);
    let second =
        api_keys::insert(db, bob.id, "pub_bob00001", HASH_B, &[], None, instant(11)).await.expect("insert second");

    let (key, owner) = api_keys::find_by_hash(db, HASH_A).await.expect("find").expect("the key exists");
    assert_eq!(key, inserted, "reads back exactly what was written");
    assert_eq!(owner, alice);
    assert_eq!(api_keys::find_by_hash(db, &"c".repeat(64)).await.expect("find"), None);

    let listed = api_keys::list(db).await.expect("list");
    assert_eq!(listed, vec![(inserted, alice), (second, bob)], "keys with their users, by id");
}

pub async fn api_keys_revoke_and_touch(database: TestDatabase) {
    let db = &database.db;
    let alice = user(&database, "alice").await;
    let key = api_keys::insert(db, alice.id, "pub_alice001", HASH_A, &[], None, instant(0)).await.expect("insert");

    api_keys::touch_last_used(db, key.id, instant(5)).await.expect("touch");
    assert!(api_keys::revoke(db, "pub_alice001", instant(20)).await.expect("revoke"));
    assert!(
        !api_keys::revoke(db, "pub_alice001", instant(30)).await.expect("revoke again"),
        "a second revocation reports false"
    );
    assert!(
        !api_keys::revoke(db, "pub_missing0", instant(30)).await.expect("revoke unknown"),
        "an unknown key reports false"
    );
    let (found, _) = api_keys::find_by_hash(db, HASH_A).await.expect("find").expect("revoked keys are still returned");
    assert_eq!(found.revoked_at, Some(truncate_to_micros(instant(20))), "the first revocation time is kept");
    assert_eq!(found.last_used_at, Some(truncate_to_micros(instant(5))));
}

pub async fn api_keys_conflicts_and_missing_user(database: TestDatabase) {
    let db = &database.db;
    let alice = user(&database, "alice").await;
    api_keys::insert(db, alice.id, "pub_alice001", HASH_A, &[], None, instant(0)).await.expect("insert");
    let cases = [("same hash", "pub_alice002", HASH_A), ("same public id", "pub_alice001", HASH_B)];
    for (what, public_id, hash) in cases {
        let result = api_keys::insert(db, alice.id, public_id, hash, &[], None, instant(1)).await;
        assert!(matches!(result, Err(DbError::AlreadyExists(_))), "{what}: expected AlreadyExists, got {result:?}");
    }
    let result = api_keys::insert(db, alice.id + 1000, "pub_nobody01", HASH_B, &[], None, instant(1)).await;
    assert!(matches!(result, Err(DbError::NotFound(_))), "a missing user is NotFound, got {result:?}");
}

/// Deleting a user removes its keys: foreign keys are enforced on every connection.
pub async fn api_keys_cascade_when_user_deleted(database: TestDatabase) {
    let db = &database.db;
    let alice = user(&database, "alice").await;
    api_keys::insert(db, alice.id, "pub_alice001", HASH_A, &[], None, instant(0)).await.expect("insert");
    let deleted = database.execute(&format!("DELETE FROM users WHERE id = {}", alice.id)).await;
    assert_eq!(deleted, 1);
    assert_eq!(api_keys::find_by_hash(db, HASH_A).await.expect("find"), None);
    assert!(api_keys::list(db).await.expect("list").is_empty());
}
