//! The command headers: `Idempotency-Key` and `If-Match`.

use axum::http::HeaderMap;
use ordercast_http::HttpError;

/// Longest accepted `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;

/// The `Idempotency-Key` header: 1–255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, HttpError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty()
        || key.len() > IDEMPOTENCY_KEY_MAX_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(HttpError::InvalidParameter(format!(
            "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_LEN} visible ASCII characters"
        )));
    }
    Ok(Some(key.to_owned()))
}

/// `If-Match: "<version>"` (quotes optional; weak tags are refused).
pub fn if_match(headers: &HeaderMap) -> Result<Option<i32>, HttpError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let unquoted = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    unquoted.parse().map(Some).map_err(|_| {
        HttpError::InvalidParameter("If-Match must be the order's version, e.g. \"3\"".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn if_match_takes_quoted_or_bare_versions() {
        assert_eq!(if_match(&headers("if-match", "\"3\"")).unwrap(), Some(3));
        assert_eq!(if_match(&headers("if-match", "7")).unwrap(), Some(7));
        assert!(if_match(&headers("if-match", "W/\"3\"")).is_err());
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        assert!(idempotency_key(&headers("idempotency-key", "abc-123")).is_ok());
        assert!(idempotency_key(&headers("idempotency-key", &"k".repeat(256))).is_err());
        assert!(idempotency_key(&headers("idempotency-key", "has space")).is_err());
    }
}
