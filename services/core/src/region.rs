//! Regions: a deployment's cells, and which of them a restaurant's rows may
//! reach (docs/multi-region.md).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A region's name, e.g. `eu-west`: 1–28 of `a-z`, `0-9` and `-`, starting
/// with a letter. Names go into SQL identifiers and literals of the
/// replication set-up, so nothing else is accepted; two of them fit in
/// PostgreSQL's 63-byte identifiers (`oc_<from>_to_<to>`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

/// The longest region name.
pub const MAX_LEN: usize = 28;

/// The region of a deployment that never named one.
pub const DEFAULT_REGION: &str = "local";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid region name {0:?}: 1 to 28 of a-z, 0-9 and '-', starting with a letter")]
pub struct InvalidRegion(pub String);

impl Region {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as part of an SQL identifier (`-` becomes `_`).
    pub fn ident(&self) -> String {
        self.0.replace('-', "_")
    }
}

impl Default for Region {
    /// [`DEFAULT_REGION`].
    fn default() -> Self {
        Region(DEFAULT_REGION.to_owned())
    }
}

impl TryFrom<String> for Region {
    type Error = InvalidRegion;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        let valid = (1..=MAX_LEN).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(Region(name))
        } else {
            Err(InvalidRegion(name))
        }
    }
}

impl FromStr for Region {
    type Err = InvalidRegion;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Region::try_from(name.to_owned())
    }
}

impl From<Region> for String {
    fn from(region: Region) -> String {
        region.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The regions other than its home where a restaurant's rows may be
/// stored: every region of the deployment, or only those listed (none:
/// the home region only).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Reach {
    #[default]
    Everywhere,
    Only(Vec<Region>),
}

impl Reach {
    /// Whether rows may be stored in `region` (a peer of the home region).
    pub fn includes(&self, region: &Region) -> bool {
        match self {
            Reach::Everywhere => true,
            Reach::Only(regions) => regions.contains(region),
        }
    }

    /// As stored: NULL for everywhere, else the list.
    pub fn to_column(&self) -> Option<Vec<String>> {
        match self {
            Reach::Everywhere => None,
            Reach::Only(regions) => Some(regions.iter().map(|r| r.0.clone()).collect()),
        }
    }

    /// From the stored column (names a database holds were validated when
    /// written; an invalid one is dropped rather than trusted).
    pub fn from_column(column: Option<Vec<String>>) -> Reach {
        match column {
            None => Reach::Everywhere,
            Some(names) => Reach::Only(names.into_iter().filter_map(|n| n.parse().ok()).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_are_lowercase_words_with_dashes() {
        for good in ["eu", "eu-west", "us-east-1", "a", &"a".repeat(28)] {
            assert_eq!(good.parse::<Region>().unwrap().as_str(), good);
        }
        for bad in [
            "",
            "EU",
            "1eu",
            "eu_west",
            "eu west",
            "eu'; drop",
            &"a".repeat(29),
        ] {
            assert!(bad.parse::<Region>().is_err(), "{bad:?} accepted");
        }
        assert_eq!("eu-west".parse::<Region>().unwrap().ident(), "eu_west");
    }

    #[test]
    fn reach_round_trips_through_its_column() {
        let eu: Region = "eu".parse().unwrap();
        let us: Region = "us".parse().unwrap();
        assert!(Reach::Everywhere.includes(&eu));
        let only_us = Reach::Only(vec![us.clone()]);
        assert!(only_us.includes(&us) && !only_us.includes(&eu));
        assert!(!Reach::Only(vec![]).includes(&us));
        for reach in [Reach::Everywhere, only_us, Reach::Only(vec![])] {
            assert_eq!(Reach::from_column(reach.to_column()), reach);
        }
    }
}
