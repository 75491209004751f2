//! W3C Trace Context: reading a caller's `traceparent` and minting the one Castellan sends on.
//! HTTP-free, so the gateway and the hook runner use it without the HTTP surface.

use rand::RngCore;

/// A W3C Trace Context `traceparent` (version-trace_id-parent_id-flags), strictly: lowercase hex
/// of the right lengths, a known version (`ff` is invalid; a future version may carry more fields),
/// and neither id all zeros. Returns the trace id and the parent id.
pub fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let value = value.trim();
    let mut parts = value.split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |text: &str, len: usize| {
        text.len() == len && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|byte| byte != b'0')
        && parent.bytes().any(|byte| byte != b'0');
    valid.then_some((trace, parent))
}

/// The `traceparent` Castellan sends on: the same trace, a new span of its own, sampled.
pub fn outgoing_traceparent(trace_id: &str) -> String {
    let mut span = random_hex(8);
    while span.bytes().all(|byte| byte == b'0') {
        span = random_hex(8);
    }
    format!("00-{trace_id}-{span}-01")
}

pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    hex::encode(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_traceparents_are_followed() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let parent = "00f067aa0ba902b7";
        let cases = [
            (format!("00-{trace}-{parent}-01"), true, "the specification's example"),
            (format!("00-{trace}-{parent}-00"), true, "not sampled"),
            (format!("01-{trace}-{parent}-01-extra"), true, "a future version may carry more"),
            (format!("00-{trace}-{parent}-01-extra"), false, "version 00 has exactly four fields"),
            (format!("ff-{trace}-{parent}-01"), false, "version ff is invalid"),
            (format!("00-{}-{parent}-01", trace.to_uppercase()), false, "upper-case hex"),
            (format!("00-{}-{parent}-01", "0".repeat(32)), false, "an all-zero trace id"),
            (format!("00-{trace}-{}-01", "0".repeat(16)), false, "an all-zero parent id"),
            (format!("00-{}-{parent}-01", &trace[..31]), false, "a short trace id"),
            (format!("00-{trace}-{parent}"), false, "no flags"),
            ("garbage".to_string(), false, "not a traceparent"),
        ];
        for (value, valid, what) in cases {
            assert_eq!(parse_traceparent(&value).is_some(), valid, "{what}: {value}");
        }
        let outgoing = outgoing_traceparent(trace);
        assert_eq!(parse_traceparent(&outgoing).map(|(id, _)| id), Some(trace), "what we send is valid: {outgoing}");
    }
}
