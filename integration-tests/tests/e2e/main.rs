//! One end-to-end test binary: every module below is one area of the surface. One binary links the
//! castellan library once instead of twenty times.

mod ai_claude_code;
mod ai_fake_provider;
mod ai_gateway;
mod audit_size;
mod child_output;
mod cli;
mod conformance;
mod durability;
mod events;
mod extensions;
mod faults;
mod federation;
mod forward;
mod gateway;
mod hooks;
mod identity_replicas;
mod ingress;
mod jobs;
mod no_bypass;
mod notifications;
mod oauth_attacks;
mod oauth_cimd;
mod oauth_clients;
mod observability;
mod python_clients;
mod rate_limits;
mod secrets;
mod skills;
mod skills_mcp;
mod skills_registry;
mod stateless;
mod supervision;
mod tool_pinning;
mod trace_lineage;
mod vault;
