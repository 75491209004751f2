//! `castellan_actors::upstream::sse::SseParser` fed an arbitrary byte stream cut into arbitrary chunks.
//!
//! Checked, besides never panicking:
//! - where a stream is cut into chunks does not change the events it yields;
//! - the size bound: `feed` fails exactly when an event grows past `max_event_bytes` (the unterminated
//!   line plus the data of the event being assembled after the chunk, or any event the chunk completed),
//!   so no event larger than the bound is ever returned and no more than the bound stays buffered.
#![no_main]

use castellan_actors::upstream::sse::{SseEvent, SseParser};
use libfuzzer_sys::fuzz_target;

#[path = "common/sse_input.rs"]
mod sse_input;
use sse_input::{Input, chunks};

/// The data of the event still being assembled after `fed`: what a blank line would dispatch now.
fn pending_data_len(fed: &[u8]) -> usize {
    let complete = fed.iter().rposition(|&byte| byte == b'\n').map_or(0, |last| last + 1);
    let mut parser = SseParser::new(usize::MAX);
    let _ = parser.feed(&fed[..complete]);
    match parser.feed(b"\n") {
        Ok(events) => events.last().map_or(0, |event| event.data.len()),
        Err(reason) => panic!("unbounded parser failed: {reason}"),
    }
}

fn unbounded(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut parser = SseParser::new(usize::MAX);
    chunks.iter().flat_map(|chunk| parser.feed(chunk).unwrap_or_else(|reason| panic!("unbounded: {reason}"))).collect()
}

fuzz_target!(|input: Input| {
    let limit = usize::from(input.max_event_bytes);
    let chunks = chunks(input.stream, &input.cuts);

    // Chunking never changes the events.
    let whole = unbounded(&[input.stream]);
    assert_eq!(unbounded(&chunks), whole, "chunked differently from one piece");

    // The bound, chunk by chunk, against the unbounded parse of the same chunks.
    let mut bounded = SseParser::new(limit);
    let mut reference = SseParser::new(usize::MAX);
    let mut fed = 0;
    for chunk in &chunks {
        fed += chunk.len();
        let expected = reference.feed(chunk).unwrap_or_else(|reason| panic!("unbounded: {reason}"));
        let so_far = &input.stream[..fed];
        let unterminated = so_far.len() - so_far.iter().rposition(|&byte| byte == b'\n').map_or(0, |last| last + 1);
        let held = unterminated + pending_data_len(so_far);
        let too_large = held > limit || expected.iter().any(|event| event.data.len() > limit);
        match bounded.feed(chunk) {
            Ok(events) => {
                assert!(!too_large, "no error although {held} bytes are held (limit {limit}) or an event exceeds it");
                assert_eq!(events, expected);
                for event in &events {
                    assert!(event.data.len() <= limit, "event of {} bytes, limit {limit}", event.data.len());
                }
            }
            Err(_) => {
                assert!(too_large, "error although {held} bytes are held and every event fits (limit {limit})");
                // The caller gives up on the stream at the first error.
                break;
            }
        }
    }
});
