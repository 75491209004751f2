//! The `castellan_meta` functions.

use castellan_schema::meta;

use crate::support::TestDatabase;

pub async fn meta_get_set_overwrite(database: TestDatabase) {
    let db = &database.db;
    assert_eq!(meta::get(db, "bootstrap").await.expect("get"), None);
    meta::set(db, "bootstrap", "pending").await.expect("set");
    assert_eq!(meta::get(db, "bootstrap").await.expect("get").as_deref(), Some("pending"));
    meta::set(db, "bootstrap", "done").await.expect("overwrite");
    assert_eq!(meta::get(db, "bootstrap").await.expect("get").as_deref(), Some("done"));
    assert!(
        !meta::set_if_absent(db, "bootstrap", "again").await.expect("set_if_absent"),
        "an existing key is not replaced"
    );
    assert_eq!(meta::get(db, "bootstrap").await.expect("get").as_deref(), Some("done"));
    assert!(meta::set_if_absent(db, "other", "1").await.expect("set_if_absent"));
    assert_eq!(meta::get(db, "other").await.expect("get").as_deref(), Some("1"));
}

pub async fn meta_set_if_absent_has_one_winner(database: TestDatabase) {
    let mut contenders = Vec::new();
    for index in 0..8 {
        let db = database.db.clone();
        contenders.push(tokio::spawn(async move {
            let won =
                meta::set_if_absent(&db, "bootstrap", &format!("contender-{index}")).await.expect("set_if_absent");
            (index, won)
        }));
    }
    let mut winners = Vec::new();
    for contender in contenders {
        let (index, won) = contender.await.expect("join");
        if won {
            winners.push(index);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner, got {winners:?}");
    let stored = meta::get(&database.db, "bootstrap").await.expect("get");
    assert_eq!(stored, Some(format!("contender-{}", winners[0])), "the winner's value is stored");
}
