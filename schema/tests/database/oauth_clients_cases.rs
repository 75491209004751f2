//! `castellan_schema::oauth` clients and consents.

use castellan_schema::oauth::{self, NewGrant, NewOAuthClient, RefreshUse};
use castellan_schema::{DbError, truncate_to_micros, users};

use crate::support::{TestDatabase, instant};

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

pub async fn create_client(
    database: &TestDatabase,
    client_id: &str,
    dynamic: bool,
    seconds: i64,
) -> oauth::OAuthClientRow {
    let client = NewOAuthClient {
        client_id,
        name: "Example",
        tier: "user",
        secret_hash: None,
        grant_types: &strings(&["authorization_code", "refresh_token"]),
        redirect_uris: &strings(&["http://127.0.0.1/callback"]),
        scopes: &strings(&["mcp:tools"]),
        dynamic,
    };
    oauth::create_client(&database.db, &client, instant(seconds)).await.expect("create client")
}

pub async fn oauth_clients_create_find_list_count(database: TestDatabase) {
    let db = &database.db;
    let grant_types = strings(&["client_credentials"]);
    let scopes = strings(&["mcp:tools", "admin"]);
    let static_client = NewOAuthClient {
        client_id: "ci-robot",
        name: "CI robot",
        tier: "service",
        secret_hash: Some(&"ab".repeat(32)),
        grant_types: &grant_types,
        redirect_uris: &[],
        scopes: &scopes,
        dynamic: false,
    };
    let robot = oauth::create_client(db, &static_client, instant(0)).await.expect("create ci-robot");
    let expected = oauth::OAuthClientRow {
        id: robot.id,
        client_id: "ci-robot".to_owned(),
        name: "CI robot".to_owned(),
        tier: "service".to_owned(),
        secret_hash: Some("ab".repeat(32)),
        grant_types: grant_types.clone(),
        redirect_uris: Vec::new(),
        scopes: scopes.clone(),
        dynamic: false,
        created_at: truncate_to_micros(instant(0)),
        last_used_at: None,
    };
    assert_eq!(robot, expected, "create returns what was written, at microsecond precision");
    let dynamic = create_client(&database, "dyn-1", true, 1).await;
    create_client(&database, "dyn-2", true, 2).await;

    assert_eq!(oauth::find_client(db, "ci-robot").await.expect("find"), Some(expected.clone()), "reads back exactly");
    assert_eq!(oauth::find_client(db, "nobody").await.expect("find"), None);
    let listed = oauth::list_clients(db).await.expect("list");
    let listed_ids: Vec<&str> = listed.iter().map(|client| client.client_id.as_str()).collect();
    assert_eq!(listed_ids, ["ci-robot", "dyn-1", "dyn-2"], "listed in registration order");
    assert_eq!(oauth::count_dynamic_clients(db).await.expect("count"), 2);

    oauth::touch_client(db, "dyn-1", instant(5)).await.expect("touch");
    let touched = oauth::find_client(db, "dyn-1").await.expect("find").expect("exists");
    assert_eq!(touched.last_used_at, Some(truncate_to_micros(instant(5))));
    assert_eq!(touched.created_at, dynamic.created_at);

    let again =
        oauth::create_client(db, &NewOAuthClient { client_id: "dyn-1", ..static_client.clone() }, instant(3)).await;
    assert!(matches!(again, Err(DbError::AlreadyExists(_))), "a taken client_id, got {again:?}");
    let bad_tier =
        oauth::create_client(db, &NewOAuthClient { client_id: "x", tier: "root", ..static_client }, instant(3)).await;
    assert!(matches!(bad_tier, Err(DbError::Other(_))), "an unknown tier is refused, got {bad_tier:?}");
}

/// Only dynamic clients never used and created before the cutoff go, with consents to them.
pub async fn oauth_clients_delete_unused_dynamic(database: TestDatabase) {
    let db = &database.db;
    let alice = users::create(db, "alice", "user", &[], instant(0)).await.expect("create alice");
    create_client(&database, "static-old", false, 0).await;
    create_client(&database, "dyn-old-unused", true, 0).await;
    create_client(&database, "dyn-old-used", true, 0).await;
    create_client(&database, "dyn-new-unused", true, 100).await;
    oauth::touch_client(db, "dyn-old-used", instant(10)).await.expect("touch");
    oauth::record_consent(db, alice.id, "dyn-old-unused", &strings(&["mcp:tools"]), instant(1)).await.expect("consent");
    oauth::record_consent(db, alice.id, "dyn-old-used", &strings(&["mcp:tools"]), instant(1)).await.expect("consent");

    let deleted = oauth::delete_unused_dynamic_clients(db, instant(100)).await.expect("delete unused");
    assert_eq!(deleted, 1, "only dyn-old-unused qualifies (dyn-new-unused is not older than the cutoff)");
    let remaining: Vec<String> =
        oauth::list_clients(db).await.expect("list").into_iter().map(|client| client.client_id).collect();
    assert_eq!(remaining, ["static-old", "dyn-old-used", "dyn-new-unused"]);
    assert_eq!(oauth::find_consent(db, alice.id, "dyn-old-unused").await.expect("find"), None, "its consent went too");
    assert!(oauth::find_consent(db, alice.id, "dyn-old-used").await.expect("find").is_some(), "others' consents stay");
}

/// Toward the registration cap count the dynamic clients that were used, whenever registered, and
/// the never-used ones registered at or after the cutoff; static clients never count.
pub async fn oauth_clients_unused_registrations_stop_holding_places(database: TestDatabase) {
    let db = &database.db;
    create_client(&database, "static", false, 0).await;
    create_client(&database, "dyn-old-unused", true, 0).await;
    create_client(&database, "dyn-old-used", true, 0).await;
    create_client(&database, "dyn-at-cutoff-unused", true, 100).await;
    create_client(&database, "dyn-new-unused", true, 200).await;
    oauth::touch_client(db, "dyn-old-used", instant(50)).await.expect("touch");

    let count_at = |seconds| oauth::count_dynamic_clients_holding_places(db, instant(seconds));
    assert_eq!(count_at(0).await.expect("count"), 4, "before any expiry every dynamic client holds a place");
    assert_eq!(
        count_at(100).await.expect("count"),
        3,
        "dyn-old-unused expired; the one registered exactly at the cutoff still counts"
    );
    assert_eq!(count_at(201).await.expect("count"), 1, "only the used client holds a place for good");
    assert_eq!(oauth::count_dynamic_clients(db).await.expect("count"), 4, "the rows are still there until purged");
}

/// Eviction deletes exactly one client, the oldest dynamic one never used (with its consents), and
/// nothing once only used or static clients are left.
pub async fn oauth_clients_evict_the_oldest_unused_dynamic(database: TestDatabase) {
    let db = &database.db;
    let alice = users::create(db, "alice", "user", &[], instant(0)).await.expect("create alice");
    create_client(&database, "static", false, 0).await;
    create_client(&database, "dyn-used", true, 1).await;
    create_client(&database, "dyn-first-unused", true, 2).await;
    create_client(&database, "dyn-second-unused", true, 3).await;
    oauth::touch_client(db, "dyn-used", instant(4)).await.expect("touch");
    oauth::record_consent(db, alice.id, "dyn-first-unused", &strings(&["mcp:tools"]), instant(5))
        .await
        .expect("consent");

    let listed = || async {
        oauth::list_clients(db).await.expect("list").into_iter().map(|client| client.client_id).collect::<Vec<_>>()
    };
    assert!(oauth::evict_oldest_unused_dynamic_client(db).await.expect("evict"), "one to evict");
    assert_eq!(listed().await, ["static", "dyn-used", "dyn-second-unused"], "the oldest unused went");
    assert_eq!(oauth::find_consent(db, alice.id, "dyn-first-unused").await.expect("find"), None, "with its consent");
    assert!(oauth::evict_oldest_unused_dynamic_client(db).await.expect("evict"), "a second one to evict");
    assert!(!oauth::evict_oldest_unused_dynamic_client(db).await.expect("evict"), "nothing unused is left");
    assert_eq!(listed().await, ["static", "dyn-used"], "used and static clients are never evicted");
}

/// Removing a client revokes its live grants (refresh tokens included), logs each revocation
/// once, forgets consents to it, and leaves other clients' grants alone.
pub async fn oauth_remove_client_revokes_grants(database: TestDatabase) {
    let db = &database.db;
    let alice = users::create(db, "alice", "user", &[], instant(0)).await.expect("create alice");
    create_client(&database, "doomed", true, 0).await;
    create_client(&database, "other", true, 0).await;
    let scopes = strings(&["mcp:tools"]);
    for (grant_id, client_id) in [("g-doomed-1", "doomed"), ("g-doomed-2", "doomed"), ("g-other", "other")] {
        let grant = NewGrant {
            grant_id,
            client_id,
            user_id: Some(alice.id),
            scopes: &scopes,
            resources: &[],
            expires_at: instant(9000),
        };
        oauth::create_grant(db, &grant, instant(1)).await.expect("create grant");
        oauth::insert_refresh_token(db, &format!("rt-{grant_id}"), grant_id, client_id, instant(5000), instant(1))
            .await
            .expect("insert refresh token");
    }
    assert!(oauth::revoke_grant(db, "g-doomed-2", instant(700), instant(2)).await.expect("revoke one beforehand"));
    oauth::record_consent(db, alice.id, "doomed", &scopes, instant(1)).await.expect("consent");

    assert!(oauth::remove_client(db, "doomed", instant(10)).await.expect("remove"), "the client existed");
    assert_eq!(oauth::find_client(db, "doomed").await.expect("find"), None);
    assert_eq!(oauth::find_consent(db, alice.id, "doomed").await.expect("find"), None);
    let revoked = oauth::find_grant(db, "g-doomed-1").await.expect("find").expect("grants are kept, revoked");
    assert_eq!(revoked.revoked_at, Some(truncate_to_micros(instant(10))));
    let earlier = oauth::find_grant(db, "g-doomed-2").await.expect("find").expect("exists");
    assert_eq!(earlier.revoked_at, Some(truncate_to_micros(instant(2))), "the first revocation time is kept");
    let other = oauth::find_grant(db, "g-other").await.expect("find").expect("exists");
    assert_eq!(other.revoked_at, None, "another client's grant is untouched");
    let used = oauth::use_refresh_token(db, "rt-g-doomed-1", instant(11)).await.expect("use");
    assert!(matches!(used, RefreshUse::Revoked(_)), "the removed client's refresh token is revoked, got {used:?}");

    let log = oauth::revocations_after(db, 0, instant(11)).await.expect("log");
    let entries: Vec<(&str, &str)> = log.iter().map(|row| (row.kind.as_str(), row.value.as_str())).collect();
    assert_eq!(entries, [("grant", "g-doomed-2"), ("grant", "g-doomed-1")], "one entry per newly revoked grant");
    let expected_forget = truncate_to_micros(instant(10) + oauth::REMOVED_CLIENT_REVOCATION_LIFETIME);
    assert_eq!(log[1].expires_at, expected_forget);
    assert!(!oauth::remove_client(db, "doomed", instant(12)).await.expect("remove again"), "already gone");
    assert_eq!(oauth::revocations_after(db, 0, instant(12)).await.expect("log").len(), 2, "nothing new to log");
}

pub async fn oauth_consents_upsert(database: TestDatabase) {
    let db = &database.db;
    let alice = users::create(db, "alice", "user", &[], instant(0)).await.expect("create alice");
    let bob = users::create(db, "bob", "user", &[], instant(0)).await.expect("create bob");
    assert_eq!(oauth::find_consent(db, alice.id, "app").await.expect("find"), None);
    oauth::record_consent(db, alice.id, "app", &strings(&["a"]), instant(1)).await.expect("consent");
    oauth::record_consent(db, bob.id, "app", &strings(&["b"]), instant(1)).await.expect("consent");
    oauth::record_consent(db, alice.id, "app", &strings(&["a", "c"]), instant(2)).await.expect("consent again");
    assert_eq!(oauth::find_consent(db, alice.id, "app").await.expect("find"), Some(strings(&["a", "c"])), "replaced");
    assert_eq!(oauth::find_consent(db, bob.id, "app").await.expect("find"), Some(strings(&["b"])), "per user");
    let missing_user = oauth::record_consent(db, bob.id + 100, "app", &[], instant(3)).await;
    assert!(matches!(missing_user, Err(DbError::NotFound(_))), "got {missing_user:?}");
    database.execute(&format!("DELETE FROM users WHERE id = {}", alice.id)).await;
    assert_eq!(oauth::find_consent(db, alice.id, "app").await.expect("find"), None, "cascades with the user");
}
