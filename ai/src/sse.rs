//! Server-sent events framing (the `text/event-stream` of every provider's streams): an
//! incremental parser (bytes as they arrive in, complete events out, with bounded memory) and the
//! encoder the gateway writes its own streams with.
//!
//! The parser follows the WHATWG event-stream rules, with two deliberate differences: invalid
//! UTF-8 is an error rather than replaced (a provider stream that is not UTF-8 is broken, and
//! silently altering a prompt or a tool call is worse than stopping), and an event larger than
//! the limit is an error (a relay must not buffer without bound on behalf of an upstream).

/// One event: its `event:` name (Anthropic and OpenAI Responses name theirs; OpenAI Chat and
/// Gemini do not) and its `data:` lines joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

impl Event {
    /// The event as stream text: `event: NAME` when it is named, one `data: ` line per line of
    /// `data`, then the blank line that dispatches it. Always writing the name when there is one
    /// matters: the Anthropic SDK drops unnamed events without a word (wire-formats.md §0.3).
    ///
    /// SSE cannot carry a `\r` inside a name or a data line (it ends the line), so an event whose
    /// text holds one does not parse back to itself; events from [`Parser`] never hold one.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(self.data.len() + 16);
        if let Some(name) = &self.event {
            text.push_str("event: ");
            text.push_str(name);
            text.push('\n');
        }
        for line in self.data.split('\n') {
            text.push_str("data: ");
            text.push_str(line);
            text.push('\n');
        }
        text.push('\n');
        text
    }
}

/// Why a stream could not be read. After one, the stream is broken: the parser keeps returning
/// the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error(
        "the event stream has an event larger than {max_event_bytes} bytes (around line {line}); \
         the gateway holds at most that much of one event"
    )]
    EventTooLarge { max_event_bytes: usize, line: u64 },
    #[error("the event stream is not valid UTF-8 (line {line})")]
    InvalidUtf8 { line: u64 },
}

/// Feed it chunks as they arrive, cut anywhere (inside a UTF-8 sequence, between `\r` and `\n`);
/// it returns the events each chunk completes.
///
/// Memory is bounded by `max_event_bytes`: the event being assembled (its data and name) plus the
/// line not yet ended may hold at most that many bytes, so comments, `id:` lines and unknown
/// fields count while they are being read too.
#[derive(Debug)]
pub struct Parser {
    max_event_bytes: usize,
    /// The bytes of the line not yet ended.
    line: Vec<u8>,
    /// The previous chunk ended with `\r`: a `\n` starting this one belongs to that line end.
    after_carriage_return: bool,
    /// No line has ended yet, so the current line may start with the byte order mark.
    at_stream_start: bool,
    data: String,
    has_data: bool,
    name: Option<String>,
    /// Lines ended so far, for error messages.
    line_number: u64,
    failed: Option<SseError>,
}

const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

impl Parser {
    pub fn new(max_event_bytes: usize) -> Parser {
        Parser {
            max_event_bytes,
            line: Vec::new(),
            after_carriage_return: false,
            at_stream_start: true,
            data: String::new(),
            has_data: false,
            name: None,
            line_number: 0,
            failed: None,
        }
    }

    /// The events completed by `chunk`. On an error the events the chunk completed before it are
    /// dropped too: the caller gives up on the stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, SseError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.push_unchecked(chunk);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// Ends the stream: the last line and event count even without their blank line (a stream
    /// cut short still carries what it said). The parser is then ready for a new stream.
    pub fn finish(&mut self) -> Result<Option<Event>, SseError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let mut last = None;
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            match self.end_line(&line) {
                Ok(event) => last = event,
                Err(error) => {
                    self.failed = Some(error.clone());
                    return Err(error);
                }
            }
        }
        if last.is_none() {
            last = self.dispatch();
        }
        *self = Parser::new(self.max_event_bytes);
        Ok(last)
    }

    fn push_unchecked(&mut self, mut chunk: &[u8]) -> Result<Vec<Event>, SseError> {
        let mut events = Vec::new();
        if self.after_carriage_return && !chunk.is_empty() {
            self.after_carriage_return = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        while !chunk.is_empty() {
            let Some(end) = chunk.iter().position(|&byte| byte == b'\n' || byte == b'\r') else {
                self.line.extend_from_slice(chunk);
                self.check_size()?;
                break;
            };
            self.line.extend_from_slice(&chunk[..end]);
            self.check_size()?;
            let terminator = chunk[end];
            chunk = &chunk[end + 1..];
            if terminator == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_carriage_return = true,
                }
            }
            let line = std::mem::take(&mut self.line);
            if let Some(event) = self.end_line(&line)? {
                events.push(event);
            }
            // Reuse the line's allocation: most lines of a stream are about the same length.
            self.line = line;
            self.line.clear();
        }
        Ok(events)
    }

    fn held_bytes(&self) -> usize {
        self.line.len() + self.data.len() + self.name.as_ref().map_or(0, String::len)
    }

    fn check_size(&self) -> Result<(), SseError> {
        if self.held_bytes() > self.max_event_bytes {
            return Err(SseError::EventTooLarge { max_event_bytes: self.max_event_bytes, line: self.line_number + 1 });
        }
        Ok(())
    }

    fn end_line(&mut self, line: &[u8]) -> Result<Option<Event>, SseError> {
        self.line_number += 1;
        let mut line = line;
        if self.at_stream_start {
            self.at_stream_start = false;
            line = line.strip_prefix(BYTE_ORDER_MARK).unwrap_or(line);
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::InvalidUtf8 { line: self.line_number })?;
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // An empty name is the default type in the WHATWG rules; here that is "no name".
            "event" => self.name = (!value.is_empty()).then(|| value.to_owned()),
            // `id` and `retry` steer a browser's reconnection, which a relay does not do.
            _ => {}
        }
        self.check_size()?;
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<Event> {
        let name = self.name.take();
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(Event { event: name, data: std::mem::take(&mut self.data) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use proptest::prelude::*;

    use super::*;

    fn event(name: Option<&str>, data: &str) -> Event {
        Event { event: name.map(str::to_owned), data: data.to_owned() }
    }

    /// Every event of `stream`, fed in pieces of `piece` bytes, `finish` included.
    fn parse_in_pieces(stream: &[u8], piece: usize, limit: usize) -> Result<Vec<Event>, SseError> {
        let mut parser = Parser::new(limit);
        let mut events = Vec::new();
        for chunk in stream.chunks(piece.max(1)) {
            events.extend(parser.push(chunk)?);
        }
        events.extend(parser.finish()?);
        Ok(events)
    }

    #[test]
    fn streams_parse_by_the_event_stream_rules() {
        let cases: &[(&str, &[u8], Vec<Event>)] = &[
            (
                "an Anthropic event with its name",
                b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
                vec![event(Some("message_start"), "{\"type\":\"message_start\"}")],
            ),
            ("data lines join with \\n", b"data: a\ndata: b\n\n", vec![event(None, "a\nb")]),
            ("\\r\\n line ends", b"event: x\r\ndata: 1\r\n\r\n", vec![event(Some("x"), "1")]),
            ("lone \\r line ends", b"event: x\rdata: 1\r\r", vec![event(Some("x"), "1")]),
            ("only one leading space is stripped", b"data:  two\n\n", vec![event(None, " two")]),
            ("no space after the colon", b"data:tight\n\n", vec![event(None, "tight")]),
            ("a field without a colon has an empty value", b"data\n\n", vec![event(None, "")]),
            ("comments are skipped", b": ping\ndata: x\n: more\n\n", vec![event(None, "x")]),
            (
                "id, retry and unknown fields are ignored",
                b"id: 7\nretry: 10\nfoo: bar\ndata: x\n\n",
                vec![event(None, "x")],
            ),
            ("an event without data is not dispatched", b"event: ping\n\ndata: x\n\n", vec![event(None, "x")]),
            ("the name does not leak into the next event", b"event: a\n\ndata: x\n\n", vec![event(None, "x")]),
            ("an empty name is no name", b"event:\ndata: x\n\n", vec![event(None, "x")]),
            ("a leading BOM is skipped", b"\xEF\xBB\xBFdata: x\n\n", vec![event(None, "x")]),
            ("a BOM later is data", b"data: \xEF\xBB\xBFx\n\n", vec![event(None, "\u{FEFF}x")]),
            ("a trailing event without a blank line", b"data: [DONE]", vec![event(None, "[DONE]")]),
            ("a trailing event whose last line ended", b"data: x\n", vec![event(None, "x")]),
            ("OpenAI's end marker is data like any other", b"data: [DONE]\n\n", vec![event(None, "[DONE]")]),
            ("a colon in the value stays", b"data: a: b\n\n", vec![event(None, "a: b")]),
            ("multibyte text", "data: héllo ✓\n\n".as_bytes(), vec![event(None, "héllo ✓")]),
        ];
        for (what, stream, expected) in cases {
            for piece in [1, 2, 3, 5, stream.len().max(1)] {
                assert_eq!(&parse_in_pieces(stream, piece, 1 << 20).unwrap(), expected, "{what} (pieces of {piece})");
            }
        }
    }

    #[test]
    fn a_chunk_boundary_between_carriage_return_and_line_feed_is_one_line_end() {
        let mut parser = Parser::new(1024);
        assert_eq!(parser.push(b"data: a\r").unwrap(), vec![], "the line is not yet an event");
        assert_eq!(parser.push(b"\n").unwrap(), vec![], "the \\n ends the same line, not a blank one");
        assert_eq!(parser.push(b"data: b\r").unwrap(), vec![]);
        assert_eq!(parser.push(b"\r").unwrap(), vec![event(None, "a\nb")], "a second \\r is the blank line");
    }

    #[test]
    fn events_come_out_as_soon_as_their_blank_line_arrives() {
        let mut parser = Parser::new(1024);
        assert_eq!(parser.push(b"data: 1\n\ndata: 2\n").unwrap(), vec![event(None, "1")], "only the first is complete");
        assert_eq!(parser.push(b"\ndata: 3\n\n").unwrap(), vec![event(None, "2"), event(None, "3")], "both complete");
        assert_eq!(parser.finish().unwrap(), None, "nothing is left over");
    }

    #[test]
    fn invalid_utf8_is_an_error_even_when_split_across_chunks() {
        // A valid three-byte sequence split across chunks is fine...
        let mut parser = Parser::new(1024);
        assert_eq!(parser.push(b"data: \xE2\x9C").unwrap(), vec![]);
        assert_eq!(parser.push(b"\x93\n\n").unwrap(), vec![event(None, "✓")], "a split sequence is joined");
        // ...a broken one is not.
        let mut parser = Parser::new(1024);
        let error = parser.push(b": ok\ndata: \xFF\n\n").unwrap_err();
        assert_eq!(error, SseError::InvalidUtf8 { line: 2 }, "the error names the line");
        assert_eq!(error.to_string(), "the event stream is not valid UTF-8 (line 2)");
        assert_eq!(parser.push(b"data: x\n\n"), Err(error.clone()), "the stream stays broken");
        assert_eq!(parser.finish(), Err(error), "finish reports it too");
    }

    #[test]
    fn an_event_larger_than_the_limit_is_an_error() {
        // What is held: the pending event's data and name, plus the line not yet ended (raw,
        // `data: ` included).
        let cases: &[(&str, &[u8], usize, bool)] = &[
            ("a line exactly at the limit", b"data: 0123456789\n\n", 16, true),
            ("a line one byte over", b"data: 0123456789A\n\n", 16, false),
            ("data so far plus the next line", b"data: 01234\ndata: 56789\n\n", 16, true),
            ("data so far plus the next line, over", b"data: 01234\ndata: 56789A\n\n", 16, false),
            ("data accumulates over many lines", b"data: 0123\ndata: 4567\ndata: 89AB\ndata: CDEF\n\n", 16, false),
            ("the name counts", b"event: 0123456789\ndata: 01234\n\n", 16, false),
            ("a long comment counts while it is read", b": 0123456789012345\ndata: x\n\n", 16, false),
            ("many small events each fit", b"data: 0123456789\n\ndata: 0123456789\n\n", 16, true),
            ("an unterminated line is held to the limit", b"data: 01234567890123456789", 16, false),
        ];
        for (what, stream, limit, fits) in cases {
            for piece in [1, 4, stream.len()] {
                let result = parse_in_pieces(stream, piece, *limit);
                assert_eq!(result.is_ok(), *fits, "{what} (limit {limit}, pieces of {piece}): {result:?}");
            }
        }
        let mut parser = Parser::new(4);
        let error = parser.push(b"data: 12345").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the event stream has an event larger than 4 bytes (around line 1); the gateway holds at most that much of one event"
        );
    }

    #[test]
    fn events_encode_as_stream_text() {
        let cases = [
            (event(Some("message_stop"), "{}"), "event: message_stop\ndata: {}\n\n"),
            (event(None, "a\nb"), "data: a\ndata: b\n\n"),
            (event(None, ""), "data: \n\n"),
            (event(None, " lead"), "data:  lead\n\n"),
        ];
        for (event, text) in cases {
            assert_eq!(event.encode(), text, "{event:?}");
            assert_eq!(
                parse_in_pieces(text.as_bytes(), 3, 1024).unwrap(),
                vec![event.clone()],
                "{event:?} parses back"
            );
        }
    }

    fn any_event() -> impl Strategy<Value = Event> {
        (proptest::option::of("[^\r\n]{1,12}"), "[^\r]{0,40}").prop_map(|(event, data)| Event { event, data })
    }

    proptest! {
        #[test]
        fn encoded_events_parse_back_whatever_the_chunking(
            events in proptest::collection::vec(any_event(), 0..8),
            cuts in proptest::collection::vec(0usize..64, 0..16),
            bom: bool,
        ) {
            let mut stream: Vec<u8> = if bom { BYTE_ORDER_MARK.to_vec() } else { Vec::new() };
            for event in &events {
                stream.extend_from_slice(event.encode().as_bytes());
            }
            let mut parser = Parser::new(1 << 20);
            let mut parsed = Vec::new();
            let mut rest = stream.as_slice();
            for cut in cuts {
                let (head, tail) = rest.split_at(cut.min(rest.len()));
                parsed.extend(parser.push(head).unwrap());
                rest = tail;
            }
            parsed.extend(parser.push(rest).unwrap());
            prop_assert_eq!(parser.finish().unwrap(), None, "every event ended with its blank line");
            prop_assert_eq!(parsed, events);
        }

        #[test]
        fn chunking_never_changes_the_outcome(
            stream in proptest::collection::vec(prop_oneof![
                Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), Just(b'd'), Just(b'a'), Just(b't'), Just(0xE2), any::<u8>()
            ], 0..80),
            piece in 1usize..8,
            limit in 0usize..40,
        ) {
            prop_assert_eq!(parse_in_pieces(&stream, piece, limit), parse_in_pieces(&stream, stream.len().max(1), limit));
        }
    }
}
