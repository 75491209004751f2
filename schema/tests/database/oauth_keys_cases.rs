//! `castellan_schema::oauth` signing keys.

use castellan_schema::oauth::{self, SigningKeyRow};
use castellan_schema::{DbError, truncate_to_micros};

use crate::support::{TestDatabase, instant};

fn key(kid: &str, created_seconds: i64) -> SigningKeyRow {
    SigningKeyRow {
        kid: kid.to_owned(),
        alg: "EdDSA".to_owned(),
        sealed_private_key: format!("c2VhbGVk{kid}"),
        public_jwk: format!(r#"{{"kty":"OKP","crv":"Ed25519","kid":"{kid}","x":"AAAA"}}"#),
        created_at: instant(created_seconds),
        retired_at: None,
        delete_after: None,
    }
}

fn kids(rows: &[SigningKeyRow]) -> Vec<&str> {
    rows.iter().map(|row| row.kid.as_str()).collect()
}

pub async fn signing_keys_order_retire_purge(database: TestDatabase) {
    let db = &database.db;
    for (kid, created) in [("k-old", 0), ("k-new", 200), ("k-mid", 100)] {
        oauth::insert_signing_key(db, &key(kid, created)).await.expect("insert key");
    }
    let duplicate = oauth::insert_signing_key(db, &key("k-old", 5)).await;
    assert!(matches!(duplicate, Err(DbError::AlreadyExists(_))), "got {duplicate:?}");
    let listed = oauth::list_signing_keys(db, instant(300)).await.expect("list");
    assert_eq!(kids(&listed), ["k-new", "k-mid", "k-old"], "newest created_at first");
    let expected = SigningKeyRow { created_at: truncate_to_micros(instant(200)), ..key("k-new", 200) };
    assert_eq!(listed[0], expected, "reads back exactly, timestamps truncated");

    let retired = oauth::retire_signing_keys_except(db, "k-new", instant(1000), instant(300)).await.expect("retire");
    assert_eq!(retired, 2);
    let again = oauth::retire_signing_keys_except(db, "k-new", instant(5000), instant(400)).await.expect("retire");
    assert_eq!(again, 0, "retired keys keep their first retirement");
    let listed = oauth::list_signing_keys(db, instant(999)).await.expect("list");
    assert_eq!(kids(&listed), ["k-new", "k-mid", "k-old"], "retired keys are listed until delete_after");
    assert_eq!(listed[0].retired_at, None, "the kept key is not retired");
    assert_eq!(listed[1].retired_at, Some(truncate_to_micros(instant(300))));
    assert_eq!(listed[1].delete_after, Some(truncate_to_micros(instant(1000))));

    assert_eq!(
        kids(&oauth::list_signing_keys(db, instant(1000)).await.expect("list")),
        ["k-new"],
        "due at delete_after"
    );
    assert_eq!(oauth::purge_signing_keys(db, instant(999)).await.expect("purge"), 0, "not yet due");
    assert_eq!(oauth::purge_signing_keys(db, instant(1000)).await.expect("purge"), 2);
    assert_eq!(kids(&oauth::list_signing_keys(db, instant(0)).await.expect("list")), ["k-new"], "deleted for good");
}

/// A key inserted already retired keeps its timestamps, truncated.
pub async fn signing_keys_insert_retired(database: TestDatabase) {
    let db = &database.db;
    let written = SigningKeyRow { retired_at: Some(instant(10)), delete_after: Some(instant(20)), ..key("k-1", 0) };
    oauth::insert_signing_key(db, &written).await.expect("insert");
    let listed = oauth::list_signing_keys(db, instant(19)).await.expect("list");
    let expected = SigningKeyRow {
        created_at: truncate_to_micros(instant(0)),
        retired_at: Some(truncate_to_micros(instant(10))),
        delete_after: Some(truncate_to_micros(instant(20))),
        ..written
    };
    assert_eq!(listed, [expected]);
}
