//! `castellan_schema::tool_pins`: trust on first use, change detection, approval.

use castellan_schema::tool_pins::{self, Observation};

use crate::support::{TestDatabase, instant};

pub async fn tool_pins_pin_on_first_sight_detect_changes_and_approve(database: TestDatabase) {
    let db = &database.db;
    let observe = |hash: &'static str, at: i64| tool_pins::observe(db, "srv", "echo", hash, instant(at));
    assert_eq!(observe("h1", 1).await.expect("first"), Observation::New, "first sight pins");
    assert_eq!(observe("h1", 2).await.expect("again"), Observation::Unchanged, "same definition");
    assert_eq!(
        observe("h2", 3).await.expect("changed"),
        Observation::Changed { approved_hash: "h1".into() },
        "a changed definition is reported against the approved one"
    );
    assert_eq!(
        observe("h2", 4).await.expect("still changed"),
        Observation::Changed { approved_hash: "h1".into() },
        "until approved"
    );
    let pins = tool_pins::list(db).await.expect("list");
    assert_eq!((pins[0].approved_hash.as_str(), pins[0].observed_hash.as_str()), ("h1", "h2"), "both kept");
    assert!(tool_pins::approve(db, "srv", "echo", instant(5)).await.expect("approve"), "approved");
    assert_eq!(
        observe("h2", 6).await.expect("after approval"),
        Observation::Unchanged,
        "the new definition is approved"
    );
    assert!(!tool_pins::approve(db, "srv", "missing", instant(7)).await.expect("approve"), "no such pin");
}
