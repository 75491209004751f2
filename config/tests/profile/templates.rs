//! Rendering templates with secrets and the allocated port.

use castellan_config::{RenderError, Template, TemplatePart};

fn header() -> Template {
    Template::from_parts([
        TemplatePart::Literal("Bearer ".into()),
        TemplatePart::Secret("token".into()),
        TemplatePart::Literal(" on ".into()),
        TemplatePart::Port,
        TemplatePart::Literal(" ${not a placeholder}".into()),
    ])
}

fn secrets(name: &str) -> Option<String> {
    match name {
        "token" => Some("s3cr3t".to_string()),
        "other" => Some("o".to_string()),
        _ => None,
    }
}

#[test]
fn render_substitutes_secrets_and_the_port() {
    let cases: Vec<(Template, Option<u16>, Result<String, RenderError>)> = vec![
        (header(), Some(8123), Ok("Bearer s3cr3t on 8123 ${not a placeholder}".into())),
        (header(), None, Err(RenderError::MissingPort)),
        (Template::literal("plain"), None, Ok("plain".into())),
        (Template::default(), None, Ok(String::new())),
        (
            Template::from_parts([TemplatePart::Secret("missing".into())]),
            Some(1),
            Err(RenderError::MissingSecret("missing".into())),
        ),
        (
            Template::from_parts([TemplatePart::Secret("other".into()), TemplatePart::Secret("missing".into())]),
            None,
            Err(RenderError::MissingSecret("missing".into())),
        ),
        (Template::from_parts([TemplatePart::Port]), Some(0), Ok("0".into())),
        (Template::from_parts([TemplatePart::Port]), Some(65535), Ok("65535".into())),
    ];
    for (template, port, expected) in cases {
        assert_eq!(template.render(&secrets, port), expected, "rendering {template} with port {port:?}");
    }
}

#[test]
fn a_render_error_names_the_secret_but_never_a_value() {
    let template = Template::from_parts([TemplatePart::Secret("token".into()), TemplatePart::Secret("absent".into())]);
    let error = template.render(&secrets, None).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("`absent`"), "names the missing secret: {message}");
    assert!(!message.contains("s3cr3t"), "never shows a value: {message}");
    assert_eq!(RenderError::MissingPort.to_string(), "`${PORT}` is used but no port was allocated", "port message");
}

#[test]
fn display_shows_placeholders_not_values() {
    assert_eq!(header().to_string(), "Bearer ${secret:token} on ${PORT} $${not a placeholder}", "display");
    assert!(!format!("{:?}", header()).contains("s3cr3t"), "debug holds no value either");
}

#[test]
fn template_queries() {
    let two = Template::from_parts([
        TemplatePart::Secret("b".into()),
        TemplatePart::Secret("a".into()),
        TemplatePart::Secret("b".into()),
    ]);
    assert_eq!(two.secret_names(), ["b", "a"], "each secret once, in order of first use");
    assert!(!two.is_literal(), "secrets are not literal");
    assert!(!two.uses_port(), "no port");
    assert_eq!(two.as_literal(), None, "not a literal");

    let literal = Template::literal("x");
    assert!(literal.is_literal() && literal.secret_names().is_empty(), "a literal template");
    assert_eq!(literal.as_literal(), Some("x"), "its text");
    assert!(header().uses_port(), "the header uses the port");
    assert_eq!(Template::default().as_literal(), Some(""), "the empty template is the empty literal");
}

#[test]
fn equal_texts_compare_equal_however_they_are_built() {
    let split = Template::from_parts([
        TemplatePart::Literal("ab".into()),
        TemplatePart::Literal(String::new()),
        TemplatePart::Literal("c".into()),
    ]);
    assert_eq!(split, Template::literal("abc"), "adjacent literals merge");
    assert_eq!(split.parts(), [TemplatePart::Literal("abc".into())], "one part");
    assert_eq!(Template::literal(""), Template::default(), "empty literals vanish");
}
