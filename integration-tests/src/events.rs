//! A client of the admin event stream (`GET /api/v1/events`): a reader thread parses the
//! Server-Sent Events and hands each message over a channel, so tests wait with deadlines.
//!
//! Plain HTTP/1.1 over a `TcpStream` rather than ureq: the test must be able to hang up (dropping an
//! [`EventStream`] shuts the socket down), which a blocked ureq body reader cannot.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One message of the stream, or a comment (`event` empty, `data` null).
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub event: String,
    pub id: Option<u64>,
    pub data: Value,
    /// The message as received, field lines and comments included.
    pub raw: String,
}

/// An open stream; dropping it hangs up.
pub struct EventStream {
    pub content_type: String,
    pub cache_control: String,
    messages: Receiver<Message>,
    socket: TcpStream,
    /// Everything received so far, as text.
    pub received: String,
}

impl EventStream {
    /// Opens `{base_url}/api/v1/events{query}` with `authorization` (may be empty); a non-200 answer
    /// comes back as its status and body.
    pub fn open(base_url: &str, authorization: &str, query: &str) -> Result<EventStream, (u16, String)> {
        let host = base_url.trim_start_matches("http://");
        let socket = TcpStream::connect(host).expect("connect to the daemon");
        let mut request =
            format!("GET /api/v1/events{query} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n");
        if !authorization.is_empty() {
            request.push_str(&format!("Authorization: {authorization}\r\n"));
        }
        request.push_str("\r\n");
        (&socket).write_all(request.as_bytes()).expect("send the request");
        socket.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        let mut reader = BufReader::new(socket.try_clone().expect("clone the socket"));
        let status_line = read_line(&mut reader).expect("a status line");
        let status: u16 = status_line.split(' ').nth(1).and_then(|code| code.parse().ok()).expect(&status_line);
        let mut headers = Vec::new();
        loop {
            let line = read_line(&mut reader).expect("a header line");
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let header = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        let chunked = header("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
        if status != 200 {
            let body = if chunked {
                let mut body = Vec::new();
                while let Some(chunk) = read_chunk(&mut reader) {
                    body.extend(chunk);
                }
                body
            } else {
                let length: usize = header("content-length").and_then(|length| length.parse().ok()).unwrap_or(0);
                let mut body = vec![0; length];
                reader.read_exact(&mut body).expect("the error body");
                body
            };
            return Err((status, String::from_utf8_lossy(&body).into_owned()));
        }
        assert!(chunked, "a streamed body is chunked: {headers:?}");
        socket.set_read_timeout(None).expect("no read timeout on the stream");
        let (sender, messages) = channel();
        std::thread::spawn(move || parse_messages(reader, sender));
        Ok(EventStream {
            content_type: header("content-type").unwrap_or_default(),
            cache_control: header("cache-control").unwrap_or_default(),
            messages,
            socket,
            received: String::new(),
        })
    }

    /// The next message (comments included) within `limit`, or `None`.
    pub fn next(&mut self, limit: Duration) -> Option<Message> {
        let message = self.messages.recv_timeout(limit).ok()?;
        self.received.push_str(&message.raw);
        Some(message)
    }

    /// The first message within `limit` that `wanted` accepts; the ones before it are still recorded
    /// in `received`.
    pub fn find(&mut self, limit: Duration, wanted: impl Fn(&Message) -> bool) -> Option<Message> {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let message = self.next(left)?;
            if wanted(&message) {
                return Some(message);
            }
        }
        None
    }

    /// Everything that arrives within `limit` (for checks over the whole stream).
    pub fn drain(&mut self, limit: Duration) -> Vec<Message> {
        let deadline = Instant::now() + limit;
        let mut messages = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(message) => messages.push(message),
                None => break,
            }
        }
        messages
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

fn read_line(reader: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
    }
}

/// One chunk of a chunked body; `None` at the last chunk or when the connection ends.
fn read_chunk(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let size_line = read_line(reader)?;
    let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
    let mut chunk = vec![0; size + 2];
    reader.read_exact(&mut chunk).ok()?;
    chunk.truncate(size);
    (size > 0).then_some(chunk)
}

/// De-chunks the body and sends every complete message (a block ending in a blank line).
fn parse_messages(mut reader: impl BufRead, sender: Sender<Message>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut current = Message::default();
    while let Some(chunk) = read_chunk(&mut reader) {
        pending.extend(chunk);
        while let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            current.raw.push_str(&line);
            current.raw.push('\n');
            if line.is_empty() {
                if sender.send(std::mem::take(&mut current)).is_err() {
                    return;
                }
            } else if let Some(event) = line.strip_prefix("event: ") {
                current.event = event.to_string();
            } else if let Some(id) = line.strip_prefix("id: ") {
                current.id = id.parse().ok();
            } else if let Some(data) = line.strip_prefix("data: ") {
                current.data = serde_json::from_str(data).unwrap_or(Value::Null);
            }
        }
    }
}
