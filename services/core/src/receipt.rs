//! Delivery receipts (DESIGN §8): what edges report having sent to screens.

use chrono::{DateTime, Utc};

use crate::{RestaurantId, Role, Seq};

/// A screen of `role` at `restaurant` was sent every event it may see up to
/// `seq`, by `at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub restaurant: RestaurantId,
    pub role: Role,
    pub seq: Seq,
    pub at: DateTime<Utc>,
}

impl Receipt {
    /// One receipt as a line of a receipts stream entry: `<restaurant> <role> <seq>`.
    pub fn line(&self) -> String {
        format!("{} {} {}", self.restaurant, self.role.as_str(), self.seq)
    }

    /// Parses [`Receipt::line`]; `None` for anything else.
    pub fn parse_line(line: &str, at: DateTime<Utc>) -> Option<Receipt> {
        let mut parts = line.split(' ');
        let restaurant = parts.next()?.parse().ok()?;
        let role = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Receipt {
            restaurant,
            role,
            seq,
            at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_survives_its_line_and_garbage_is_refused() {
        let at = Utc::now();
        let receipt = Receipt {
            restaurant: RestaurantId::new(),
            role: Role::Kitchen,
            seq: Seq(42),
            at,
        };
        assert_eq!(
            Receipt::parse_line(&receipt.line(), at),
            Some(receipt.clone())
        );
        for bad in [
            "",
            "x kitchen 1",
            &format!("{} chef 1", receipt.restaurant),
            &format!("{} 1", receipt.line()),
        ] {
            assert_eq!(Receipt::parse_line(bad, at), None, "{bad:?}");
        }
    }
}
