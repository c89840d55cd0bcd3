//! Node ids: the stable, ASCII name of a unit, parsed once at the edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The id of a unit: `[a-z0-9][a-z0-9-]{1,62}`, e.g. `harbin-gov`.
///
/// It is what a certificate's CN and `gongwen:node/<id>` SAN carry, and what
/// folders, routing and receipts use. Display names (哈尔滨市人民政府) are
/// separate and never used to route.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(String);

/// Why a string is not a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidNodeId {
    #[error("{0:?} is not a valid node id: it must be 2 to 63 characters long")]
    Length(String),
    #[error(
        "{0:?} is not a valid node id: use lower-case letters a-z, digits and '-', starting with a letter or digit"
    )]
    Characters(String),
}

impl NodeId {
    pub const MIN_LEN: usize = 2;
    pub const MAX_LEN: usize = 63;

    pub fn parse(s: &str) -> Result<Self, InvalidNodeId> {
        if s.len() < Self::MIN_LEN || s.len() > Self::MAX_LEN {
            return Err(InvalidNodeId::Length(s.to_owned()));
        }
        let bytes = s.as_bytes();
        let first_ok = bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit();
        let rest_ok = bytes[1..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if !first_ok || !rest_ok {
            return Err(InvalidNodeId::Characters(s.to_owned()));
        }
        Ok(NodeId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeId {
    type Err = InvalidNodeId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeId::parse(s)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

impl AsRef<str> for NodeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NodeId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_ids_of_real_units() {
        for ok in [
            "harbin-gov",
            "prov-finance",
            "hub",
            "a1",
            "0x",
            &"a".repeat(63),
        ] {
            assert!(NodeId::parse(ok).is_ok(), "{ok} should be valid");
        }
    }

    #[test]
    fn refuses_ids_that_could_confuse_paths_or_names() {
        for bad in [
            "",
            "a",
            "-abc",
            "Harbin",
            "har bin",
            "../etc",
            "a/b",
            "a.b",
            "哈尔滨",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(NodeId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn error_message_names_the_rule() {
        let e = NodeId::parse("Bad").unwrap_err().to_string();
        assert!(e.contains("lower-case"), "{e}");
    }
}
