//! Request extractors that answer bad input in go-game's envelope.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::Error;

/// A JSON request body. Malformed JSON or a missing or mistyped field gets 400102 with the
/// field's path named (`"page: invalid type: string \"x\", expected i64"`); an empty body reads
/// as `{}`, since go-game's clients send none to endpoints without parameters.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Bytes enforces the router's body limit.
        let body = Bytes::from_request(req, state).await.map_err(|e| Error::bad_param(format!("body: {e}")))?;
        parse(if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &body }).map(Json)
    }
}

/// Parses JSON, naming the failing field in the error. A NUL character (`\u0000`) anywhere is
/// refused: no field has a use for it, and PostgreSQL rejects it in text, which would turn bad
/// input into a database error.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    if body.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return Err(Error::bad_param("body: NUL characters are not accepted"));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // Broken JSON has no meaningful field path; a wrong value does.
        let broken = matches!(inner.classify(), serde_json::error::Category::Syntax | serde_json::error::Category::Eof);
        if broken || path == "." || path.is_empty() {
            Error::bad_param(format!("body: {inner}"))
        } else {
            Error::bad_param(format!("{path}: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Req {
        username: String,
        page: i64,
    }

    fn msg(body: &str) -> String {
        parse::<Req>(body.as_bytes()).map(|_| String::new()).unwrap_or_else(|e| e.public_msg().to_owned())
    }

    #[test]
    fn errors_name_the_field() {
        assert!(msg(r#"{"username":"a"}"#).contains("missing field `page`"));
        assert!(msg(r#"{"username":"a","page":"x"}"#).starts_with("page: invalid type"));
        assert!(msg(r#"{"username":1,"page":1}"#).starts_with("username: invalid type"));
        assert!(msg("{not json").starts_with("body:"));
        assert_eq!(msg(r#"{"username":"a","page":1}"#), "");
        assert!(msg(r#"{"username":"a\u0000b","page":1}"#).contains("NUL"));
    }
}
