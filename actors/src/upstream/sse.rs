//! An incremental parser for `text/event-stream` bodies: bytes in, complete events' data out.

/// One event's fields that MCP uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
}

/// Feed it chunks as they arrive; it returns every event completed by the chunk.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no line end: a line trickled in small chunks is
    /// scanned once, not once per chunk.
    scanned: usize,
    current: SseEvent,
    has_data: bool,
    max_event_bytes: usize,
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        Self { max_event_bytes, ..Self::default() }
    }

    /// Returns the events completed so far, or an error once an event grows past the limit.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, &'static str> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        let mut search_from = self.scanned;
        while let Some(offset) = self.buffer[search_from..].iter().position(|&byte| byte == b'\n') {
            let end = search_from + offset;
            search_from = end + 1;
            let mut line = &self.buffer[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(event) = self.take_line(&line) {
                events.push(event);
            }
            // Checked after every line, so an event that outgrows the limit within the chunk that
            // completes it is refused too.
            if self.current.data.len() > self.max_event_bytes {
                return Err("event too large");
            }
        }
        self.buffer.drain(..start);
        self.scanned = self.buffer.len();
        if self.buffer.len() + self.current.data.len() > self.max_event_bytes {
            return Err("event too large");
        }
        Ok(events)
    }

    fn take_line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if !self.has_data {
                self.current = SseEvent::default();
                return None;
            }
            self.has_data = false;
            return Some(std::mem::take(&mut self.current));
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.current.event = Some(value.to_string()),
            "id" => self.current.id = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new(1 << 20);
        chunks.iter().flat_map(|chunk| parser.feed(chunk).expect("within limit")).collect()
    }

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let events = parse_all(&[b"event: message\nda", b"ta: {\"a\":1}\n", b"\n", b"data: x\r\ndata: y\r\n\r\n"]);
        assert_eq!(events.len(), 2, "two complete events");
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[0].event.as_deref(), Some("message"));
        assert_eq!(events[1].data, "x\ny", "multi-line data joins with newline");
    }

    #[test]
    fn comments_and_empty_events_yield_nothing() {
        assert!(parse_all(&[b": keepalive\n\n\n\nid: 3\n\n"]).is_empty(), "no data means no event");
    }

    #[test]
    fn an_event_over_the_limit_is_an_error() {
        let mut parser = SseParser::new(16);
        assert!(parser.feed(b"data: 0123456789abcdefghij").is_err(), "unterminated oversized event is refused");
    }

    #[test]
    fn a_line_trickled_byte_by_byte_is_parsed_once_complete() {
        let mut parser = SseParser::new(1 << 20);
        let text = format!("data: {}\n\n", "x".repeat(10_000));
        let mut events = Vec::new();
        for byte in text.as_bytes() {
            events.extend(parser.feed(std::slice::from_ref(byte)).expect("within the limit"));
        }
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), 10_000);
    }

    /// Found by the `sse` fuzz target (minimized: limit 0, one chunk `data:b\n\n`): an event that
    /// grew past the limit within the chunk that completed it was returned instead of refused.
    #[test]
    fn an_event_completed_within_one_chunk_is_held_to_the_limit_too() {
        assert!(SseParser::new(0).feed(b"data:b\n\n").is_err());
        assert!(SseParser::new(16).feed(b"data: 0123456789abcdefghij\n\n").is_err(), "one line over the limit");
        assert!(SseParser::new(16).feed(b"data: 0123456789\ndata: abcdef\n\n").is_err(), "joined lines over it");
        let at_limit = SseParser::new(4).feed(b"data: abcd\n\n").expect("an event of exactly the limit passes");
        assert_eq!(at_limit.len(), 1);
        assert_eq!(at_limit[0].data, "abcd");
    }
}
