//! What the SSE targets share: an input of a small event bound, chunk lengths and a byte stream,
//! and the stream cut by those lengths.

use arbitrary::Arbitrary;

#[derive(Arbitrary, Debug)]
pub struct Input<'a> {
    /// Small, so that inputs of a few hundred bytes reach the bound.
    pub max_event_bytes: u8,
    /// Chunk lengths, used in turn; no lengths means one chunk.
    pub cuts: Vec<u8>,
    pub stream: &'a [u8],
}

/// `stream` cut by `cuts` in turn (at most 4,097 chunks).
pub fn chunks<'a>(stream: &'a [u8], cuts: &[u8]) -> Vec<&'a [u8]> {
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
