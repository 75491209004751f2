//! The few HTML pages Castellan serves: sign-in, passkey enrolment, consent and errors. No template
//! engine: every dynamic value goes through [`escape`].

use actix_web::HttpResponse;

/// HTML-escapes text for element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            other => escaped.push(other),
        }
    }
    escaped
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#1d2430}\
h1{font-size:1.4rem}button{font-size:1rem;padding:.5rem 1.2rem;margin:.3rem .3rem 0 0;cursor:pointer}\
.muted{color:#5b6678}.error{color:#a3222a}code{background:#eef1f5;padding:0 .2rem}";

/// A complete page. `body` must already be escaped where it carries dynamic text.
pub fn page(status: actix_web::http::StatusCode, title: &str, body: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>{title} · Castellan</title><style>{STYLE}</style></head><body>{body}</body></html>",
        title = escape(title)
    );
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .content_type("text/html; charset=utf-8")
        .body(html)
}

/// An error shown to the person in the browser, never redirected to a client.
pub fn error_page(status: u16, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    page(
        status,
        "Sign-in problem",
        &format!("<h1>This sign-in request cannot continue</h1><p class=\"error\">{}</p>", escape(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_dynamic_text_is_neutralised() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;",
            "escape"
        );
    }
}
