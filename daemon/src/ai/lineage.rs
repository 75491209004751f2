//! Which model request a tool use came from: when a model's answer relayed to a client asks for a
//! tool (an Anthropic `tool_use` block, which is what Claude Code reads), its id is remembered
//! with the request's trace id. The tool call that follows (its MCP `tools/call` names the tool use
//! in `_meta`, its hook payloads in `tool_use_id`) then joins the prompt's trace instead of a trace
//! of its own. Tool uses this daemon did not relay keep the id derived from the tool use
//! (`trace_ids`), as before; with several replicas, each knows the answers it relayed.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a tool use is expected to follow its answer: longer than any tool call.
const REMEMBERED_FOR: Duration = Duration::from_secs(3_600);
/// The most tool uses remembered; the oldest go first.
const MAX_REMEMBERED: usize = 100_000;
/// Ids longer than this are not a provider's.
const MAX_ID_BYTES: usize = 256;

#[derive(Default)]
struct Remembered {
    traces: HashMap<String, (String, Instant)>,
    order: VecDeque<String>,
}

/// Tool use id → the trace id of the model request whose answer asked for it.
#[derive(Default)]
pub struct ToolUseTraces {
    inner: Mutex<Remembered>,
}

impl ToolUseTraces {
    pub fn remember(&self, tool_use_id: &str, trace_id: &str, now: Instant) {
        if tool_use_id.is_empty() || tool_use_id.len() > MAX_ID_BYTES {
            return;
        }
        let mut inner = self.lock();
        while inner.order.len() >= MAX_REMEMBERED {
            if let Some(oldest) = inner.order.pop_front() {
                inner.traces.remove(&oldest);
            }
        }
        if inner.traces.insert(tool_use_id.to_string(), (trace_id.to_string(), now)).is_none() {
            inner.order.push_back(tool_use_id.to_string());
        }
    }

    /// The prompt's trace id of a tool use, if this daemon relayed the answer that asked for it.
    pub fn prompt_trace(&self, tool_use_id: &str, now: Instant) -> Option<String> {
        let inner = self.lock();
        let (trace, at) = inner.traces.get(tool_use_id)?;
        (now.saturating_duration_since(*at) < REMEMBERED_FOR).then(|| trace.clone())
    }

    /// Remembers every `tool_use` block of an Anthropic `Message` body.
    pub fn remember_message(&self, message: &Value, trace_id: &str, now: Instant) {
        let blocks = message.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for block in blocks {
            if block.get("type").and_then(Value::as_str) == Some("tool_use")
                && let Some(id) = block.get("id").and_then(Value::as_str)
            {
                self.remember(id, trace_id, now);
            }
        }
    }

    /// Remembers the tool use an Anthropic stream event starts (`content_block_start`).
    pub fn remember_event(&self, event: &castellan_ai::sse::Event, trace_id: &str, now: Instant) {
        if event.event.as_deref() != Some("content_block_start") || !event.data.contains("tool_use") {
            return;
        }
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else { return };
        let block = &data["content_block"];
        if block["type"] == "tool_use"
            && let Some(id) = block["id"].as_str()
        {
            self.remember(id, trace_id, now);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        // Each update leaves the map and the queue consistent: a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_tool_use_in_an_answer_or_a_stream_leads_back_to_its_prompts_trace() {
        let traces = ToolUseTraces::default();
        let now = Instant::now();
        let message = json!({"content": [{"type": "text", "text": "x"}, {"type": "tool_use", "id": "toolu_1", "name": "a", "input": {}}]});
        traces.remember_message(&message, "trace-a", now);
        let event = castellan_ai::sse::Event {
            event: Some("content_block_start".into()),
            data: json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "b", "input": {}}}).to_string(),
        };
        traces.remember_event(&event, "trace-b", now);
        assert_eq!(traces.prompt_trace("toolu_1", now).as_deref(), Some("trace-a"));
        assert_eq!(traces.prompt_trace("toolu_2", now).as_deref(), Some("trace-b"));
        assert_eq!(traces.prompt_trace("toolu_3", now), None, "a tool use this daemon never relayed");
        assert_eq!(traces.prompt_trace("toolu_1", now + REMEMBERED_FOR), None, "forgotten after an hour");
    }

    #[test]
    fn the_store_is_bounded_and_forgets_the_oldest_first() {
        let traces = ToolUseTraces::default();
        let now = Instant::now();
        for index in 0..MAX_REMEMBERED + 10 {
            traces.remember(&format!("toolu_{index}"), "t", now);
        }
        assert_eq!(traces.lock().traces.len(), MAX_REMEMBERED);
        assert_eq!(traces.prompt_trace("toolu_0", now), None, "the oldest went first");
        assert!(traces.prompt_trace(&format!("toolu_{}", MAX_REMEMBERED + 9), now).is_some());
    }
}
