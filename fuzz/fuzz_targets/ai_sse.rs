//! `castellan_ai::sse::Parser` fed an arbitrary byte stream cut into arbitrary chunks, with a small
//! event limit.
//!
//! Checked, besides never panicking:
//! - where the stream is cut never changes the outcome (the events, or the error);
//! - no event larger than the limit comes out;
//! - the parsed events, encoded with `Event::encode` and parsed again, are the same events.
#![no_main]

use castellan_ai::sse::{Event, Parser, SseError};
use libfuzzer_sys::fuzz_target;

#[path = "common/sse_input.rs"]
mod sse_input;
use sse_input::{Input, chunks};

fn parse(chunks: &[&[u8]], limit: usize) -> Result<Vec<Event>, SseError> {
    let mut parser = Parser::new(limit);
    let mut events = Vec::new();
    for chunk in chunks {
        events.extend(parser.push(chunk)?);
    }
    events.extend(parser.finish()?);
    Ok(events)
}

fuzz_target!(|input: Input| {
    let limit = usize::from(input.max_event_bytes);
    let chunked = parse(&chunks(input.stream, &input.cuts), limit);
    assert_eq!(chunked, parse(&[input.stream], limit), "chunked differently from one piece");

    let Ok(events) = chunked else { return };
    for event in &events {
        assert!(event.data.len() <= limit, "an event of {} bytes passed the limit of {limit}", event.data.len());
    }
    let encoded: String = events.iter().map(Event::encode).collect();
    let again =
        parse(&[encoded.as_bytes()], usize::MAX).unwrap_or_else(|error| panic!("re-encoded events fail: {error}"));
    assert_eq!(again, events, "re-encoded events parse differently");
});
