//! `ai_requests` batches on a SQLite file through a connection of their own, owned by the AI
//! request writer's thread ([`crate::sqlite_direct`]): the same writes as [`super::write_batch`],
//! stored as the pool stores them, in one durable transaction with prepared statements.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior, params};

use super::write::{bounded, check_ends};
use super::{AiCompletion, AiRequestStatus, AiRequestWrite, AiRequestWritten, NewAiRequest};
use crate::error::DbResult;
use crate::sqlite_direct::{self, classify, stored_time};

const INSERT: &str = "INSERT INTO ai_requests (user_id, api_key_id, session_id, trace_id, endpoint, provider, model, \
                      upstream_model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
                      cost_microdollars, latency_ms, ttft_ms, status, error_message, streamed, started_at, \
                      completed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                      ?17, ?18, ?19, ?20) RETURNING id";
// One conditional statement, as on the pool's path: of two completions, the one that finds the row
// `started` wins; a provider or model left out keeps the routed one.
const COMPLETE: &str = "UPDATE ai_requests SET input_tokens = ?1, output_tokens = ?2, cache_read_tokens = ?3, \
                        cache_write_tokens = ?4, cost_microdollars = ?5, latency_ms = ?6, ttft_ms = ?7, status = ?8, \
                        error_message = ?9, completed_at = ?10, provider = COALESCE(?11, provider), \
                        upstream_model = COALESCE(?12, upstream_model) WHERE id = ?13 AND status = 'started'";

/// A dedicated connection that writes `ai_requests` batches.
pub struct SqliteAiWriter {
    connection: Connection,
}

impl SqliteAiWriter {
    /// Opens `path` (which must exist and hold the schema) with the writer's settings.
    pub fn open(path: &Path) -> DbResult<SqliteAiWriter> {
        Ok(SqliteAiWriter { connection: sqlite_direct::open_writer(path, "AI request log")? })
    }

    /// Applies `writes` in order in one transaction: all or nothing, as [`super::write_batch`].
    pub fn write_batch(&mut self, writes: &[&AiRequestWrite]) -> DbResult<Vec<AiRequestWritten>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        for write in writes {
            if let AiRequestWrite::Complete { completion, .. } | AiRequestWrite::Finish(_, completion) = write {
                check_ends(completion)?;
            }
        }
        // Dropped without `commit` (an early return or an error), the transaction rolls back.
        let transaction =
            self.connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(classify)?;
        let mut written = Vec::with_capacity(writes.len());
        {
            let mut insert = transaction.prepare_cached(INSERT).map_err(classify)?;
            let mut complete = transaction.prepare_cached(COMPLETE).map_err(classify)?;
            for write in writes {
                written.push(match write {
                    AiRequestWrite::Start(row) => AiRequestWritten::Inserted(insert_row(&mut insert, row, None)?),
                    AiRequestWrite::Finish(row, completion) => {
                        AiRequestWritten::Inserted(insert_row(&mut insert, row, Some(completion))?)
                    }
                    AiRequestWrite::Complete { id, completion } => {
                        let changed = complete
                            .execute(params![
                                completion.input_tokens,
                                completion.output_tokens,
                                completion.cache_read_tokens,
                                completion.cache_write_tokens,
                                completion.cost_microdollars,
                                completion.latency_ms,
                                completion.ttft_ms,
                                completion.status.as_str(),
                                bounded(&completion.error_message),
                                stored_time(completion.completed_at),
                                completion.provider,
                                completion.upstream_model,
                                id,
                            ])
                            .map_err(classify)?;
                        AiRequestWritten::Completed(changed == 1)
                    }
                });
            }
        }
        transaction.commit().map_err(classify)?;
        Ok(written)
    }

    /// Moves committed log pages into the database file without waiting (`PASSIVE`).
    pub fn checkpoint(&mut self) -> DbResult<()> {
        sqlite_direct::checkpoint(&self.connection)
    }

    /// Whether the database answers.
    pub fn ping(&mut self) -> DbResult<()> {
        sqlite_direct::ping(&self.connection)
    }
}

/// A `started` row (no ending) or a finished one (its ending filled in).
fn insert_row(
    insert: &mut rusqlite::CachedStatement<'_>,
    row: &NewAiRequest,
    ending: Option<&AiCompletion>,
) -> DbResult<i64> {
    let provider = ending.and_then(|ending| ending.provider.as_deref()).unwrap_or(&row.provider);
    let upstream_model = ending.and_then(|ending| ending.upstream_model.as_deref()).unwrap_or(&row.upstream_model);
    let status = ending.map_or(AiRequestStatus::Started, |ending| ending.status);
    insert
        .query_row(
            params![
                row.user_id,
                row.api_key_id,
                row.session_id,
                row.trace_id,
                row.endpoint,
                provider,
                row.model,
                upstream_model,
                ending.and_then(|ending| ending.input_tokens),
                ending.and_then(|ending| ending.output_tokens),
                ending.and_then(|ending| ending.cache_read_tokens),
                ending.and_then(|ending| ending.cache_write_tokens),
                ending.and_then(|ending| ending.cost_microdollars),
                ending.and_then(|ending| ending.latency_ms),
                ending.and_then(|ending| ending.ttft_ms),
                status.as_str(),
                ending.and_then(|ending| bounded(&ending.error_message)),
                row.streamed,
                stored_time(row.started_at),
                ending.map(|ending| stored_time(ending.completed_at)),
            ],
            |stored| stored.get(0),
        )
        .map_err(classify)
}
