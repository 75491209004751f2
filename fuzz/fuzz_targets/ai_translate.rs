//! `castellan_ai::translate` fed arbitrary bytes and a pair of wire formats: as a request body, as a
//! response body, and as a stream of events through a `StreamTranslator`.
//!
//! Checked, besides never panicking:
//! - whatever a translation of a request or response returns is JSON (same-format calls return the
//!   input unchanged and are not checked);
//! - a stream translator either emits events or refuses, and `finish` may always be called, twice.
#![no_main]

use arbitrary::Arbitrary;
use castellan_ai::format::WireFormat;
use castellan_ai::sse::Event;
use castellan_ai::translate::{self, RequestOptions, StreamTranslator};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    from: u8,
    to: u8,
    stream: bool,
    body: &'a [u8],
    /// Stream events: an optional `event:` name and the data.
    events: Vec<(Option<String>, String)>,
}

fn format(byte: u8) -> WireFormat {
    match byte % 4 {
        0 => WireFormat::Messages,
        1 => WireFormat::ChatCompletions,
        2 => WireFormat::Gemini,
        _ => WireFormat::Responses,
    }
}

fn assert_json(what: &str, bytes: &[u8]) {
    if let Err(error) = serde_json::from_slice::<serde_json::Value>(bytes) {
        panic!("{what} is not JSON: {error}");
    }
}

fuzz_target!(|input: Input| {
    let (from, to) = (format(input.from), format(input.to));
    let options = RequestOptions { upstream_model: "fuzz-model", stream: input.stream };
    if let Ok(translated) = translate::request(from, to, input.body, &options)
        && from != to
    {
        assert_json("a translated request", &translated);
    }
    if let Ok(translated) = translate::response(from, to, input.body, "fuzz-model")
        && from != to
    {
        assert_json("a translated response", &translated);
    }
    let mut stream = StreamTranslator::new(from, to, "fuzz-model");
    for (event, data) in input.events {
        let _ = stream.push(&Event { event, data });
    }
    let _ = stream.finish();
    let _ = stream.finish();
});
