//! Castellan: the CLI, the HTTP surface, identity and the MCP gateway.
//!
//! `Application::build` wires the actors and binds the listener; `cli` is the thin command layer.

pub mod admin_api;
pub mod ai;
pub mod app;
pub mod cli;
pub mod demo_server;
pub mod extension_routes;
pub mod extension_tools;
pub mod extensions;
pub mod forward;
pub mod governance;
pub mod hooks;
pub mod http;
pub mod http_body;
pub mod identity;
pub mod jobs;
pub mod mcp;
pub mod metrics_access;
pub mod oauth;
pub mod observability;
pub mod policy_files;
pub mod redaction;
pub mod reload;
pub mod secrets;
pub mod skills;
pub mod trace;
pub mod trace_ids;
pub mod vault;
pub mod web;

/// The Extension trait and `register_extension!`, so an integrator's crates need only `castellan`.
pub use castellan_extension as extension;

/// The whole `main` of a Castellan binary, the stock one or an integrator's with extensions
/// registered by `register_extension!`: parses the command line and runs the command.
pub fn run() -> std::process::ExitCode {
    extensions::install_sections();
    extensions::install_migrations();
    cli::main()
}
