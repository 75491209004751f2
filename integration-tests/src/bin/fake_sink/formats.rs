//! The three intake formats as their services read them: each parser returns the events'
//! idempotency keys (`None` for an event without one), or the 400 the service would answer.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::{Value, json};

/// Which intake a request came to: decides the credential header, the parser and the answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intake {
    SplunkHec,
    Datadog,
    Otlp,
}

/// What a parser makes of a body.
pub type Parsed = Result<Vec<Option<String>>, Box<HttpResponse>>;

/// Datadog's limits per request.
const DATADOG_MAX_EVENTS: usize = 1000;
const DATADOG_MAX_BYTES: usize = 5 * 1024 * 1024;

impl Intake {
    pub fn name(self) -> &'static str {
        match self {
            Intake::SplunkHec => "splunk_hec",
            Intake::Datadog => "datadog",
            Intake::Otlp => "otlp",
        }
    }

    /// The credential this intake expects for `token`: (header, value).
    pub fn credential(self, token: &str) -> (&'static str, String) {
        match self {
            Intake::SplunkHec => ("authorization", format!("Splunk {token}")),
            Intake::Datadog => ("dd-api-key", token.to_string()),
            Intake::Otlp => ("authorization", format!("Bearer {token}")),
        }
    }

    /// The answer to a request without the right credential; `presented` is quoted in it only
    /// when the fake runs with `--echo-credential` (a careless service or proxy).
    pub fn unauthorized(self, missing: bool, presented: Option<&str>) -> HttpResponse {
        let echo = presented.map(|value| format!(" ({value})")).unwrap_or_default();
        match self {
            Intake::SplunkHec if missing => json_answer(401, json!({"text": "Token is required", "code": 2})),
            Intake::SplunkHec => json_answer(403, json!({"text": format!("Invalid token{echo}"), "code": 4})),
            Intake::Datadog => json_answer(403, json!({"errors": [format!("Forbidden{echo}")]})),
            Intake::Otlp => json_answer(401, json!({"code": 16, "message": format!("unauthenticated{echo}")})),
        }
    }

    /// The service's answer to an accepted request.
    pub fn accepted(self) -> HttpResponse {
        match self {
            Intake::SplunkHec => json_answer(200, json!({"text": "Success", "code": 0})),
            Intake::Datadog => json_answer(202, json!({})),
            Intake::Otlp => json_answer(200, json!({})),
        }
    }

    /// The service's answer with `status` (a failure the test asked for).
    pub fn failure(self, status: u16) -> HttpResponse {
        match (self, status) {
            (Intake::SplunkHec, 503) => json_answer(503, json!({"text": "Server is busy", "code": 9})),
            (Intake::SplunkHec, 400) => {
                json_answer(400, json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 0}))
            }
            (Intake::SplunkHec, _) => json_answer(status, json!({"text": "Internal server error", "code": 8})),
            (Intake::Datadog, _) => json_answer(status, json!({"errors": [format!("fake failure {status}")]})),
            (Intake::Otlp, _) => json_answer(status, json!({"code": 14, "message": format!("fake failure {status}")})),
        }
    }

    pub fn parse(self, content_type: &str, body: &[u8]) -> Parsed {
        match self {
            Intake::SplunkHec => parse_hec(body),
            Intake::Datadog => parse_datadog(content_type, body),
            Intake::Otlp => parse_otlp(content_type, body),
        }
    }
}

pub fn json_answer(status: u16, body: Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body.to_string())
}

/// HEC's event endpoint: JSON objects one after the other (whitespace between them, no array),
/// each with a non-blank `event`, a numeric or numeric-string `time` when present, string
/// metadata, and `fields` whose values are strings or arrays of strings.
fn parse_hec(body: &[u8]) -> Parsed {
    let invalid = |code: u16, text: &str, number: usize| {
        Box::new(json_answer(400, json!({"text": text, "code": code, "invalid-event-number": number})))
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Box::new(json_answer(400, json!({"text": "No data", "code": 5}))));
    }
    let mut keys = Vec::new();
    for (number, event) in serde_json::Deserializer::from_slice(body).into_iter::<Value>().enumerate() {
        let Ok(Value::Object(event)) = event else { return Err(invalid(6, "Invalid data format", number)) };
        match event.get("event") {
            None => return Err(invalid(12, "Event field is required", number)),
            Some(Value::Null) => return Err(invalid(13, "Event field cannot be blank", number)),
            Some(Value::String(text)) if text.is_empty() => {
                return Err(invalid(13, "Event field cannot be blank", number));
            }
            Some(_) => {}
        }
        let time_ok = match event.get("time") {
            None | Some(Value::Number(_)) => true,
            Some(Value::String(text)) => text.parse::<f64>().is_ok(),
            Some(_) => false,
        };
        let metadata_ok = ["host", "source", "sourcetype", "index"]
            .iter()
            .all(|name| event.get(*name).is_none_or(|value| value.is_string()));
        if !time_ok || !metadata_ok {
            return Err(invalid(6, "Invalid data format", number));
        }
        let fields = match event.get("fields") {
            None => None,
            Some(Value::Object(fields)) => Some(fields),
            Some(_) => return Err(invalid(15, "Error in handling indexed fields", number)),
        };
        let flat = fields.is_none_or(|fields| {
            fields.values().all(|value| match value {
                Value::String(_) => true,
                Value::Array(items) => items.iter().all(Value::is_string),
                _ => false,
            })
        });
        if !flat {
            return Err(invalid(15, "Error in handling indexed fields", number));
        }
        keys.push(fields.and_then(|fields| fields.get("idempotency_key")).and_then(Value::as_str).map(str::to_string));
    }
    Ok(keys)
}

/// Datadog's v2 intake: a JSON array of log objects (or one object), at most 1,000 and 5 MB.
fn parse_datadog(content_type: &str, body: &[u8]) -> Parsed {
    let bad = |message: &str| Box::new(json_answer(400, json!({"errors": [message]})));
    if body.len() > DATADOG_MAX_BYTES {
        return Err(Box::new(json_answer(413, json!({"errors": ["Request Entity Too Large"]}))));
    }
    if !content_type.starts_with("application/json") {
        return Err(bad("Content-Type must be application/json for a JSON payload"));
    }
    let logs = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(logs)) => logs,
        Ok(object @ Value::Object(_)) => vec![object],
        Ok(_) | Err(_) => return Err(bad("Bad Request: the payload is not a JSON array of logs")),
    };
    if logs.len() > DATADOG_MAX_EVENTS {
        return Err(bad("Bad Request: more than 1000 logs in one payload"));
    }
    let mut keys = Vec::new();
    for log in &logs {
        let Value::Object(log) = log else { return Err(bad("Bad Request: a log is not an object")) };
        let strings_ok = ["message", "ddsource", "ddtags", "hostname", "service", "status"]
            .iter()
            .all(|name| log.get(*name).is_none_or(|value| value.is_string()));
        if !strings_ok {
            return Err(bad("Bad Request: a reserved attribute is not a string"));
        }
        keys.push(log.get("idempotency_key").and_then(Value::as_str).map(str::to_string));
    }
    Ok(keys)
}

/// OTLP/HTTP JSON logs: an `ExportLogsServiceRequest` with lowerCamelCase names (unknown fields are
/// ignored, as the spec requires). Stricter than the spec in one way: 64-bit integers must be in
/// their decimal-string form, which is what the encoding prescribes for a sender.
fn parse_otlp(content_type: &str, body: &[u8]) -> Parsed {
    if !content_type.starts_with("application/json") {
        let message = format!("unsupported content type {content_type}");
        return Err(Box::new(json_answer(415, json!({"code": 3, "message": message}))));
    }
    let bad = |message: String| Err(Box::new(json_answer(400, json!({"code": 3, "message": message}))));
    let Ok(request) = serde_json::from_slice::<Value>(body) else { return bad("the body is not JSON".to_string()) };
    let Some(resource_logs) = request.get("resourceLogs").and_then(Value::as_array) else {
        return bad("resourceLogs is missing or not an array".to_string());
    };
    let mut keys = Vec::new();
    for resource in resource_logs {
        if let Some(attributes) = resource.pointer("/resource/attributes")
            && let Err(message) = check_attributes(attributes)
        {
            return bad(format!("resource: {message}"));
        }
        let Some(scope_logs) = resource.get("scopeLogs").and_then(Value::as_array) else {
            return bad("scopeLogs is missing or not an array".to_string());
        };
        for scope in scope_logs {
            let Some(records) = scope.get("logRecords").and_then(Value::as_array) else {
                return bad("logRecords is missing or not an array".to_string());
            };
            for (index, record) in records.iter().enumerate() {
                match check_record(record) {
                    Ok(key) => keys.push(key),
                    Err(message) => return bad(format!("logRecords[{index}]: {message}")),
                }
            }
        }
    }
    Ok(keys)
}

/// One `LogRecord`: its key, or what is wrong with it.
fn check_record(record: &Value) -> Result<Option<String>, String> {
    let Value::Object(fields) = record else { return Err("not an object".to_string()) };
    for name in ["timeUnixNano", "observedTimeUnixNano"] {
        match fields.get(name) {
            Some(Value::String(text)) if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) => {}
            Some(other) => return Err(format!("{name} is not an int64 in its decimal-string form: {other}")),
            None => return Err(format!("{name} is missing")),
        }
    }
    if let Some(number) = fields.get("severityNumber")
        && number.as_u64().is_none_or(|number| number > 24)
    {
        return Err(format!("severityNumber is not an enum integer: {number}"));
    }
    if let Some(trace_id) = fields.get("traceId")
        && !trace_id.as_str().is_some_and(|id| id.len() == 32 && id.bytes().all(|byte| byte.is_ascii_hexdigit()))
    {
        return Err(format!("traceId is not 16 bytes of hex: {trace_id}"));
    }
    if let Some(body) = fields.get("body") {
        check_any_value(body)?;
    }
    let attributes = fields.get("attributes").cloned().unwrap_or(Value::Array(Vec::new()));
    check_attributes(&attributes)?;
    let key = attributes.as_array().and_then(|attributes| {
        attributes
            .iter()
            .find(|attribute| attribute["key"] == "castellan.idempotency_key")
            .and_then(|attribute| attribute.pointer("/value/stringValue").and_then(Value::as_str).map(str::to_string))
    });
    Ok(key)
}

fn check_attributes(attributes: &Value) -> Result<(), String> {
    let Value::Array(attributes) = attributes else { return Err("attributes is not an array".to_string()) };
    for attribute in attributes {
        if !attribute.get("key").is_some_and(Value::is_string) {
            return Err(format!("an attribute without a string key: {attribute}"));
        }
        check_any_value(attribute.get("value").unwrap_or(&Value::Null))?;
    }
    Ok(())
}

/// An `AnyValue`: an object with one of its value fields, int64 as a decimal string.
fn check_any_value(value: &Value) -> Result<(), String> {
    let Value::Object(fields) = value else { return Err(format!("an AnyValue is not an object: {value}")) };
    let valid = match (fields.len(), fields.iter().next()) {
        (1, Some((name, inner))) => match name.as_str() {
            "stringValue" => inner.is_string(),
            "boolValue" => inner.is_boolean(),
            "doubleValue" => inner.is_number(),
            "intValue" => inner.as_str().is_some_and(|text| text.parse::<i64>().is_ok()),
            "bytesValue" => inner.is_string(),
            "arrayValue" | "kvlistValue" => inner.is_object(),
            _ => false,
        },
        (0, _) => true,
        _ => false,
    };
    if valid { Ok(()) } else { Err(format!("not a valid AnyValue: {value}")) }
}
