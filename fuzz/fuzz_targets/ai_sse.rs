//! `castellan_ai::sse::Parser` fed an arbitrary byte stream cut into arbitrary chunks, with a small
//! event limit.
//!
//! Checked, besides never panicking:
//! - where the stream is cut never changes the outcome (the events, or the error);
//! - no event larger than the limit comes out;
//! - the parsed events, encoded with `Event::encode` and parsed again, are the same events.
#![no_main]

use arbitrary::Arbitrary;
use castellan_ai::sse::{Event, Parser, SseError};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// Small, so that inputs of a few hundred bytes reach the bound.
    max_event_bytes: u8,
    /// Chunk lengths, used in turn; no lengths means one chunk.
    cuts: Vec<u8>,
    stream: &'a [u8],
}

fn chunks<'a>(stream: &'a [u8], cuts: &[u8]) -> Vec<&'a [u8]> {
    if cuts.is_empty() {
        return vec![stream];
    }
    let mut out = Vec::new();
    let mut rest = stream;
    for cut in cuts.iter().cycle() {
        let (head, tail) = rest.split_at(usize::from(*cut).min(rest.len()));
        out.push(head);
        rest = tail;
        if rest.is_empty() || out.len() > 4096 {
            break;
        }
    }
    out.push(rest);
    out
}

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
