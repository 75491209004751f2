//! `castellan_schema::secrets`: the sealed secret store.

use castellan_schema::secrets::{self, SecretInfo};
use castellan_schema::truncate_to_micros;

use crate::support::{TestDatabase, instant};

pub async fn secrets_set_replace_list_and_remove(database: TestDatabase) {
    let db = &database.db;
    assert!(secrets::list(db).await.expect("list").is_empty(), "an empty store");
    secrets::set(db, "b_token", "v1.sealed-b", instant(1)).await.expect("set b");
    secrets::set(db, "a_token", "v1.sealed-a", instant(2)).await.expect("set a");
    secrets::set(db, "b_token", "v1.sealed-b2", instant(3)).await.expect("replace b");
    let listed = secrets::list(db).await.expect("list");
    let expected = vec![
        SecretInfo {
            name: "a_token".into(),
            created_at: truncate_to_micros(instant(2)),
            updated_at: truncate_to_micros(instant(2)),
        },
        SecretInfo {
            name: "b_token".into(),
            created_at: truncate_to_micros(instant(1)),
            updated_at: truncate_to_micros(instant(3)),
        },
    ];
    assert_eq!(listed, expected, "names in order; replacing keeps the creation time");
    let sealed = secrets::all_sealed(db).await.expect("all");
    assert_eq!(
        sealed,
        vec![("a_token".to_string(), "v1.sealed-a".to_string()), ("b_token".to_string(), "v1.sealed-b2".to_string())],
        "the latest sealed value of each"
    );
    assert!(secrets::remove(db, "a_token").await.expect("remove"), "an existing secret is removed");
    assert!(!secrets::remove(db, "a_token").await.expect("remove again"), "removing twice reports nothing removed");
    assert_eq!(secrets::list(db).await.expect("list").len(), 1, "one left");
}
