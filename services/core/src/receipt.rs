//! Delivery receipts (docs/architecture.md, "Delivery ledger"): what edges report having sent to screens.

use std::collections::HashMap;

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

/// The highest receipt per restaurant and role: a delivery mark only moves
/// forward, so a lower seq adds nothing.
#[derive(Debug, Default)]
pub struct Highest(HashMap<(RestaurantId, Role), (Seq, DateTime<Utc>)>);

impl Highest {
    /// Keeps `receipt` unless a receipt of its restaurant and role with a
    /// higher or equal seq is already here.
    pub fn add(&mut self, receipt: Receipt) {
        let mark = self
            .0
            .entry((receipt.restaurant, receipt.role))
            .or_insert((receipt.seq, receipt.at));
        if receipt.seq > mark.0 {
            *mark = (receipt.seq, receipt.at);
        }
    }

    /// One receipt per restaurant and role.
    pub fn into_receipts(self) -> impl Iterator<Item = Receipt> {
        self.0
            .into_iter()
            .map(|((restaurant, role), (seq, at))| Receipt {
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

    #[test]
    fn only_the_highest_receipt_of_a_restaurant_and_role_is_kept() {
        let (early, late) = (Utc::now(), Utc::now() + chrono::Duration::seconds(1));
        let restaurant = RestaurantId::new();
        let receipt = |role, seq, at| Receipt {
            restaurant,
            role,
            seq: Seq(seq),
            at,
        };
        let mut highest = Highest::default();
        highest.add(receipt(Role::Kitchen, 5, early));
        highest.add(receipt(Role::Kitchen, 3, late));
        highest.add(receipt(Role::Owner, 2, late));
        let mut kept: Vec<Receipt> = highest.into_receipts().collect();
        kept.sort_by_key(|r| r.seq);
        assert_eq!(
            kept,
            [
                receipt(Role::Owner, 2, late),
                receipt(Role::Kitchen, 5, early)
            ]
        );
    }
}
