//! Removing what has expired from the identity tables.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::entity::{
    auth_flow_states, browser_sessions, enrolment_links, oauth_codes, oauth_refresh_tokens, oauth_revocations,
};
use crate::error::DbResult;
use crate::time::truncate_to_micros;

/// Deletes everything whose `expires_at` is at or before `now`: authorization codes (redeemed or
/// not), refresh tokens (a replay of one is then [`crate::oauth::RefreshUse::Unknown`], refused
/// all the same), revocation log entries, flow states, browser sessions and enrolment links.
/// Returns how many rows were removed in all. Grants are kept (see
/// [`crate::oauth::purge_grants_expired_before`]), and so are signing keys (see
/// [`crate::oauth::purge_signing_keys`]).
#[tracing::instrument(skip_all)]
pub async fn purge_expired(db: &DatabaseConnection, now: DateTime<Utc>) -> DbResult<u64> {
    let now = truncate_to_micros(now);
    let removed = [
        oauth_codes::Entity::delete_many().filter(oauth_codes::Column::ExpiresAt.lte(now)).exec(db).await?,
        oauth_refresh_tokens::Entity::delete_many()
            .filter(oauth_refresh_tokens::Column::ExpiresAt.lte(now))
            .exec(db)
            .await?,
        oauth_revocations::Entity::delete_many().filter(oauth_revocations::Column::ExpiresAt.lte(now)).exec(db).await?,
        auth_flow_states::Entity::delete_many().filter(auth_flow_states::Column::ExpiresAt.lte(now)).exec(db).await?,
        browser_sessions::Entity::delete_many().filter(browser_sessions::Column::ExpiresAt.lte(now)).exec(db).await?,
        enrolment_links::Entity::delete_many().filter(enrolment_links::Column::ExpiresAt.lte(now)).exec(db).await?,
    ];
    Ok(removed.iter().map(|result| result.rows_affected).sum())
}
