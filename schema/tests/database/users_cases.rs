//! The `users` functions.

use castellan_schema::{DbError, truncate_to_micros, users};

use crate::support::{TestDatabase, instant};

fn scopes(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

pub async fn users_create_find_list_count(database: TestDatabase) {
    let db = &database.db;
    assert_eq!(users::count(db).await.expect("count"), 0);
    let now = instant(0);
    let alice = users::create(db, "alice", "user", &scopes(&["user", "mcp:tools"]), now).await.expect("create alice");
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.tier, "user");
    assert_eq!(alice.scopes, scopes(&["user", "mcp:tools"]));
    assert!(!alice.disabled, "new users are enabled");
    assert_eq!(alice.created_at, truncate_to_micros(now), "stored at microsecond precision");
    let robot = users::create(db, "robot", "service", &[], instant(1)).await.expect("create robot");

    let found = users::find_by_name(db, "alice").await.expect("find alice");
    assert_eq!(found.as_ref(), Some(&alice), "reads back exactly what was written");
    let found = users::find_by_id(db, robot.id).await.expect("find robot");
    assert_eq!(found.as_ref(), Some(&robot));
    assert_eq!(users::find_by_name(db, "nobody").await.expect("find"), None);
    assert_eq!(users::find_by_id(db, robot.id + 100).await.expect("find"), None);

    let listed = users::list(db).await.expect("list");
    assert_eq!(listed, vec![alice, robot], "listed in id order");
    assert_eq!(users::count(db).await.expect("count"), 2);
}

pub async fn users_duplicate_name_and_unknown_tier(database: TestDatabase) {
    let db = &database.db;
    users::create(db, "alice", "user", &[], instant(0)).await.expect("create alice");
    let duplicate = users::create(db, "alice", "admin", &[], instant(1)).await;
    assert!(matches!(duplicate, Err(DbError::AlreadyExists(_))), "a taken name is AlreadyExists, got {duplicate:?}");
    let unknown_tier = users::create(db, "bob", "superuser", &[], instant(2)).await;
    assert!(matches!(unknown_tier, Err(DbError::Other(_))), "an unknown tier is refused, got {unknown_tier:?}");
    for tier in castellan_schema::TIERS {
        users::create(db, &format!("user-{tier}"), tier, &[], instant(3))
            .await
            .unwrap_or_else(|error| panic!("tier {tier}: {error}"));
    }
    assert_eq!(users::count(db).await.expect("count"), 7);
}

pub async fn users_update_tier(database: TestDatabase) {
    let db = &database.db;
    let alice = users::create(db, "alice", "user", &scopes(&["mcp:tools"]), instant(0)).await.expect("create alice");
    let bob = users::create(db, "bob", "user", &[], instant(0)).await.expect("create bob");
    users::update_tier(db, alice.id, "admin").await.expect("raise alice");
    let found = users::find_by_id(db, alice.id).await.expect("find alice").expect("alice exists");
    assert_eq!(found, users::UserRow { tier: "admin".into(), ..alice.clone() }, "only the tier changed");
    users::update_tier(db, alice.id, "service").await.expect("lower alice");
    assert_eq!(users::find_by_id(db, alice.id).await.expect("find").expect("alice").tier, "service", "lowered");
    assert_eq!(users::find_by_id(db, bob.id).await.expect("find").expect("bob"), bob, "bob is untouched");
    let unknown = users::update_tier(db, alice.id, "superuser").await;
    assert!(matches!(unknown, Err(DbError::Other(_))), "an unknown tier is refused, got {unknown:?}");
    assert_eq!(users::find_by_id(db, alice.id).await.expect("find").expect("alice").tier, "service", "unchanged");
    let missing = users::update_tier(db, bob.id + 100, "user").await;
    assert!(matches!(missing, Err(DbError::NotFound(_))), "no such user is NotFound, got {missing:?}");
}
