//! The MCP mapping of the governed chain's [`Outcome`]: a JSON-RPC message, and for a rate-limited
//! request the HTTP 429 the transport answers instead (interface.md: "Over a rate limit: HTTP 429
//! with `Retry-After`").

use std::time::Duration;

use castellan_schema::audit::ExecutionKind;
use serde_json::{Value, json};

use super::jsonrpc::{self, FORBIDDEN, INTERNAL_ERROR, INVALID_PARAMS, REQUEST_TIMEOUT};
use crate::governance::Outcome;
use crate::governance::rate_limit::Policy;

/// What the gateway hands the transport for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The JSON-RPC message for the client.
    pub message: Value,
    /// Set when the transport must answer HTTP 429 instead, with these headers.
    pub rate_limited: Option<(Policy, Duration)>,
    /// Members of the result object already serialized (and redacted), appended to what
    /// `message.result` holds when the body is written: a large listing served from a cache
    /// (the skills catalog) is not rebuilt as a tree per request.
    pub spliced_result: Option<std::sync::Arc<str>>,
}

impl Answer {
    pub fn message(message: Value) -> Self {
        Answer { message, rate_limited: None, spliced_result: None }
    }

    /// The body as sent: the message, with the spliced members in its result object.
    pub fn body(&self) -> Vec<u8> {
        let Some(members) = &self.spliced_result else {
            return serde_json::to_vec(&self.message).unwrap_or_default();
        };
        let mut envelope = self.message.clone();
        let result = envelope.as_object_mut().and_then(|fields| fields.remove("result")).unwrap_or_else(|| json!({}));
        let head = serde_json::to_vec(&envelope).unwrap_or_default();
        let small = serde_json::to_vec(&result).unwrap_or_default();
        let mut body = Vec::with_capacity(head.len() + small.len() + members.len() + 16);
        // `{...envelope` without its `}`, then `,"result":{...small` without its `}`.
        body.extend_from_slice(head.strip_suffix(b"}").unwrap_or(&head));
        if head.len() > 2 {
            body.push(b',');
        }
        body.extend_from_slice(b"\"result\":");
        body.extend_from_slice(small.strip_suffix(b"}").unwrap_or(&small));
        if small.len() > 2 && !members.is_empty() {
            body.push(b',');
        }
        body.extend_from_slice(members.as_bytes());
        body.extend_from_slice(b"}}");
        body
    }
}

/// MCP's code for a resource that does not exist.
const RESOURCE_NOT_FOUND: i64 = -32002;

/// The one place an [`Outcome`] becomes MCP. `kind` picks the code of an unknown name: MCP answers
/// an unknown resource with -32002 and an unknown tool or prompt with invalid params.
pub fn render(id: &Value, kind: ExecutionKind, outcome: Outcome) -> Answer {
    let error = |code: i64, message: &str| Answer::message(jsonrpc::error_message(id, code, message));
    match outcome {
        Outcome::Answered(result) | Outcome::Suspended(result) => Answer::message(jsonrpc::result_message(id, result)),
        Outcome::UpstreamError(error) => Answer::message(castellan_actors::jsonrpc::response(id, Err(error))),
        Outcome::Unknown(message) if kind == ExecutionKind::Resource => error(RESOURCE_NOT_FOUND, &message),
        Outcome::InvalidRequest(message) | Outcome::Unknown(message) => error(INVALID_PARAMS, &message),
        Outcome::Forbidden(message) => error(FORBIDDEN, &message),
        Outcome::Timeout(message) => error(REQUEST_TIMEOUT, &message),
        Outcome::Unavailable(message) | Outcome::Failed(message) | Outcome::AuditUnavailable(message) => {
            error(INTERNAL_ERROR, &message)
        }
        Outcome::RateLimited { policy, retry_after } => {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let limit = policy.limit.to_string();
            Answer {
                message: json!({"error": "rate limited", "limit": limit, "retry_after_seconds": seconds}),
                rate_limited: Some((policy, retry_after)),
                spliced_result: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spliced_body_is_the_message_with_the_members_in_its_result() {
        let mut answer = Answer::message(jsonrpc::result_message(&json!(3), json!({"resultType": "complete"})));
        answer.spliced_result =
            Some(std::sync::Arc::from(r#""skills":[{"uri":"skill://a/SKILL.md"}],"nextCursor":"x""#));
        let body: Value = serde_json::from_slice(&answer.body()).expect("valid JSON");
        assert_eq!(
            body,
            json!({"jsonrpc": "2.0", "id": 3, "result": {"resultType": "complete", "skills": [{"uri": "skill://a/SKILL.md"}], "nextCursor": "x"}})
        );
        let mut empty = Answer::message(jsonrpc::result_message(&json!(4), json!({})));
        empty.spliced_result = Some(std::sync::Arc::from(r#""skills":[]"#));
        let body: Value = serde_json::from_slice(&empty.body()).expect("valid JSON");
        assert_eq!(body["result"], json!({"skills": []}));
        assert_eq!(serde_json::from_slice::<Value>(&Answer::message(json!({"a": 1})).body()).unwrap(), json!({"a": 1}));
    }
    use crate::governance::rate_limit::Limit;

    #[test]
    fn every_outcome_has_its_json_rpc_form() {
        let id = json!(7);
        let cases = [
            (Outcome::Answered(json!({"content": []})), None, Some(json!({"content": []}))),
            (
                Outcome::Suspended(json!({"resultType": "input_required"})),
                None,
                Some(json!({"resultType": "input_required"})),
            ),
            (Outcome::UpstreamError(json!({"code": -32002, "message": "nope"})), Some(-32002), None),
            (Outcome::InvalidRequest("arguments must be an object".into()), Some(INVALID_PARAMS), None),
            (Outcome::Unknown("unknown tool: x".into()), Some(INVALID_PARAMS), None),
            (Outcome::Forbidden("forbidden: denied by rule 'r'".into()), Some(FORBIDDEN), None),
            (Outcome::Timeout("late".into()), Some(REQUEST_TIMEOUT), None),
            (Outcome::Unavailable("down".into()), Some(INTERNAL_ERROR), None),
            (Outcome::Failed("broke".into()), Some(INTERNAL_ERROR), None),
            (Outcome::AuditUnavailable("audit unavailable".into()), Some(INTERNAL_ERROR), None),
        ];
        for (outcome, code, result) in cases {
            let what = format!("{outcome:?}");
            let answer = render(&id, ExecutionKind::Tool, outcome);
            assert_eq!(answer.rate_limited, None, "{what}: not a 429");
            assert_eq!(answer.message["id"], id, "{what}: the id is the request's");
            assert_eq!(answer.message["jsonrpc"], "2.0", "{what}");
            assert_eq!(answer.message["error"]["code"].as_i64(), code, "{what}: error code");
            assert_eq!(answer.message.get("result").cloned(), result, "{what}: result");
        }
    }

    #[test]
    fn an_unknown_resource_is_minus_32002_and_an_unknown_prompt_invalid_params() {
        let resource = render(&json!(1), ExecutionKind::Resource, Outcome::Unknown("resource not found: x".into()));
        assert_eq!(resource.message["error"]["code"], RESOURCE_NOT_FOUND);
        let prompt = render(&json!(1), ExecutionKind::Prompt, Outcome::Unknown("unknown prompt: x".into()));
        assert_eq!(prompt.message["error"]["code"], INVALID_PARAMS);
    }

    #[test]
    fn forbidden_messages_keep_the_rule_they_name() {
        let answer = render(
            &json!(1),
            ExecutionKind::Tool,
            Outcome::Forbidden("forbidden: denied by rule 'rbac.rules[1]'".into()),
        );
        assert_eq!(answer.message["error"]["message"], "forbidden: denied by rule 'rbac.rules[1]'");
    }

    #[test]
    fn a_rate_limited_outcome_becomes_a_429_naming_its_limit() {
        let policy = Policy { limit: Limit::Tool("customers__get_customer".into()), burst: 3, window_seconds: 2 };
        let answer = render(
            &json!(1),
            ExecutionKind::Tool,
            Outcome::RateLimited { policy: policy.clone(), retry_after: Duration::from_millis(1200) },
        );
        assert_eq!(answer.rate_limited, Some((policy, Duration::from_millis(1200))));
        assert_eq!(answer.message["limit"], "tool customers__get_customer");
        assert_eq!(answer.message["retry_after_seconds"], 2, "rounded up to whole seconds");
    }
}
