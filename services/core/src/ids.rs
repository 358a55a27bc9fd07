//! Identifier newtypes. Each is parsed once at the boundary; an invalid value
//! cannot be constructed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered (UUIDv7) identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Lowercase hyphenated: the form stream keys are hashed from.
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }
    };
}

uuid_id!(
    /// A restaurant (one store of a chain).
    RestaurantId
);
uuid_id!(
    /// A restaurant chain; admins may be scoped to one.
    ChainId
);
uuid_id!(
    /// An order.
    OrderId
);
uuid_id!(
    /// One line of an order.
    ItemId
);
uuid_id!(
    /// A waiter request (call waiter, bill, water…).
    RequestId
);

/// Maximum length of an opaque label id ([`SessionId`], [`WaiterId`]).
pub const LABEL_MAX_LEN: usize = 64;

/// Why a label id was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    /// Empty or longer than [`LABEL_MAX_LEN`] bytes.
    #[error("must be 1 to {LABEL_MAX_LEN} characters")]
    Length,
    /// A character outside `A-Z a-z 0-9 - _ . :`.
    #[error("may only contain letters, digits, '-', '_', '.' and ':'")]
    Charset,
}

fn check_label(s: &str) -> Result<(), LabelError> {
    if s.is_empty() || s.len() > LABEL_MAX_LEN {
        return Err(LabelError::Length);
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(LabelError::Charset);
    }
    Ok(())
}

macro_rules! label_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(try_from = "String", into = "String")]
        #[schema(value_type = String, max_length = 64, pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = LabelError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                check_label(&s)?;
                Ok(Self(s))
            }
        }

        impl FromStr for $name {
            type Err = LabelError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::try_from(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

label_id!(
    /// A customer's table session (one QR-code visit), chosen by the client app.
    SessionId
);
label_id!(
    /// A waiter, as known to the restaurant's staff system.
    WaiterId
);

/// A restaurant's event sequence number: dense, starting at 1.
///
/// The same number is the Redis stream id (`<seq>-0`), the SSE `id:`, the
/// WebSocket and long-poll cursor, and the PostgreSQL key.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// The position before the first event: a cursor that replays everything.
    pub const ZERO: Seq = Seq(0);

    /// The next sequence number.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }

    /// As stored in PostgreSQL (`bigint`).
    pub fn as_i64(self) -> i64 {
        // Sequences start at 1 and grow by one per event; i64::MAX is unreachable.
        self.0 as i64
    }

    /// From PostgreSQL's `bigint`; negative values (never stored) clamp to zero.
    pub fn from_i64(v: i64) -> Seq {
        Seq(v.max(0) as u64)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Seq {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restaurant_ids_print_lowercase_hyphenated() {
        let id: RestaurantId = "6F1C0D2E-0000-4000-8000-00000000000A".parse().unwrap();
        assert_eq!(id.to_string(), "6f1c0d2e-0000-4000-8000-00000000000a");
    }

    #[test]
    fn labels_are_bounded_and_plain() {
        assert!("table-12:visit.3_a".parse::<SessionId>().is_ok());
        assert_eq!("".parse::<SessionId>(), Err(LabelError::Length));
        assert_eq!("x".repeat(65).parse::<WaiterId>(), Err(LabelError::Length));
        assert_eq!("a b".parse::<WaiterId>(), Err(LabelError::Charset));
        assert_eq!("é".parse::<WaiterId>(), Err(LabelError::Charset));
    }

    #[test]
    fn labels_are_validated_when_deserialized() {
        assert!(serde_json::from_str::<SessionId>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<SessionId>("\"no spaces\"").is_err());
    }
}
