//! `castellan_schema::retention`: pruning by age, in batches, never past the forwarded position,
//! never a request still in flight.

use castellan_schema::ai_requests;
use castellan_schema::entity::{ai_requests as ai_entity, hook_events as hook_entity};
use castellan_schema::hook_events;
use castellan_schema::retention::{self, PruneLimits};
use sea_orm::{EntityTrait, QueryOrder};

use crate::ai_requests_cases::{request, success};
use crate::hook_events_cases::{at, decision};
use crate::support::{TestDatabase, instant};

pub async fn retention_prunes_old_ai_requests_in_batches_and_keeps_unforwarded_and_open_ones(database: TestDatabase) {
    let db = &database.db;
    let mut ids = Vec::new();
    for second in 0..7 {
        let started = instant(second * 10);
        ids.push(
            ai_requests::insert_finished(db, &request("alice", "gpt-5", started), &success(Some(1), started))
                .await
                .expect("row"),
        );
    }
    let open = ai_requests::insert_started(db, &request("bob", "gpt-5", instant(1))).await.expect("open row");
    // Old enough: the rows started at 0..=50 s (six) and the open one; the forwarded position keeps
    // everything above the fifth row.
    let limits = PruneLimits { older_than: instant(55), forwarded_up_to: Some(ids[4]), batch: 2, only_user: None };
    assert_eq!(retention::prune_ai_requests(db, limits).await.expect("prune"), 5, "five old, forwarded, finished rows");
    let left: Vec<i64> = ai_entity::Entity::find()
        .order_by_asc(ai_entity::Column::Id)
        .all(db)
        .await
        .expect("rows")
        .iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(left, vec![ids[5], ids[6], open], "the unforwarded rows and the open one stay");
    let everything = PruneLimits { older_than: instant(1000), forwarded_up_to: None, batch: 100, only_user: None };
    assert_eq!(retention::prune_ai_requests(db, everything).await.expect("prune"), 2, "no sink: age alone decides");
    let left: Vec<i64> = ai_entity::Entity::find().all(db).await.expect("rows").iter().map(|row| row.id).collect();
    assert_eq!(left, vec![open], "a request still in flight is never pruned");
    assert_eq!(retention::prune_ai_requests(db, everything).await.expect("again"), 0, "idempotent");
}

pub async fn retention_prunes_old_hook_events_and_keeps_unforwarded_ones(database: TestDatabase) {
    let db = &database.db;
    let mut ids = Vec::new();
    for second in 0..5 {
        ids.push(hook_events::record(db, &decision("PreToolUse", "builtin:allow", second * 10)).await.expect("row"));
    }
    let limits = PruneLimits { older_than: at(35), forwarded_up_to: Some(ids[2]), batch: 1, only_user: None };
    assert_eq!(retention::prune_hook_events(db, limits).await.expect("prune"), 3, "rows at 0, 10 and 20 s");
    let left: Vec<i64> = hook_entity::Entity::find()
        .order_by_asc(hook_entity::Column::Id)
        .all(db)
        .await
        .expect("rows")
        .iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(left, vec![ids[3], ids[4]], "the row at 30 s is old but not forwarded; the one at 40 s is young");
}

pub async fn retention_of_anonymous_callers_touches_only_their_rows(database: TestDatabase) {
    let db = &database.db;
    let started = instant(0);
    let alice = ai_requests::insert_finished(db, &request("alice", "gpt-5", started), &success(Some(1), started))
        .await
        .expect("alice's row");
    let anonymous =
        ai_requests::insert_finished(db, &request("anonymous", "gpt-5", started), &success(Some(1), started))
            .await
            .expect("an anonymous row");
    let limits =
        PruneLimits { older_than: instant(10), forwarded_up_to: None, batch: 10, only_user: Some("anonymous") };
    assert_eq!(retention::prune_ai_requests(db, limits).await.expect("prune"), 1);
    let left: Vec<i64> = ai_entity::Entity::find().all(db).await.expect("rows").iter().map(|row| row.id).collect();
    assert_eq!(left, vec![alice], "alice's equally old row stays; the anonymous one {anonymous} is gone");
}
