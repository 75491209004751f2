//! Structured logging on stderr, filtered by `CASTELLAN_LOG` (or `RUST_LOG`), with secret values
//! redacted: JSON lines when stderr is not a terminal (journald, a pipe, a file, a log shipper),
//! human-readable text on a terminal, or whichever `--log-format` forces.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `--log-format`: how log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people: time, level, target, message, fields.
    Text,
    /// One JSON object per line for machines.
    Json,
}

impl LogFormat {
    /// The format asked for, else text on a terminal and JSON anywhere else.
    pub fn resolve(requested: Option<LogFormat>, stderr_is_terminal: bool) -> LogFormat {
        match requested {
            Some(format) => format,
            None if stderr_is_terminal => LogFormat::Text,
            None => LogFormat::Json,
        }
    }
}

/// Installs the global subscriber once; later calls are no-ops (tests call it repeatedly).
pub fn init_logging(requested: Option<LogFormat>) {
    let filter = std::env::var("CASTELLAN_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .map(EnvFilter::new)
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,sea_orm=warn,actix_server=warn"));
    let terminal = std::io::stderr().is_terminal();
    // Every line passes the redactor: a secret value never reaches the log.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| crate::redaction::RedactingStderr);
    let _ = match LogFormat::resolve(requested, terminal) {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
        // Colours only on a terminal: escape codes in a file or a pipe are noise.
        LogFormat::Text => builder.with_ansi(terminal).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_and_the_terminal_decides_otherwise() {
        let cases = [
            (None, true, LogFormat::Text),
            (None, false, LogFormat::Json),
            (Some(LogFormat::Json), true, LogFormat::Json),
            (Some(LogFormat::Text), false, LogFormat::Text),
        ];
        for (requested, terminal, expected) in cases {
            assert_eq!(LogFormat::resolve(requested, terminal), expected, "{requested:?} on a terminal: {terminal}");
        }
    }
}
