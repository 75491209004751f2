//! The AI gateway's wire formats, with no HTTP and no clock: what the daemon's AI surface uses to
//! read, meter, translate and price model requests (docs/ai-gateway-notes/).
//!
//! - [`sse`]: server-sent events framing, incremental (bytes in as they arrive, events out).
//! - [`format`]: the four wire formats and what the gateway reads from a request body.
//! - [`usage`]: tokens from a response body or from stream events as they pass.
//! - [`translate`]: Anthropic Messages <-> OpenAI Chat <-> Gemini, requests, responses and streams.
//! - [`catalog`] and [`cost`]: the built-in prices and integer microdollars.

pub mod catalog;
pub mod cost;
pub mod format;
pub mod sse;
pub mod translate;
pub mod usage;
