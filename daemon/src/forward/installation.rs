//! This installation's id: random, made once and kept in `castellan_meta`, so that events from two
//! installations sending to one sink never share an idempotency key, while replicas sharing one
//! database (the same rows) share it.

use castellan_schema::{DatabaseConnection, DbResult, meta};

/// The `castellan_meta` key holding the id.
pub const INSTALLATION_ID_KEY: &str = "installation_id";

/// The installation's id (16 hex digits), made on first use. Of replicas racing to make it, one
/// wins ([`meta::set_if_absent`]) and all read the winner's.
pub async fn installation_id(db: &DatabaseConnection) -> DbResult<String> {
    if let Some(id) = meta::get(db, INSTALLATION_ID_KEY).await? {
        return Ok(id);
    }
    let candidate = format!("{:016x}", rand::random::<u64>());
    meta::set_if_absent(db, INSTALLATION_ID_KEY, &candidate).await?;
    Ok(meta::get(db, INSTALLATION_ID_KEY).await?.unwrap_or(candidate))
}
