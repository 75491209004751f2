//! The OAuth 2.1 authorization server's tables: clients, grants (token families), authorization
//! codes, refresh tokens, the revocation log, signing keys and consents.
//!
//! Codes and refresh tokens are stored as SHA-256 hashes and are single use: redeeming one is a
//! single conditional `UPDATE` whose affected-row count says who won, so of any number of
//! concurrent callers (on any replica) exactly one succeeds, on SQLite and PostgreSQL alike.
//! Revoking a grant or an access token appends to `oauth_revocations`, a log with ever-growing
//! ids that replicas poll with [`revocations_after`].

mod clients;
mod codes;
mod consents;
mod grants;
mod purge;
mod refresh_tokens;
mod revocations;
mod signing_keys;

pub use clients::{
    NewOAuthClient, OAuthClientRow, REMOVED_CLIENT_REVOCATION_LIFETIME, count_dynamic_clients,
    count_dynamic_clients_holding_places, create_client, delete_unused_dynamic_clients,
    evict_oldest_unused_dynamic_client, find_client, list_clients, remove_client, remove_client_revoking_until,
    touch_client,
};
pub use codes::{CodeRedemption, CodeRow, NewCode, insert_code, redeem_code};
pub use consents::{find_consent, record_consent};
pub use grants::{GrantRow, NewGrant, create_grant, find_grant, purge_grants_expired_before, revoke_grant};
pub use purge::purge_expired;
pub use refresh_tokens::{RefreshTokenRow, RefreshUse, find_refresh_token, insert_refresh_token, use_refresh_token};
pub use revocations::{
    REVOCATION_KIND_GRANT, REVOCATION_KIND_JTI, REVOCATIONS_PAGE_MAX, RevocationRow, revocations_after, revoke_jti,
};
pub use signing_keys::{
    SigningKeyRow, insert_signing_key, list_signing_keys, purge_signing_keys, retire_signing_keys_except,
};
