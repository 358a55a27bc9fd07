//! Bounds on request fields, collected into one `validation-failed` problem.

use ordercast_http::{FieldError, HttpError};

/// Collects every invalid field of a request.
#[derive(Default)]
pub struct Checks {
    errors: Vec<FieldError>,
}

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error for `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.errors.push(FieldError {
                field: field.into(),
                message: message.into(),
            });
        }
    }

    /// A required text of 1 to `max` characters.
    pub fn text(&mut self, field: impl Into<String>, value: &str, max: usize) {
        let n = value.chars().count();
        self.check(
            n >= 1 && n <= max && !value.chars().any(char::is_control),
            field,
            format!("must be 1 to {max} characters, without control characters"),
        );
    }

    /// An optional text of at most `max` characters.
    pub fn opt_text(&mut self, field: impl Into<String>, value: Option<&str>, max: usize) {
        if let Some(v) = value {
            self.text(field, v, max);
        }
    }

    /// An integer within `min..=max`.
    pub fn range(&mut self, field: impl Into<String>, value: i64, min: i64, max: i64) {
        self.check(
            (min..=max).contains(&value),
            field,
            format!("must be between {min} and {max}"),
        );
    }

    /// A list of `min..=max` entries.
    pub fn count(&mut self, field: impl Into<String>, len: usize, min: usize, max: usize) {
        self.check(
            (min..=max).contains(&len),
            field,
            format!("must have {min} to {max} entries"),
        );
    }

    /// Ok if nothing was recorded.
    pub fn finish(self) -> Result<(), HttpError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(HttpError::Validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_field_is_reported() {
        let mut c = Checks::new();
        c.text("name", "", 10);
        c.text("ok", "fine", 10);
        c.range("items[0].quantity", 0, 1, 999);
        c.opt_text("notes", Some(&"x".repeat(11)), 10);
        match c.finish() {
            Err(HttpError::Validation(errors)) => {
                let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(fields, ["name", "items[0].quantity", "notes"]);
            }
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let mut c = Checks::new();
        c.text("name", "ééééé", 5);
        assert!(c.finish().is_ok());
    }
}
