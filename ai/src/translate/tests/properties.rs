//! Arbitrary text and tool inputs survive Anthropic -> OpenAI -> Anthropic, requests and responses.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{translate_request, translate_response};
use crate::format::WireFormat::{ChatCompletions, Messages};

/// JSON without floats (serde_json's float parsing may move a value by one unit in the last place,
/// which is not the translation's doing).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|number| json!(number)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn tool_input() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(any::<String>(), json_value(), 0..5).prop_map(|map| map.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn requests_survive_anthropic_openai_anthropic(
        system in any::<String>(),
        question in any::<String>(),
        answer in any::<String>(),
        result in any::<String>(),
        input in tool_input(),
        tool_name in "[a-zA-Z0-9_-]{1,64}",
    ) {
        let body = json!({
            "model": "upstream-model",
            "max_tokens": 100,
            "system": system,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": question}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": answer},
                    {"type": "tool_use", "id": "toolu_1", "name": tool_name, "input": input},
                ]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": result}]},
            ],
        });
        let openai = translate_request(Messages, ChatCompletions, &body, false).expect("to OpenAI");
        let back = translate_request(ChatCompletions, Messages, &openai, false).expect("back to Anthropic");
        // Empty text is not a part in OpenAI's message content: compare what is left.
        let mut expected = body.clone();
        if answer.is_empty() {
            expected["messages"][1]["content"].as_array_mut().expect("blocks").remove(0);
        }
        if question.is_empty() {
            expected["messages"][0]["content"] = json!([{"type": "text", "text": ""}]);
        }
        prop_assert_eq!(&back["messages"][1], &expected["messages"][1], "the assistant turn, via {}", openai);
        prop_assert_eq!(&back["messages"][2], &expected["messages"][2], "the tool result, via {}", openai);
        prop_assert_eq!(&back["messages"][0]["content"][0]["text"], &json!(question), "the question");
        prop_assert_eq!(&back["system"], &json!(system), "the system prompt");
    }

    #[test]
    fn responses_survive_anthropic_openai_anthropic(text in any::<String>(), input in tool_input()) {
        let answer = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "client-model",
            "content": [{"type": "text", "text": text}, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": input}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 3, "output_tokens": 4, "cache_creation_input_tokens": 1, "cache_read_input_tokens": 2},
        });
        let openai = translate_response(Messages, ChatCompletions, &answer).expect("to OpenAI");
        let back = translate_response(ChatCompletions, Messages, &openai).expect("back to Anthropic");
        let mut expected = answer.clone();
        expected["id"] = json!("msg_chatcmpl-msg_1");
        if text.is_empty() {
            expected["content"].as_array_mut().expect("blocks").remove(0);
        }
        prop_assert_eq!(back, expected, "via {}", openai);
    }
}
