//! Structured logging: JSON lines on stderr, filtered by `CASTELLAN_LOG` (or `RUST_LOG`), with
//! secret values redacted.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are no-ops (tests call it repeatedly).
pub fn init_logging() {
    let filter = std::env::var("CASTELLAN_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .map(EnvFilter::new)
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,sea_orm=warn,actix_server=warn"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        // Every line passes the redactor: a secret value never reaches the log.
        .with_writer(|| crate::redaction::RedactingStderr)
        .try_init();
}
