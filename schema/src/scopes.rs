//! Scopes are stored as a JSON array of strings in a text column.

use crate::error::{DbError, DbResult};

pub(crate) fn encode(scopes: &[String]) -> DbResult<String> {
    serde_json::to_string(scopes).map_err(|error| DbError::Other(format!("cannot encode scopes: {error}")))
}

pub(crate) fn decode(stored: &str, owner: &str) -> DbResult<Vec<String>> {
    serde_json::from_str(stored)
        .map_err(|error| DbError::Other(format!("stored scopes of {owner} are not a JSON array of strings: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let scopes = vec!["user".to_owned(), "mcp:tools".to_owned()];
        let stored = encode(&scopes).expect("encode");
        assert_eq!(stored, r#"["user","mcp:tools"]"#);
        assert_eq!(decode(&stored, "user 1").expect("decode"), scopes);
        assert!(decode("user", "user 1").is_err(), "not JSON");
        assert!(decode("[1]", "user 1").is_err(), "not strings");
    }
}
