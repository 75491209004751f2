//! The stdio wire: newline-delimited JSON-RPC over a child's stdin and stdout; stderr goes to the log
//! ([`crate::child_output`]).

use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};

use super::{Connection, InboundRouter, UpstreamError, Wire};
use crate::child_output::{OutputField, OutputRedactor, spawn_line_logger};
use crate::spawn::SupervisedChild;

/// The longest message a server may send on one line; a larger one ends the connection.
const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

pub(crate) struct StdioWire {
    writer: mpsc::Sender<Vec<u8>>,
}

impl StdioWire {
    pub(crate) async fn send(&self, message: &Value) -> Result<(), UpstreamError> {
        let mut line = serde_json::to_vec(message).map_err(|error| UpstreamError::Protocol(error.to_string()))?;
        line.push(b'\n');
        self.writer.send(line).await.map_err(|_| UpstreamError::Disconnected)
    }
}

/// Takes the child's pipes and returns the connection; tasks end when the child's stdout closes.
/// Its stderr goes to the log line by line, redacted by `redactor`, until the child closes it.
pub fn connect_stdio(
    server: &str,
    child: &mut SupervisedChild,
    router: Arc<dyn InboundRouter>,
    redactor: Arc<dyn OutputRedactor>,
) -> Result<Arc<Connection>, UpstreamError> {
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.child.stdin.take(), child.child.stdout.take(), child.child.stderr.take())
    else {
        return Err(UpstreamError::Transport("the child has no stdio pipes".into()));
    };
    let (writer, mut outgoing) = mpsc::channel::<Vec<u8>>(256);
    let connection = Connection::new(server.to_string(), Wire::Stdio(StdioWire { writer }), router);

    tokio::spawn(async move {
        while let Some(line) = outgoing.recv().await {
            if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                break;
            }
        }
    });

    let reader_connection = Arc::clone(&connection);
    tokio::spawn(async move {
        let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_MESSAGE_BYTES));
        while let Some(line) = lines.next().await {
            let Ok(line) = line else {
                tracing::warn!(server = %reader_connection.server, "upstream message too long or unreadable; closing");
                break;
            };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(message) => reader_connection.dispatch(message),
                Err(_) => tracing::warn!(server = %reader_connection.server, "upstream wrote a line that is not JSON"),
            }
        }
        reader_connection.close();
    });

    spawn_line_logger(server.to_string(), stderr, redactor, OutputField::Stderr);
    Ok(connection)
}
