//! `castellan_schema::webauthn`: passkeys.

use castellan_schema::webauthn::{self, CredentialRow};
use castellan_schema::{DbError, truncate_to_micros, users};

use crate::support::{TestDatabase, instant};

pub async fn webauthn_credentials_round_trip(database: TestDatabase) {
    let db = &database.db;
    let alice = users::create(db, "alice", "user", &[], instant(0)).await.expect("create alice").id;
    let bob = users::create(db, "bob", "user", &[], instant(0)).await.expect("create bob").id;
    assert_eq!(webauthn::count_credentials(db).await.expect("count"), 0);
    let first = webauthn::insert_credential(db, alice, "cred-a1", r#"{"n":1}"#, instant(1)).await.expect("insert");
    let expected = CredentialRow {
        id: first.id,
        user_id: alice,
        credential_id: "cred-a1".to_owned(),
        passkey: r#"{"n":1}"#.to_owned(),
        created_at: truncate_to_micros(instant(1)),
        last_used_at: None,
    };
    assert_eq!(first, expected);
    let second = webauthn::insert_credential(db, alice, "cred-a2", "{}", instant(2)).await.expect("insert");
    webauthn::insert_credential(db, bob, "cred-b1", "{}", instant(3)).await.expect("insert");
    let duplicate = webauthn::insert_credential(db, bob, "cred-a1", "{}", instant(4)).await;
    assert!(matches!(duplicate, Err(DbError::AlreadyExists(_))), "got {duplicate:?}");
    let missing = webauthn::insert_credential(db, bob + 9, "cred-x", "{}", instant(4)).await;
    assert!(matches!(missing, Err(DbError::NotFound(_))), "got {missing:?}");

    assert_eq!(webauthn::credentials_for_user(db, alice).await.expect("list"), [expected.clone(), second]);
    assert_eq!(webauthn::count_credentials(db).await.expect("count"), 3);
    webauthn::update_credential(db, "cred-a1", r#"{"n":2}"#, instant(5)).await.expect("update");
    let updated = webauthn::find_credential(db, "cred-a1").await.expect("find");
    let expected_update = CredentialRow {
        passkey: r#"{"n":2}"#.to_owned(),
        last_used_at: Some(truncate_to_micros(instant(5))),
        ..expected
    };
    assert_eq!(updated, Some(expected_update));
    assert_eq!(webauthn::find_credential(db, "cred-none").await.expect("find"), None);
    let gone = webauthn::update_credential(db, "cred-none", "{}", instant(6)).await;
    assert!(matches!(gone, Err(DbError::NotFound(_))), "got {gone:?}");

    database.execute(&format!("DELETE FROM users WHERE id = {alice}")).await;
    assert_eq!(webauthn::credentials_for_user(db, alice).await.expect("list"), []);
    assert_eq!(webauthn::count_credentials(db).await.expect("count"), 1, "cascades with the user");
}
