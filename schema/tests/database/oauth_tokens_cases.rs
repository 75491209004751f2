//! `castellan_schema::oauth` grants, codes, refresh tokens and the revocation log.

use castellan_schema::oauth::{self, CodeRedemption, NewCode, NewGrant, RefreshUse};
use castellan_schema::{DbError, truncate_to_micros, users};

use crate::oauth_clients_cases::strings;
use crate::support::{TestDatabase, instant};

async fn alice(database: &TestDatabase) -> i64 {
    users::create(&database.db, "alice", "user", &[], instant(0)).await.expect("create alice").id
}

async fn grant(database: &TestDatabase, grant_id: &str, user_id: Option<i64>) -> oauth::GrantRow {
    let new = NewGrant {
        grant_id,
        client_id: "app",
        user_id,
        scopes: &strings(&["mcp:tools"]),
        resources: &strings(&["https://castellan.example/mcp"]),
        expires_at: instant(90_000),
    };
    oauth::create_grant(&database.db, &new, instant(1)).await.expect("create grant")
}

async fn code(database: &TestDatabase, code_hash: &str, user_id: i64) {
    let new = NewCode {
        code_hash,
        grant_id: "g-1",
        client_id: "app",
        user_id,
        redirect_uri: "http://127.0.0.1:5555/cb",
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        resources: &strings(&["https://castellan.example/mcp"]),
        scopes: &strings(&["mcp:tools", "openid"]),
        auth_time: instant(-30),
        expires_at: instant(60),
    };
    oauth::insert_code(&database.db, &new, instant(0)).await.expect("insert code");
}

pub async fn oauth_grants_round_trip(database: TestDatabase) {
    let db = &database.db;
    let user_id = alice(&database).await;
    let created = grant(&database, "g-1", Some(user_id)).await;
    let expected = oauth::GrantRow {
        grant_id: "g-1".to_owned(),
        client_id: "app".to_owned(),
        user_id: Some(user_id),
        scopes: strings(&["mcp:tools"]),
        resources: strings(&["https://castellan.example/mcp"]),
        created_at: truncate_to_micros(instant(1)),
        expires_at: truncate_to_micros(instant(90_000)),
        revoked_at: None,
    };
    assert_eq!(created, expected);
    assert_eq!(oauth::find_grant(db, "g-1").await.expect("find"), Some(expected), "reads back exactly");
    let machine = grant(&database, "g-machine", None).await;
    assert_eq!(machine.user_id, None, "client-credentials grants have no user");
    assert_eq!(oauth::find_grant(db, "g-none").await.expect("find"), None);
    let missing_user = oauth::create_grant(
        db,
        &NewGrant {
            grant_id: "g-2",
            client_id: "app",
            user_id: Some(user_id + 9),
            scopes: &[],
            resources: &[],
            expires_at: instant(9),
        },
        instant(1),
    )
    .await;
    assert!(matches!(missing_user, Err(DbError::NotFound(_))), "got {missing_user:?}");

    assert_eq!(oauth::purge_grants_expired_before(db, instant(89_999)).await.expect("purge"), 0);
    assert_eq!(oauth::purge_grants_expired_before(db, instant(90_000)).await.expect("purge"), 2, "at expires_at");
}

/// Eight tasks redeem one code at once: exactly one wins, the others see a used code.
pub async fn oauth_code_redeemed_once_under_concurrency(database: TestDatabase) {
    let user_id = alice(&database).await;
    code(&database, "code-1", user_id).await;
    let mut contenders = Vec::new();
    for _ in 0..8 {
        let db = database.db.clone();
        contenders.push(tokio::spawn(async move { oauth::redeem_code(&db, "code-1", instant(5)).await }));
    }
    let (mut redeemed, mut already_used) = (Vec::new(), 0);
    for contender in contenders {
        match contender.await.expect("join").expect("redeem") {
            CodeRedemption::Redeemed(row) => redeemed.push(row),
            CodeRedemption::AlreadyUsed(row) => {
                assert_eq!(row.consumed_at, Some(truncate_to_micros(instant(5))));
                already_used += 1;
            }
            other => panic!("expected Redeemed or AlreadyUsed, got {other:?}"),
        }
    }
    assert_eq!((redeemed.len(), already_used), (1, 7), "exactly one winner");
    let row = &redeemed[0];
    let expected = oauth::CodeRow {
        code_hash: "code-1".to_owned(),
        grant_id: "g-1".to_owned(),
        client_id: "app".to_owned(),
        user_id,
        redirect_uri: "http://127.0.0.1:5555/cb".to_owned(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
        resources: strings(&["https://castellan.example/mcp"]),
        scopes: strings(&["mcp:tools", "openid"]),
        auth_time: truncate_to_micros(instant(-30)),
        created_at: truncate_to_micros(instant(0)),
        expires_at: truncate_to_micros(instant(60)),
        consumed_at: Some(truncate_to_micros(instant(5))),
    };
    assert_eq!(row, &expected, "the winner gets the whole row, timestamps exact");
}

pub async fn oauth_code_expiry_and_unknown(database: TestDatabase) {
    let db = &database.db;
    let user_id = alice(&database).await;
    code(&database, "code-late", user_id).await;
    code(&database, "code-used", user_id).await;
    let redeemed = oauth::redeem_code(db, "code-used", instant(59)).await.expect("redeem");
    assert!(matches!(redeemed, CodeRedemption::Redeemed(_)), "just before expiry, got {redeemed:?}");
    let cases = [
        ("code-late", instant(60), "Expired"),
        ("code-late", instant(61), "Expired"),
        ("code-used", instant(61), "AlreadyUsed"),
        ("code-none", instant(0), "Unknown"),
    ];
    for (code_hash, now, expected) in cases {
        let outcome = oauth::redeem_code(db, code_hash, now).await.expect("redeem");
        let name = match &outcome {
            CodeRedemption::Redeemed(_) => "Redeemed",
            CodeRedemption::AlreadyUsed(_) => "AlreadyUsed",
            CodeRedemption::Expired(row) => {
                assert_eq!(row.consumed_at, None, "a refused redemption writes nothing");
                "Expired"
            }
            CodeRedemption::Unknown => "Unknown",
        };
        assert_eq!(name, expected, "{code_hash} at {now}");
    }
    assert_eq!(oauth::purge_expired(db, instant(60)).await.expect("purge"), 2, "both codes expire at 60");
    assert_eq!(oauth::redeem_code(db, "code-used", instant(61)).await.expect("redeem"), CodeRedemption::Unknown);
}

/// Rotation, replay, revocation of the family, expiry.
pub async fn oauth_refresh_tokens_rotate_replay_revoke(database: TestDatabase) {
    let db = &database.db;
    let user_id = alice(&database).await;
    grant(&database, "g-1", Some(user_id)).await;
    oauth::insert_refresh_token(db, "rt-1", "g-1", "app", instant(100), instant(1)).await.expect("insert rt-1");
    let duplicate = oauth::insert_refresh_token(db, "rt-1", "g-1", "app", instant(100), instant(1)).await;
    assert!(matches!(duplicate, Err(DbError::AlreadyExists(_))), "got {duplicate:?}");

    let RefreshUse::Rotated(rotated) = oauth::use_refresh_token(db, "rt-1", instant(2)).await.expect("use") else {
        panic!("the first use rotates");
    };
    let expected = oauth::RefreshTokenRow {
        token_hash: "rt-1".to_owned(),
        grant_id: "g-1".to_owned(),
        client_id: "app".to_owned(),
        created_at: truncate_to_micros(instant(1)),
        expires_at: truncate_to_micros(instant(100)),
        used_at: Some(truncate_to_micros(instant(2))),
        revoked_at: None,
    };
    assert_eq!(rotated, expected);
    oauth::insert_refresh_token(db, "rt-2", "g-1", "app", instant(100), instant(2)).await.expect("insert rt-2");
    let replayed = oauth::use_refresh_token(db, "rt-1", instant(3)).await.expect("replay");
    assert_eq!(replayed, RefreshUse::Replayed(expected), "a second use is a replay; used_at is kept");

    assert!(oauth::revoke_grant(db, "g-1", instant(700), instant(4)).await.expect("revoke"), "changed");
    assert!(!oauth::revoke_grant(db, "g-1", instant(700), instant(5)).await.expect("revoke again"), "idempotent");
    for token in ["rt-1", "rt-2"] {
        let outcome = oauth::use_refresh_token(db, token, instant(6)).await.expect("use");
        let RefreshUse::Revoked(row) = outcome else { panic!("{token} must be Revoked, got {outcome:?}") };
        assert_eq!(row.revoked_at, Some(truncate_to_micros(instant(4))), "{token} revoked with its family");
    }
    let stored = oauth::find_grant(db, "g-1").await.expect("find").expect("exists");
    assert_eq!(stored.revoked_at, Some(truncate_to_micros(instant(4))));
    let log = oauth::revocations_after(db, 0, instant(6)).await.expect("log");
    assert_eq!(log.len(), 1, "one entry for one revocation: {log:?}");
    assert_eq!(
        (log[0].kind.as_str(), log[0].value.as_str(), log[0].revoked_at, log[0].expires_at),
        (oauth::REVOCATION_KIND_GRANT, "g-1", truncate_to_micros(instant(4)), truncate_to_micros(instant(700)))
    );

    oauth::insert_refresh_token(db, "rt-old", "g-other", "app", instant(10), instant(1)).await.expect("insert");
    let outcome = oauth::use_refresh_token(db, "rt-old", instant(10)).await.expect("use");
    assert!(matches!(outcome, RefreshUse::Expired(_)), "at expires_at, got {outcome:?}");
    assert_eq!(oauth::use_refresh_token(db, "rt-none", instant(0)).await.expect("use"), RefreshUse::Unknown);
    assert_eq!(oauth::find_refresh_token(db, "rt-none").await.expect("find"), None);
}

/// Eight tasks use one refresh token at once: one rotation, seven replays.
pub async fn oauth_refresh_token_used_once_under_concurrency(database: TestDatabase) {
    oauth::insert_refresh_token(&database.db, "rt-1", "g-1", "app", instant(100), instant(1)).await.expect("insert");
    let mut contenders = Vec::new();
    for _ in 0..8 {
        let db = database.db.clone();
        contenders.push(tokio::spawn(async move { oauth::use_refresh_token(&db, "rt-1", instant(2)).await }));
    }
    let mut outcomes = Vec::new();
    for contender in contenders {
        outcomes.push(match contender.await.expect("join").expect("use") {
            RefreshUse::Rotated(_) => "Rotated",
            RefreshUse::Replayed(_) => "Replayed",
            other => panic!("unexpected {other:?}"),
        });
    }
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["Replayed"; 7].into_iter().chain(["Rotated"]).collect::<Vec<_>>());
}

/// The log pages by id, skips what has expired, and purge forgets expired entries.
pub async fn oauth_revocation_log_polling(database: TestDatabase) {
    let db = &database.db;
    oauth::revoke_jti(db, "jti-short", instant(10), instant(0)).await.expect("revoke");
    oauth::revoke_jti(db, "jti-long", instant(1000), instant(1)).await.expect("revoke");
    assert!(!oauth::revoke_grant(db, "g-unknown", instant(1000), instant(2)).await.expect("revoke"), "nothing changed");
    let all = oauth::revocations_after(db, 0, instant(2)).await.expect("log");
    let values: Vec<&str> = all.iter().map(|row| row.value.as_str()).collect();
    assert_eq!(values, ["jti-short", "jti-long"], "oldest first; an unknown grant is not logged");
    assert!(all.iter().all(|row| row.kind == oauth::REVOCATION_KIND_JTI));
    assert_eq!(oauth::revocations_after(db, all[0].id, instant(2)).await.expect("log"), all[1..].to_vec());
    assert_eq!(oauth::revocations_after(db, all[1].id, instant(2)).await.expect("log"), []);
    assert_eq!(oauth::revocations_after(db, 0, instant(10)).await.expect("log"), all[1..].to_vec(), "expired skipped");
    assert_eq!(oauth::purge_expired(db, instant(10)).await.expect("purge"), 1);
    assert_eq!(oauth::revocations_after(db, 0, instant(5)).await.expect("log"), all[1..].to_vec(), "purged");
}

/// Eight tasks revoke one grant at once: one reports the change, the log gets one entry.
pub async fn oauth_revoke_grant_once_under_concurrency(database: TestDatabase) {
    let user_id = alice(&database).await;
    grant(&database, "g-1", Some(user_id)).await;
    let mut contenders = Vec::new();
    for index in 0..8 {
        let db = database.db.clone();
        contenders
            .push(tokio::spawn(async move { oauth::revoke_grant(&db, "g-1", instant(700), instant(index)).await }));
    }
    let mut changed = 0;
    for contender in contenders {
        changed += usize::from(contender.await.expect("join").expect("revoke"));
    }
    assert_eq!(changed, 1, "exactly one revocation changed anything");
    assert_eq!(oauth::revocations_after(&database.db, 0, instant(8)).await.expect("log").len(), 1);
}
