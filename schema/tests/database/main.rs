//! Database tests, each run against SQLite (a fresh temporary file) and, when
//! `CASTELLAN_TEST_POSTGRES_URL` names a server, PostgreSQL (a fresh database per test).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test support panics on purpose

mod ai_requests_cases;
mod api_keys_cases;
mod audit_cases;
mod audit_prune_cases;
mod connection_cases;
mod hook_events_cases;
mod identity_schema_cases;
mod jobs_cases;
mod meta_cases;
mod oauth_clients_cases;
mod oauth_keys_cases;
mod oauth_tokens_cases;
mod retention_cases;
mod secrets_cases;
mod sessions_cases;
mod skills_cases;
mod support;
mod tool_pins_cases;
mod users_cases;
mod webauthn_cases;

/// Declares each case once per backend: `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_both_backends {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::support::run(crate::support::Backend::Sqlite, crate::$module::$case)
                        .await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::support::run(crate::support::Backend::Postgres, crate::$module::$case)
                        .await;
                }
            )*
        }
    };
}

on_both_backends!(
    connection_cases::connections_are_durable,
    connection_cases::migrations_apply_twice_idempotently,
    users_cases::users_create_find_list_count,
    users_cases::users_duplicate_name_and_unknown_tier,
    users_cases::users_update_tier,
    secrets_cases::secrets_set_replace_list_and_remove,
    tool_pins_cases::tool_pins_pin_on_first_sight_detect_changes_and_approve,
    jobs_cases::jobs_lease_is_held_by_one_holder_until_it_expires_or_is_released,
    jobs_cases::jobs_lease_races_have_one_winner,
    jobs_cases::jobs_runs_are_recorded_and_finish_once,
    jobs_cases::jobs_forward_cursors_only_move_forward,
    retention_cases::retention_prunes_old_ai_requests_in_batches_and_keeps_unforwarded_and_open_ones,
    retention_cases::retention_prunes_old_hook_events_and_keeps_unforwarded_ones,
    retention_cases::retention_of_anonymous_callers_touches_only_their_rows,
    api_keys_cases::api_keys_insert_find_list,
    api_keys_cases::api_keys_revoke_and_touch,
    api_keys_cases::api_keys_conflicts_and_missing_user,
    api_keys_cases::api_keys_cascade_when_user_deleted,
    audit_cases::audit_empty_trail_verifies,
    audit_cases::audit_insert_batch_round_trips_and_verifies,
    audit_cases::audit_detects_edited_row,
    audit_cases::audit_detects_edited_row_with_recomputed_hash,
    audit_cases::audit_detects_deleted_middle_row,
    audit_cases::audit_detects_deleted_first_row,
    audit_cases::audit_detects_deleted_last_row,
    audit_cases::audit_chains_from_a_moved_head_and_a_failed_batch_writes_nothing,
    audit_cases::audit_unique_indexes_prevent_a_fork,
    audit_cases::audit_tail_filters_and_follows,
    audit_cases::audit_verify_pages_through_many_rows,
    audit_cases::audit_hook_events_commit_with_their_call,
    audit_cases::audit_append_from_known_head_writes_only_on_the_known_head,
    audit_cases::audit_append_that_fails_halfway_writes_nothing,
    audit_prune_cases::audit_prune_deletes_old_rows_and_verify_continues_from_the_checkpoint,
    audit_prune_cases::audit_prune_again_extends_the_checkpoint,
    audit_prune_cases::audit_prune_then_a_tampered_kept_row_is_found,
    audit_prune_cases::audit_prune_then_deleting_the_first_kept_row_is_found,
    audit_prune_cases::audit_prune_checkpoint_edits_without_the_key_are_found,
    audit_prune_cases::audit_prune_verify_with_the_wrong_key_reports_a_bad_signature,
    audit_prune_cases::audit_prune_keeps_rows_above_forwarded_up_to,
    audit_prune_cases::audit_prune_never_deletes_the_newest_row,
    audit_prune_cases::audit_prune_then_appending_continues_the_chain,
    audit_prune_cases::audit_prune_stops_at_the_first_young_row,
    audit_prune_cases::audit_prune_refuses_a_broken_chain,
    audit_prune_cases::audit_prune_while_appending_keeps_the_chain_whole,
    hook_events_cases::hook_events_tail_filters_and_follows,
    connection_cases::connect_existing_creates_nothing,
    meta_cases::meta_get_set_overwrite,
    meta_cases::meta_set_if_absent_has_one_winner,
    identity_schema_cases::identity_migration_up_down_up,
    identity_schema_cases::revocation_ids_are_never_reused,
    oauth_clients_cases::oauth_clients_create_find_list_count,
    oauth_clients_cases::oauth_clients_delete_unused_dynamic,
    oauth_clients_cases::oauth_clients_unused_registrations_stop_holding_places,
    oauth_clients_cases::oauth_clients_evict_the_oldest_unused_dynamic,
    oauth_clients_cases::oauth_remove_client_revokes_grants,
    oauth_clients_cases::oauth_consents_upsert,
    oauth_tokens_cases::oauth_grants_round_trip,
    oauth_tokens_cases::oauth_code_redeemed_once_under_concurrency,
    oauth_tokens_cases::oauth_code_expiry_and_unknown,
    oauth_tokens_cases::oauth_refresh_tokens_rotate_replay_revoke,
    oauth_tokens_cases::oauth_refresh_token_used_once_under_concurrency,
    oauth_tokens_cases::oauth_revocation_log_polling,
    oauth_tokens_cases::oauth_revoke_grant_once_under_concurrency,
    oauth_keys_cases::signing_keys_order_retire_purge,
    oauth_keys_cases::signing_keys_insert_retired,
    sessions_cases::sessions_create_find_delete,
    sessions_cases::sessions_expiry_is_exact_to_the_microsecond,
    sessions_cases::flow_states_take_peek_kind_expiry,
    sessions_cases::flow_states_taken_once_under_concurrency,
    sessions_cases::enrolment_links_single_use,
    sessions_cases::sessions_cascade_when_user_deleted,
    webauthn_cases::webauthn_credentials_round_trip,
    ai_requests_cases::ai_requests_complete_once,
    ai_requests_cases::ai_requests_finished_rows_and_batches,
    ai_requests_cases::ai_requests_mark_interrupted,
    ai_requests_cases::ai_requests_list_filters,
    ai_requests_cases::ai_requests_costs_group_and_count_unpriced,
    ai_requests_cases::ai_requests_spend_since,
    skills_cases::skills_publish_stores_files_once_and_reads_them_back,
    skills_cases::skills_republishing_the_same_content_changes_nothing,
    skills_cases::skills_a_taken_version_with_other_content_conflicts,
    skills_cases::skills_files_that_do_not_match_their_hash_are_refused,
    skills_cases::skills_integer_versions_count_up,
    skills_cases::skills_yanked_versions_leave_the_latest_list,
    skills_cases::skills_generation_changes_only_when_the_catalog_does,
    skills_cases::skills_fetches_are_recorded_newest_first,
    skills_cases::skills_concurrent_publishes_agree,
);

/// Cases of the SQLite-only writer connection.
mod sqlite_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn audit_sqlite_appender_round_trips_and_continues_the_pools_chain() {
        crate::support::run(
            crate::support::Backend::Sqlite,
            crate::audit_cases::audit_sqlite_appender_round_trips_and_continues_the_pools_chain,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn audit_sqlite_appender_failing_halfway_writes_nothing() {
        crate::support::run(
            crate::support::Backend::Sqlite,
            crate::audit_cases::audit_sqlite_appender_failing_halfway_writes_nothing,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn audit_sqlite_appender_continues_after_a_prune() {
        crate::support::run(
            crate::support::Backend::Sqlite,
            crate::audit_prune_cases::audit_sqlite_appender_continues_after_a_prune,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ai_requests_sqlite_writer_stores_what_the_pool_stores() {
        crate::support::run(
            crate::support::Backend::Sqlite,
            crate::ai_requests_cases::ai_requests_sqlite_writer_stores_what_the_pool_stores,
        )
        .await;
    }
}

#[tokio::test]
async fn connect_errors_never_contain_the_password() {
    let cases = [
        // Nothing listens on port 1: a connection error.
        "postgres://castellan:s3cr3t-pw@127.0.0.1:1/castellan",
        // An unparsable port: a configuration error.
        "postgres://castellan:s3cr3t-pw@127.0.0.1:notaport/castellan",
    ];
    for url in cases {
        let error = castellan_schema::connect(url).await.expect_err("connecting must fail");
        let message = format!("{error} {error:?}");
        assert!(!message.contains("s3cr3t-pw"), "the password leaked into {message:?}");
    }
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    let error = castellan_schema::connect("postgres://castellan:pw@127.0.0.1:1/castellan")
        .await
        .expect_err("nothing listens on port 1");
    assert!(error.is_unavailable(), "expected Unavailable, got {error:?}");
}

#[tokio::test]
async fn sqlite_memory_database_works() {
    let db = castellan_schema::connect("sqlite::memory:").await.expect("connect");
    castellan_schema::migrate(&db).await.expect("migrate");
    castellan_schema::ping(&db).await.expect("ping");
    assert_eq!(castellan_schema::users::count(&db).await.expect("count"), 0);
}

#[tokio::test]
async fn sqlite_creates_missing_directories() {
    let directory = std::env::temp_dir().join(format!("castellan-schema-dirs-{}", support::unique_suffix()));
    let path = directory.join("a").join("b").join("castellan.db");
    let url = format!("sqlite://{}", path.display());
    let db = castellan_schema::connect(&url).await.expect("connect");
    castellan_schema::migrate(&db).await.expect("migrate");
    assert!(path.exists(), "{} was created", path.display());
    db.close().await.expect("close");
    std::fs::remove_dir_all(&directory).expect("clean up");
}
