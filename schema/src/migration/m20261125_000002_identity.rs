//! The identity schema: the OAuth 2.1 authorization server (clients, grants, codes, refresh
//! tokens, the revocation log, signing keys, consents), passkeys, browser sessions, short-lived
//! sign-in state and enrolment links.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, big_pk_auto, boolean, text, text_null, text_uniq, timestamp_with_time_zone,
    timestamp_with_time_zone_null,
};

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum OauthClients {
    Table,
    Id,
    ClientId,
    Name,
    Tier,
    SecretHash,
    GrantTypes,
    RedirectUris,
    Scopes,
    Dynamic,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum OauthGrants {
    Table,
    GrantId,
    ClientId,
    UserId,
    Scopes,
    Resources,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum OauthCodes {
    Table,
    CodeHash,
    GrantId,
    ClientId,
    UserId,
    RedirectUri,
    CodeChallenge,
    Resources,
    Scopes,
    AuthTime,
    CreatedAt,
    ExpiresAt,
    ConsumedAt,
}

#[derive(DeriveIden)]
enum OauthRefreshTokens {
    Table,
    TokenHash,
    GrantId,
    ClientId,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum OauthRevocations {
    Table,
    Id,
    Kind,
    Value,
    RevokedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Alg,
    SealedPrivateKey,
    PublicJwk,
    CreatedAt,
    RetiredAt,
    DeleteAfter,
}

#[derive(DeriveIden)]
enum BrowserSessions {
    Table,
    SessionHash,
    UserId,
    AuthTime,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum OauthConsents {
    Table,
    UserId,
    ClientId,
    Scopes,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebauthnCredentials {
    Table,
    Id,
    UserId,
    CredentialId,
    Passkey,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum AuthFlowStates {
    Table,
    IdHash,
    Kind,
    UserId,
    State,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum EnrolmentLinks {
    Table,
    TokenHash,
    UserId,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            oauth_clients_table(),
            oauth_grants_table(),
            oauth_codes_table(),
            oauth_refresh_tokens_table(),
            oauth_revocations_table(),
            signing_keys_table(),
            browser_sessions_table(),
            oauth_consents_table(),
            webauthn_credentials_table(),
            auth_flow_states_table(),
            enrolment_links_table(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }
        for statement in indexes() {
            manager.create_index(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            EnrolmentLinks::Table.into_iden(),
            AuthFlowStates::Table.into_iden(),
            WebauthnCredentials::Table.into_iden(),
            OauthConsents::Table.into_iden(),
            BrowserSessions::Table.into_iden(),
            SigningKeys::Table.into_iden(),
            OauthRevocations::Table.into_iden(),
            OauthRefreshTokens::Table.into_iden(),
            OauthCodes::Table.into_iden(),
            OauthGrants::Table.into_iden(),
            OauthClients::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// `ON DELETE CASCADE` from `table.user_id` to `users.id`: a deleted user takes their grants,
/// codes, sessions, consents, passkeys, flow state and enrolment links along.
fn user_foreign_key<T: IntoIden + 'static>(name: &str, table: T, column: T) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn oauth_clients_table() -> TableCreateStatement {
    use OauthClients as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(big_pk_auto(T::Id))
        .col(text_uniq(T::ClientId))
        .col(text(T::Name))
        .col(text(T::Tier))
        .col(text_null(T::SecretHash))
        .col(text(T::GrantTypes))
        .col(text(T::RedirectUris))
        .col(text(T::Scopes))
        .col(boolean(T::Dynamic))
        .col(timestamp_with_time_zone(T::CreatedAt))
        .col(timestamp_with_time_zone_null(T::LastUsedAt))
        .to_owned()
}

fn oauth_grants_table() -> TableCreateStatement {
    use OauthGrants as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(text(T::GrantId).primary_key())
        .col(text(T::ClientId))
        .col(big_integer_null(T::UserId))
        .col(text(T::Scopes))
        .col(text(T::Resources))
        .col(timestamp_with_time_zone(T::CreatedAt))
        .col(timestamp_with_time_zone(T::ExpiresAt))
        .col(timestamp_with_time_zone_null(T::RevokedAt))
        .foreign_key(&mut user_foreign_key("fk_oauth_grants_user_id", T::Table, T::UserId))
        .to_owned()
}

fn oauth_codes_table() -> TableCreateStatement {
    use OauthCodes as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(text(T::CodeHash).primary_key())
        .col(text(T::GrantId))
        .col(text(T::ClientId))
        .col(big_integer(T::UserId))
        .col(text(T::RedirectUri))
        .col(text(T::CodeChallenge))
        .col(text(T::Resources))
        .col(text(T::Scopes))
        .col(timestamp_with_time_zone(T::AuthTime))
        .col(timestamp_with_time_zone(T::CreatedAt))
        .col(timestamp_with_time_zone(T::ExpiresAt))
        .col(timestamp_with_time_zone_null(T::ConsumedAt))
        .foreign_key(&mut user_foreign_key("fk_oauth_codes_user_id", T::Table, T::UserId))
        .to_owned()
}

fn oauth_refresh_tokens_table() -> TableCreateStatement {
    use OauthRefreshTokens as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(text(T::TokenHash).primary_key())
        .col(text(T::GrantId))
        .col(text(T::ClientId))
        .col(timestamp_with_time_zone(T::CreatedAt))
        .col(timestamp_with_time_zone(T::ExpiresAt))
        .col(timestamp_with_time_zone_null(T::UsedAt))
        .col(timestamp_with_time_zone_null(T::RevokedAt))
        .to_owned()
}

/// Ids must only grow, even after the newest rows are purged, or a replica that polls by id would
/// skip an entry: `big_pk_auto` is `AUTOINCREMENT` on SQLite (never reuses an id) and a sequence on
/// PostgreSQL.
fn oauth_revocations_table() -> TableCreateStatement {
    use OauthRevocations as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(big_pk_auto(T::Id))
        .col(text(T::Kind))
        .col(text(T::Value))
        .col(timestamp_with_time_zone(T::RevokedAt))
        .col(timestamp_with_time_zone(T::ExpiresAt))
        .to_owned()
}

fn signing_keys_table() -> TableCreateStatement {
    use SigningKeys as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(text(T::Kid).primary_key())
        .col(text(T::Alg))
        .col(text(T::SealedPrivateKey))
        .col(text(T::PublicJwk))
        .col(timestamp_with_time_zone(T::CreatedAt))
        .col(timestamp_with_time_zone_null(T::RetiredAt))
        .col(timestamp_with_time_zone_null(T::DeleteAfter))
        .to_owned()
}

fn browser_sessions_table() -> TableCreateStatement {
    use BrowserSessions as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(text(T::SessionHash).primary_key())
        .col(big_integer(T::UserId))
        .col(timestamp_with_time_zone(T::AuthTime))
        .col(timestamp_with_time_zone(T::CreatedAt))
        .col(timestamp_with_time_zone(T::ExpiresAt))
        .foreign_key(&mut user_foreign_key("fk_browser_sessions_user_id", T::Table, T::UserId))
        .to_owned()
}

fn oauth_consents_table() -> TableCreateStatement {
    use OauthConsents as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(big_integer(T::UserId))
        .col(text(T::ClientId))
        .col(text(T::Scopes))
        .col(timestamp_with_time_zone(T::CreatedAt))
        .primary_key(Index::create().col(T::UserId).col(T::ClientId))
        .foreign_key(&mut user_foreign_key("fk_oauth_consents_user_id", T::Table, T::UserId))
        .to_owned()
}

fn webauthn_credentials_table() -> TableCreateStatement {
    use WebauthnCredentials as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(big_pk_auto(T::Id))
        .col(big_integer(T::UserId))
        .col(text_uniq(T::CredentialId))
        .col(text(T::Passkey))
        .col(timestamp_with_time_zone(T::CreatedAt))
        .col(timestamp_with_time_zone_null(T::LastUsedAt))
        .foreign_key(&mut user_foreign_key("fk_webauthn_credentials_user_id", T::Table, T::UserId))
        .to_owned()
}

fn auth_flow_states_table() -> TableCreateStatement {
    use AuthFlowStates as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(text(T::IdHash).primary_key())
        .col(text(T::Kind))
        .col(big_integer_null(T::UserId))
        .col(text(T::State))
        .col(timestamp_with_time_zone(T::CreatedAt))
        .col(timestamp_with_time_zone(T::ExpiresAt))
        .foreign_key(&mut user_foreign_key("fk_auth_flow_states_user_id", T::Table, T::UserId))
        .to_owned()
}

fn enrolment_links_table() -> TableCreateStatement {
    use EnrolmentLinks as T;
    Table::create()
        .table(T::Table)
        .if_not_exists()
        .col(text(T::TokenHash).primary_key())
        .col(big_integer(T::UserId))
        .col(timestamp_with_time_zone(T::CreatedAt))
        .col(timestamp_with_time_zone(T::ExpiresAt))
        .col(timestamp_with_time_zone_null(T::UsedAt))
        .foreign_key(&mut user_foreign_key("fk_enrolment_links_user_id", T::Table, T::UserId))
        .to_owned()
}

/// Lookups by something other than the primary key, `user_id` for the cascading deletes, and
/// `expires_at` for the purge.
fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        index("idx_oauth_grants_client_id", OauthGrants::Table, [OauthGrants::ClientId]),
        index("idx_oauth_grants_user_id", OauthGrants::Table, [OauthGrants::UserId]),
        index("idx_oauth_grants_expires_at", OauthGrants::Table, [OauthGrants::ExpiresAt]),
        index("idx_oauth_codes_user_id", OauthCodes::Table, [OauthCodes::UserId]),
        index("idx_oauth_codes_expires_at", OauthCodes::Table, [OauthCodes::ExpiresAt]),
        index("idx_oauth_refresh_tokens_grant_id", OauthRefreshTokens::Table, [OauthRefreshTokens::GrantId]),
        index("idx_oauth_refresh_tokens_expires_at", OauthRefreshTokens::Table, [OauthRefreshTokens::ExpiresAt]),
        index("idx_oauth_revocations_expires_at", OauthRevocations::Table, [OauthRevocations::ExpiresAt]),
        index("idx_browser_sessions_user_id", BrowserSessions::Table, [BrowserSessions::UserId]),
        index("idx_browser_sessions_expires_at", BrowserSessions::Table, [BrowserSessions::ExpiresAt]),
        index("idx_oauth_consents_client_id", OauthConsents::Table, [OauthConsents::ClientId]),
        index("idx_webauthn_credentials_user_id", WebauthnCredentials::Table, [WebauthnCredentials::UserId]),
        index("idx_auth_flow_states_user_id", AuthFlowStates::Table, [AuthFlowStates::UserId]),
        index("idx_auth_flow_states_expires_at", AuthFlowStates::Table, [AuthFlowStates::ExpiresAt]),
        index("idx_enrolment_links_user_id", EnrolmentLinks::Table, [EnrolmentLinks::UserId]),
        index("idx_enrolment_links_expires_at", EnrolmentLinks::Table, [EnrolmentLinks::ExpiresAt]),
    ]
}
