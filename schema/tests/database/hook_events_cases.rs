//! `hook_events`: what `castellan hooks tail` reads.

use castellan_schema::hook_events::{self, HookEventRow, HookTailFilter};
use chrono::{DateTime, TimeZone, Utc};

use crate::support::TestDatabase;

pub(crate) fn at(second: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + second, 0).single().expect("a valid instant")
}

pub(crate) fn decision(event: &str, handler: &str, second: i64) -> HookEventRow {
    HookEventRow {
        id: 0,
        event: event.into(),
        decision: if handler.starts_with("builtin:deny") { "deny" } else { "allow" }.into(),
        handler: handler.into(),
        reason: None,
        server: Some("customers".into()),
        tool: Some("get_customer".into()),
        user_id: Some("alice".into()),
        trace_id: format!("trace-{second}"),
        created_at: at(second),
    }
}

/// The newest rows oldest first, filtered by event, and `after_id` for following.
pub async fn hook_events_tail_filters_and_follows(database: TestDatabase) {
    let db = &database.db;
    let rows = [
        decision("PreToolUse", "builtin:deny_tools", 1),
        decision("PostToolUse", "http:a", 2),
        decision("PreToolUse", "command:b", 3),
        decision("SessionStart", "http:c", 4),
    ];
    hook_events::record_many(db, &rows).await.expect("record");
    let all = hook_events::tail(db, &HookTailFilter { event: None, after_id: None, limit: 100 }).await.expect("tail");
    let handlers: Vec<&str> = all.iter().map(|row| row.handler.as_str()).collect();
    assert_eq!(handlers, ["builtin:deny_tools", "http:a", "command:b", "http:c"], "oldest first");

    let newest_two =
        hook_events::tail(db, &HookTailFilter { event: None, after_id: None, limit: 2 }).await.expect("tail");
    let handlers: Vec<&str> = newest_two.iter().map(|row| row.handler.as_str()).collect();
    assert_eq!(handlers, ["command:b", "http:c"], "the limit keeps the newest, still oldest first");

    let filter = HookTailFilter { event: Some("PreToolUse".into()), after_id: None, limit: 100 };
    let pre = hook_events::tail(db, &filter).await.expect("tail");
    assert!(pre.iter().all(|row| row.event == "PreToolUse") && pre.len() == 2, "{pre:?}");

    let after = HookTailFilter { event: None, after_id: Some(all[1].id), limit: 100 };
    let later = hook_events::tail(db, &after).await.expect("tail");
    assert_eq!(later.iter().map(|row| row.id).collect::<Vec<_>>(), [all[2].id, all[3].id], "rows after the id");
    assert_eq!(later[0].created_at, at(3), "timestamps round trip");
}
