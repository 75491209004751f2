//! sea-orm entities, one module per table. The data modules ([`crate::users`],
//! [`crate::api_keys`], [`crate::audit`], [`crate::meta`], [`crate::oauth`], [`crate::sessions`],
//! [`crate::webauthn`], [`crate::skills`]) are the intended API; the entities are public for
//! ad-hoc queries and tests.

pub mod ai_requests;
pub mod api_keys;
pub mod auth_flow_states;
pub mod browser_sessions;
pub mod castellan_meta;
pub mod enrolment_links;
pub mod forward_cursors;
pub mod hook_events;
pub mod job_leases;
pub mod job_runs;
pub mod mcp_tool_executions;
pub mod oauth_clients;
pub mod oauth_codes;
pub mod oauth_consents;
pub mod oauth_grants;
pub mod oauth_refresh_tokens;
pub mod oauth_revocations;
pub mod secrets;
pub mod signing_keys;
pub mod skill_blobs;
pub mod skill_fetches;
pub mod skill_files;
pub mod skill_versions;
pub mod skills;
pub mod tool_pins;
pub mod users;
pub mod webauthn_credentials;
