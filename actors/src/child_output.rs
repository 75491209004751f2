//! A child's stderr (and an HTTP child's stdout) into the log: whole lines, decoded lossily,
//! redacted before they are cut to the logged length.
//!
//! Redaction runs on the whole line, never on a pipe read or on the cut text: a secret split across
//! two reads, or across the 2,048-character limit of a logged line, is still one match. Bytes that
//! are not UTF-8 become U+FFFD and the pipe stays read to its end, so a child that writes them is
//! never blocked or broken by a closed pipe.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The longest output line kept whole; the rest of a longer line is read and dropped.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The longest line shown in the log, in characters (after redaction).
pub const MAX_SHOWN_CHARS: usize = 2048;

/// Replaces secret values in child output (the daemon's secret-store redactor).
pub trait OutputRedactor: Send + Sync {
    /// A whole line.
    fn redact_line(&self, line: &str) -> String;
    /// The first [`MAX_LINE_BYTES`] of a longer line: what could be the beginning of a secret that
    /// continues past the end must not be returned.
    fn redact_line_head(&self, head: &str) -> String;
}

/// For tests and tools that hold no secrets.
pub struct NoRedaction;

impl OutputRedactor for NoRedaction {
    fn redact_line(&self, line: &str) -> String {
        line.to_string()
    }

    fn redact_line_head(&self, head: &str) -> String {
        head.to_string()
    }
}

/// One line as read: whole, or the head of a line longer than [`MAX_LINE_BYTES`].
#[derive(Debug, PartialEq, Eq)]
pub enum OutputLine {
    Whole(Vec<u8>),
    Head(Vec<u8>),
}

impl OutputLine {
    /// Decoded lossily, redacted, cut to [`MAX_SHOWN_CHARS`].
    pub fn shown(&self, redactor: &dyn OutputRedactor) -> String {
        let redacted = match self {
            OutputLine::Whole(bytes) => {
                let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                redactor.redact_line(&String::from_utf8_lossy(bytes))
            }
            OutputLine::Head(bytes) => redactor.redact_line_head(&String::from_utf8_lossy(bytes)),
        };
        match redacted.char_indices().nth(MAX_SHOWN_CHARS) {
            Some((cut, _)) => redacted[..cut].to_string(),
            None => redacted,
        }
    }
}

/// Reads `stream` to its end, handing each line to `emit`; only an end of file or a read error
/// ends it (never the content).
pub async fn read_lines(stream: impl AsyncRead + Unpin, max_line_bytes: usize, mut emit: impl FnMut(OutputLine)) {
    let mut reader = BufReader::new(stream);
    let mut line: Vec<u8> = Vec::new();
    // Set after a head was emitted: the rest of that line is dropped up to its newline.
    let mut dropping = false;
    while let Ok(available) = reader.fill_buf().await {
        if available.is_empty() {
            if !line.is_empty() && !dropping {
                emit(OutputLine::Whole(std::mem::take(&mut line)));
            }
            break;
        }
        let newline = available.iter().position(|byte| *byte == b'\n');
        let content = &available[..newline.unwrap_or(available.len())];
        if !dropping {
            let room = max_line_bytes.saturating_sub(line.len());
            line.extend_from_slice(&content[..content.len().min(room)]);
            if content.len() > room {
                emit(OutputLine::Head(std::mem::take(&mut line)));
                dropping = true;
            }
        }
        let consumed = newline.map_or(available.len(), |at| at + 1);
        if newline.is_some() {
            if !dropping {
                emit(OutputLine::Whole(std::mem::take(&mut line)));
            }
            dropping = false;
        }
        reader.consume(consumed);
    }
}

/// Logs every line of `stream` as `message` for `server` until the stream ends.
pub fn spawn_line_logger(
    server: String,
    stream: impl AsyncRead + Unpin + Send + 'static,
    redactor: Arc<dyn OutputRedactor>,
    field: OutputField,
) {
    tokio::spawn(async move {
        read_lines(stream, MAX_LINE_BYTES, |line| {
            let shown = line.shown(redactor.as_ref());
            match field {
                OutputField::Stderr => tracing::info!(server = %server, stderr = %shown, "mcp server stderr"),
                OutputField::Output => tracing::info!(server = %server, output = %shown, "mcp server output"),
            }
        })
        .await;
    });
}

/// Which log event a stream's lines become.
#[derive(Debug, Clone, Copy)]
pub enum OutputField {
    /// A stdio server's stderr: `mcp server stderr`, field `stderr`.
    Stderr,
    /// An HTTP child's stdout or stderr: `mcp server output`, field `output`.
    Output,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    async fn lines_of(chunks: Vec<&'static [u8]>, max: usize) -> Vec<OutputLine> {
        let (mut writer, reader) = tokio::io::duplex(16);
        let feeder = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for chunk in chunks {
                writer.write_all(chunk).await.unwrap();
                writer.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut lines = Vec::new();
        read_lines(reader, max, |line| lines.push(line)).await;
        feeder.await.unwrap();
        lines
    }

    #[tokio::test]
    async fn lines_are_whole_across_reads_and_invalid_utf8_does_not_end_the_stream() {
        let lines = lines_of(vec![b"one sec", b"ret two\n", b"\xff\xfe\n", b"after\r\n", b"last"], 64).await;
        assert_eq!(
            lines,
            vec![
                OutputLine::Whole(b"one secret two".to_vec()),
                OutputLine::Whole(b"\xff\xfe".to_vec()),
                OutputLine::Whole(b"after\r".to_vec()),
                OutputLine::Whole(b"last".to_vec()),
            ],
            "a line is assembled from several reads; invalid UTF-8 is a line like any other"
        );
        assert_eq!(OutputLine::Whole(b"\xff\xfe".to_vec()).shown(&NoRedaction), "\u{fffd}\u{fffd}");
        assert_eq!(OutputLine::Whole(b"after\r".to_vec()).shown(&NoRedaction), "after");
    }

    #[tokio::test]
    async fn a_line_longer_than_the_limit_gives_its_head_and_the_rest_is_dropped() {
        let lines = lines_of(vec![b"0123456789", b"abcdef\nnext\n"], 8).await;
        assert_eq!(
            lines,
            vec![OutputLine::Head(b"01234567".to_vec()), OutputLine::Whole(b"next".to_vec())],
            "the head, then the following line"
        );
    }

    struct Replace(&'static str);

    impl OutputRedactor for Replace {
        fn redact_line(&self, line: &str) -> String {
            line.replace(self.0, "[REDACTED:x]")
        }
        fn redact_line_head(&self, head: &str) -> String {
            self.redact_line(head)
        }
    }

    #[test]
    fn redaction_sees_the_whole_line_before_it_is_cut_to_the_shown_length() {
        let secret = "sv-5b1e9d0c-leak-canary";
        let mut line = "a".repeat(MAX_SHOWN_CHARS - 4).into_bytes();
        line.extend_from_slice(secret.as_bytes());
        let shown = OutputLine::Whole(line).shown(&Replace(secret));
        assert!(!shown.contains("sv-5"), "no piece of the value before the cut: ...{}", &shown[shown.len() - 20..]);
        assert!(shown.ends_with("aaaa[RED"), "the cut falls after redaction: ...{}", &shown[shown.len() - 20..]);
        assert_eq!(shown.chars().count(), MAX_SHOWN_CHARS);
    }
}
