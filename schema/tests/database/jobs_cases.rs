//! `castellan_schema::jobs`: runs, the one-replica lease and the forwarding cursors.

use std::time::Duration;

use castellan_schema::jobs::{self, RunStatus};

use crate::support::{TestDatabase, instant};

pub async fn jobs_lease_is_held_by_one_holder_until_it_expires_or_is_released(database: TestDatabase) {
    let db = &database.db;
    let ttl = Duration::from_secs(60);
    let acquire = |holder: &'static str, at: i64| jobs::acquire_lease(db, "retention", holder, instant(at), ttl);
    assert!(acquire("replica-a", 0).await.expect("first"), "no lease yet: taken");
    assert!(!acquire("replica-b", 1).await.expect("second"), "held by a: refused");
    assert!(acquire("replica-a", 30).await.expect("renew"), "the holder renews (to 90 s)");
    assert!(!acquire("replica-b", 89).await.expect("before expiry"), "the renewal holds until 90 s");
    assert!(acquire("replica-b", 91).await.expect("after expiry"), "expired: b takes it");
    assert!(!acquire("replica-a", 92).await.expect("a again"), "now b's");
    assert!(!jobs::release_lease(db, "retention", "replica-a").await.expect("release"), "a cannot release b's");
    assert!(jobs::release_lease(db, "retention", "replica-b").await.expect("release"), "b releases");
    assert!(acquire("replica-a", 93).await.expect("after release"), "released: free at once");
    assert!(
        jobs::acquire_lease(db, "forward", "replica-b", instant(93), ttl).await.expect("other job"),
        "each job has its own lease"
    );
}

pub async fn jobs_lease_races_have_one_winner(database: TestDatabase) {
    let db = &database.db;
    for round in 0..5 {
        let job = format!("race-{round}");
        let mut attempts = tokio::task::JoinSet::new();
        for holder in 0..8 {
            let (db, job) = (db.clone(), job.clone());
            attempts.spawn(async move {
                jobs::acquire_lease(&db, &job, &format!("replica-{holder}"), instant(0), Duration::from_secs(60)).await
            });
        }
        let results: Vec<_> = attempts.join_all().await;
        let winners = results.iter().filter(|result| matches!(result, Ok(true))).count();
        assert!(results.iter().all(Result::is_ok), "round {round}: no errors: {results:?}");
        assert_eq!(winners, 1, "round {round}: exactly one replica holds the lease");
    }
}

pub async fn jobs_runs_are_recorded_and_finish_once(database: TestDatabase) {
    let db = &database.db;
    let first = jobs::start_run(db, "retention", instant(0)).await.expect("start");
    assert!(
        jobs::finish_run(db, first, RunStatus::Success, Some("pruned 12 rows"), instant(2)).await.expect("finish"),
        "finished"
    );
    assert!(
        !jobs::finish_run(db, first, RunStatus::Failed, None, instant(3)).await.expect("again"),
        "a finished run is not finished again"
    );
    let second = jobs::start_run(db, "retention", instant(10)).await.expect("start");
    jobs::start_run(db, "forward", instant(11)).await.expect("other job");
    let runs = jobs::recent_runs(db, "retention", 10).await.expect("runs");
    assert_eq!(runs.iter().map(|run| run.id).collect::<Vec<_>>(), vec![second, first], "newest first, one job only");
    assert_eq!(
        (runs[1].status.as_str(), runs[1].detail.as_deref(), runs[1].started_at, runs[1].completed_at),
        (
            "success",
            Some("pruned 12 rows"),
            castellan_schema::truncate_to_micros(instant(0)),
            Some(castellan_schema::truncate_to_micros(instant(2)))
        ),
        "the finished run reads back as written"
    );
    assert_eq!((runs[0].status.as_str(), runs[0].completed_at), ("running", None), "the open run");
    assert_eq!(jobs::recent_runs(db, "retention", 1).await.expect("one").len(), 1, "limit");
}

pub async fn jobs_forward_cursors_only_move_forward(database: TestDatabase) {
    let db = &database.db;
    assert_eq!(jobs::forward_cursor(db, "splunk", "mcp_tool_executions").await.expect("read"), 0, "starts at 0");
    assert!(jobs::advance_forward_cursor(db, "splunk", "mcp_tool_executions", 100).await.expect("first"), "moved");
    assert!(!jobs::advance_forward_cursor(db, "splunk", "mcp_tool_executions", 40).await.expect("back"), "not back");
    assert!(!jobs::advance_forward_cursor(db, "splunk", "mcp_tool_executions", 100).await.expect("same"), "same");
    assert!(jobs::advance_forward_cursor(db, "splunk", "mcp_tool_executions", 250).await.expect("on"), "on");
    jobs::advance_forward_cursor(db, "splunk", "ai_requests", 7).await.expect("other table");
    jobs::advance_forward_cursor(db, "datadog", "mcp_tool_executions", 3).await.expect("other sink");
    let read = |sink: &'static str, table: &'static str| jobs::forward_cursor(db, sink, table);
    assert_eq!(read("splunk", "mcp_tool_executions").await.expect("read"), 250);
    assert_eq!(read("splunk", "ai_requests").await.expect("read"), 7);
    assert_eq!(read("datadog", "mcp_tool_executions").await.expect("read"), 3);
}
