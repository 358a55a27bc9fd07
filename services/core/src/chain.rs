//! An error with its causes, for logs: "the database is unavailable:
//! error occurred while attempting to establish a TLS connection: invalid
//! peer certificate: UnknownIssuer". Clients get the error's own message
//! only; its causes may name hosts and internals.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, skipping a source
/// whose message the text so far already ends with.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            let message = cause.to_string();
            if !text.ends_with(&message) {
                text.push_str(": ");
                text.push_str(&message);
            }
            source = cause.source();
        }
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the database is unavailable")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("TLS failed: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn causes_follow_the_error_once_each() {
        let e = Outer(Middle(std::io::Error::other("UnknownIssuer")));
        assert_eq!(
            Chain(&e).to_string(),
            "the database is unavailable: TLS failed: UnknownIssuer"
        );
    }
}
