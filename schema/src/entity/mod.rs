//! sea-orm entities, one module per table. The data modules ([`crate::users`],
//! [`crate::api_keys`], [`crate::audit`], [`crate::meta`]) are the intended API; the entities
//! are public for ad-hoc queries and tests.

pub mod api_keys;
pub mod castellan_meta;
pub mod mcp_tool_executions;
pub mod users;
