//! `castellan_schema::sessions`: browser sessions, flow states, enrolment links.

use castellan_schema::sessions::{self, FlowStateRow, SessionRow};
use castellan_schema::{DbError, oauth, truncate_to_micros, users};
use chrono::TimeDelta;

use crate::support::{TestDatabase, instant};

async fn alice(database: &TestDatabase) -> i64 {
    users::create(&database.db, "alice", "user", &[], instant(0)).await.expect("create alice").id
}

pub async fn sessions_create_find_delete(database: TestDatabase) {
    let db = &database.db;
    let user_id = alice(&database).await;
    sessions::create_session(db, "s-1", user_id, instant(-5), instant(3600), instant(0)).await.expect("create");
    let expected = SessionRow {
        session_hash: "s-1".to_owned(),
        user_id,
        auth_time: truncate_to_micros(instant(-5)),
        created_at: truncate_to_micros(instant(0)),
        expires_at: truncate_to_micros(instant(3600)),
    };
    assert_eq!(sessions::find_session(db, "s-1", instant(10)).await.expect("find"), Some(expected));
    assert_eq!(sessions::find_session(db, "s-1", instant(3600)).await.expect("find"), None, "expired at expires_at");
    assert_eq!(sessions::find_session(db, "s-none", instant(10)).await.expect("find"), None);
    let duplicate = sessions::create_session(db, "s-1", user_id, instant(0), instant(9), instant(0)).await;
    assert!(matches!(duplicate, Err(DbError::AlreadyExists(_))), "got {duplicate:?}");
    let missing = sessions::create_session(db, "s-2", user_id + 7, instant(0), instant(9), instant(0)).await;
    assert!(matches!(missing, Err(DbError::NotFound(_))), "got {missing:?}");
    sessions::delete_session(db, "s-1").await.expect("delete");
    sessions::delete_session(db, "s-1").await.expect("deleting twice is fine");
    assert_eq!(sessions::find_session(db, "s-1", instant(10)).await.expect("find"), None);
}

/// Expiry compares instants, not text: on SQLite timestamps are stored as RFC 3339 text with 0,
/// 3 or 6 fractional digits, and the comparison must still be right a microsecond either side.
pub async fn sessions_expiry_is_exact_to_the_microsecond(database: TestDatabase) {
    let db = &database.db;
    let user_id = alice(&database).await;
    let whole_second = instant(0) - TimeDelta::nanoseconds(123_456_789);
    let cases = [
        ("whole second", whole_second),
        ("whole millisecond", whole_second + TimeDelta::milliseconds(250)),
        ("microseconds", whole_second + TimeDelta::microseconds(999_999)),
    ];
    let microsecond = TimeDelta::microseconds(1);
    for (index, (what, expires_at)) in cases.into_iter().enumerate() {
        let hash = format!("s-{index}");
        sessions::create_session(db, &hash, user_id, instant(-60), expires_at, instant(-60)).await.expect("create");
        for (now, alive) in [(expires_at - microsecond, true), (expires_at, false), (expires_at + microsecond, false)] {
            let found = sessions::find_session(db, &hash, now).await.expect("find").is_some();
            assert_eq!(found, alive, "{what}: expires {expires_at:?}, now {now:?}");
        }
    }
}

fn flow_row(id_hash: &str, kind: &str, user_id: Option<i64>, state: &str, expires_seconds: i64) -> FlowStateRow {
    FlowStateRow {
        id_hash: id_hash.to_owned(),
        kind: kind.to_owned(),
        user_id,
        state: state.to_owned(),
        created_at: truncate_to_micros(instant(0)),
        expires_at: truncate_to_micros(instant(expires_seconds)),
    }
}

pub async fn flow_states_take_peek_kind_expiry(database: TestDatabase) {
    let db = &database.db;
    let user_id = alice(&database).await;
    sessions::put_flow_state(db, "f-1", "passkey_login", Some(user_id), r#"{"c":1}"#, instant(300), instant(0))
        .await
        .expect("put");
    let expected = flow_row("f-1", "passkey_login", Some(user_id), r#"{"c":1}"#, 300);
    assert_eq!(sessions::peek_flow_state(db, "f-1", "authorize", instant(1)).await.expect("peek"), None, "other kind");
    assert_eq!(sessions::take_flow_state(db, "f-1", "authorize", instant(1)).await.expect("take"), None, "other kind");
    assert_eq!(
        sessions::peek_flow_state(db, "f-1", "passkey_login", instant(1)).await.expect("peek"),
        Some(expected.clone())
    );
    assert_eq!(
        sessions::peek_flow_state(db, "f-1", "passkey_login", instant(300)).await.expect("peek"),
        None,
        "expired"
    );
    assert_eq!(
        sessions::take_flow_state(db, "f-1", "passkey_login", instant(2)).await.expect("take"),
        Some(expected),
        "a wrong-kind take left the row alone"
    );
    assert_eq!(
        sessions::take_flow_state(db, "f-1", "passkey_login", instant(2)).await.expect("take"),
        None,
        "single use"
    );

    sessions::put_flow_state(db, "f-2", "authorize", None, "{}", instant(10), instant(0)).await.expect("put");
    assert_eq!(sessions::take_flow_state(db, "f-2", "authorize", instant(10)).await.expect("take"), None, "expired");
    sessions::put_flow_state(db, "f-2", "authorize", None, "{}", instant(20), instant(0)).await.expect("put again");
    assert_eq!(
        sessions::take_flow_state(db, "f-2", "authorize", instant(11)).await.expect("take"),
        Some(flow_row("f-2", "authorize", None, "{}", 20)),
        "the expired take deleted the old row, so the new one is whole"
    );

    sessions::put_flow_state(db, "f-3", "authorize", None, "old", instant(10), instant(0)).await.expect("put");
    sessions::put_flow_state(db, "f-3", "federated", Some(user_id), "new", instant(30), instant(0)).await.expect("put");
    assert_eq!(
        sessions::peek_flow_state(db, "f-3", "federated", instant(11)).await.expect("peek"),
        Some(flow_row("f-3", "federated", Some(user_id), "new", 30)),
        "put replaces"
    );
    sessions::put_flow_state(db, "f-4", "authorize", None, "{}", instant(5), instant(0)).await.expect("put");
    assert_eq!(oauth::purge_expired(db, instant(30)).await.expect("purge"), 2, "f-3 and f-4 expired");
}

/// Eight tasks take one state at once: exactly one gets it.
pub async fn flow_states_taken_once_under_concurrency(database: TestDatabase) {
    sessions::put_flow_state(&database.db, "f-1", "authorize", None, "{}", instant(300), instant(0))
        .await
        .expect("put");
    let mut contenders = Vec::new();
    for _ in 0..8 {
        let db = database.db.clone();
        contenders
            .push(tokio::spawn(async move { sessions::take_flow_state(&db, "f-1", "authorize", instant(1)).await }));
    }
    let mut taken = 0;
    for contender in contenders {
        taken += usize::from(contender.await.expect("join").expect("take").is_some());
    }
    assert_eq!(taken, 1, "exactly one caller gets the state");
}

pub async fn enrolment_links_single_use(database: TestDatabase) {
    let db = &database.db;
    let user_id = alice(&database).await;
    sessions::create_enrolment_link(db, "e-1", user_id, instant(600), instant(0)).await.expect("create");
    sessions::create_enrolment_link(db, "e-late", user_id, instant(600), instant(0)).await.expect("create");
    assert_eq!(sessions::find_enrolment_link(db, "e-1", instant(1)).await.expect("find"), Some(user_id));
    assert_eq!(sessions::find_enrolment_link(db, "e-1", instant(600)).await.expect("find"), None, "expired");
    assert_eq!(sessions::find_enrolment_link(db, "e-none", instant(1)).await.expect("find"), None);
    assert_eq!(sessions::consume_enrolment_link(db, "e-late", instant(600)).await.expect("consume"), None, "expired");

    let mut contenders = Vec::new();
    for _ in 0..8 {
        let db = database.db.clone();
        contenders.push(tokio::spawn(async move { sessions::consume_enrolment_link(&db, "e-1", instant(2)).await }));
    }
    let mut winners = Vec::new();
    for contender in contenders {
        winners.extend(contender.await.expect("join").expect("consume"));
    }
    assert_eq!(winners, [user_id], "exactly one caller gets the user");
    assert_eq!(sessions::find_enrolment_link(db, "e-1", instant(3)).await.expect("find"), None, "used");
    assert_eq!(
        sessions::find_enrolment_link(db, "e-late", instant(3)).await.expect("find"),
        Some(user_id),
        "untouched"
    );
}

/// Deleting a user removes their sessions, flow states and links.
pub async fn sessions_cascade_when_user_deleted(database: TestDatabase) {
    let db = &database.db;
    let user_id = alice(&database).await;
    sessions::create_session(db, "s-1", user_id, instant(0), instant(600), instant(0)).await.expect("session");
    sessions::put_flow_state(db, "f-1", "authorize", Some(user_id), "{}", instant(600), instant(0))
        .await
        .expect("flow");
    sessions::create_enrolment_link(db, "e-1", user_id, instant(600), instant(0)).await.expect("link");
    database.execute(&format!("DELETE FROM users WHERE id = {user_id}")).await;
    assert_eq!(sessions::find_session(db, "s-1", instant(1)).await.expect("find"), None);
    assert_eq!(sessions::peek_flow_state(db, "f-1", "authorize", instant(1)).await.expect("peek"), None);
    assert_eq!(sessions::find_enrolment_link(db, "e-1", instant(1)).await.expect("find"), None);
}
