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

/// A document's id: a UUIDv7 made by the sender. Time-ordered (the first
/// 48 bits are milliseconds since the Unix epoch), 74 random bits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocId([u8; 16]);

/// Why a string is not a document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a document id (expected a UUID such as 0194d3c2-7a1e-7c3b-9f2a-1b2c3d4e5f60)"
)]
pub struct InvalidDocId(pub String);

impl DocId {
    /// A new id for `unix_ms`, with randomness from `random` (10 bytes).
    pub fn from_parts(unix_ms: u64, random: [u8; 10]) -> DocId {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
        b[6..].copy_from_slice(&random);
        b[6] = 0x70 | (b[6] & 0x0f); // version 7
        b[8] = 0x80 | (b[8] & 0x3f); // RFC 9562 variant
        DocId(b)
    }

    /// A new id for now, from the system's random source.
    pub fn generate() -> DocId {
        use ring::rand::{SecureRandom, SystemRandom};
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut r = [0u8; 10];
        // If the system RNG fails, the process cannot make keys either;
        // a zero suffix still gives a valid (if guessable) id.
        let _ = SystemRandom::new().fill(&mut r);
        DocId::from_parts(ms, r)
    }

    pub fn from_bytes(b: [u8; 16]) -> DocId {
        DocId(b)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Milliseconds since the epoch written into the id by its maker.
    pub fn unix_ms(&self) -> u64 {
        let mut b = [0u8; 8];
        b[2..].copy_from_slice(&self.0[..6]);
        u64::from_be_bytes(b)
    }

    pub fn parse(s: &str) -> Result<DocId, InvalidDocId> {
        let err = || InvalidDocId(s.to_owned());
        let hex: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
        if hex.len() != 32 || s.len() != 36 {
            return Err(err());
        }
        if [8usize, 13, 18, 23]
            .iter()
            .any(|&p| s.as_bytes().get(p) != Some(&b'-'))
        {
            return Err(err());
        }
        let mut b = [0u8; 16];
        for (i, byte) in b.iter_mut().enumerate() {
            let pair = std::str::from_utf8(&hex[2 * i..2 * i + 2]).map_err(|_| err())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| err())?;
        }
        Ok(DocId(b))
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocId({self})")
    }
}

impl FromStr for DocId {
    type Err = InvalidDocId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DocId::parse(s)
    }
}

impl Serialize for DocId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DocId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DocId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod doc_id_tests {
    use super::*;

    #[test]
    fn doc_ids_are_version_7_time_ordered_and_round_trip_as_text() {
        let a = DocId::from_parts(1_700_000_000_000, [0xff; 10]);
        let b = DocId::from_parts(1_700_000_000_001, [0; 10]);
        assert!(a < b, "later ids sort later");
        assert_eq!(a.unix_ms(), 1_700_000_000_000);
        let text = a.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "7");
        assert_eq!(DocId::parse(&text).unwrap(), a);
        let g = DocId::generate();
        assert_eq!(DocId::parse(&g.to_string()).unwrap(), g);
    }

    #[test]
    fn malformed_doc_ids_are_refused() {
        for bad in [
            "",
            "../etc/passwd",
            "0194d3c27a1e7c3b9f2a1b2c3d4e5f60",
            "0194d3c2-7a1e-7c3b-9f2a-1b2c3d4e5f6g",
            "0194d3c2-7a1e-7c3b-9f2a-1b2c3d4e5f600",
        ] {
            assert!(DocId::parse(bad).is_err(), "{bad}");
        }
    }
}
