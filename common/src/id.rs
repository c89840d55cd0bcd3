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

    /// An address: a unit of this deployment (`harbin-gov`) or of another
    /// domain (`changchun-gov@jilin`, see [`crate::federation`]). Only
    /// where a recipient or sender is named; a certificate, a directory
    /// entry or a configured unit is always local ([`NodeId::parse`]).
    pub fn parse_address(s: &str) -> Result<Self, InvalidNodeId> {
        match s.split_once('@') {
            None => NodeId::parse(s),
            Some((unit, domain)) => {
                NodeId::parse(unit)?;
                crate::federation::Domain::parse(domain)
                    .map_err(|_| InvalidNodeId::Characters(s.to_owned()))?;
                Ok(NodeId(s.to_owned()))
            }
        }
    }

    /// The queue of everything waiting for `domain`'s units (documents to
    /// hand on, receipts and notices to pass back): `@domain`. A store key,
    /// never an address ([`NodeId::parse_address`] refuses it, so no peer
    /// can name it).
    pub fn relay_queue(domain: &crate::federation::Domain) -> NodeId {
        NodeId(format!("@{domain}"))
    }

    /// Where what waits for this address is queued: a local unit's own
    /// queue, a remote one's domain's ([`NodeId::relay_queue`]).
    pub fn queue(&self) -> std::borrow::Cow<'_, NodeId> {
        match self.domain() {
            Some(d) => std::borrow::Cow::Owned(NodeId::relay_queue(&d)),
            None => std::borrow::Cow::Borrowed(self),
        }
    }

    /// The address of `unit` in `domain`.
    pub fn remote(unit: &NodeId, domain: &crate::federation::Domain) -> NodeId {
        NodeId(format!("{}@{domain}", unit.unit()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A unit of this deployment (no `@domain`).
    pub fn is_local(&self) -> bool {
        !self.0.contains('@')
    }

    /// The unit's id without its domain.
    pub fn unit(&self) -> &str {
        self.0.split_once('@').map_or(self.0.as_str(), |(u, _)| u)
    }

    /// The domain of a remote address; `None` for a local unit.
    pub fn domain(&self) -> Option<crate::federation::Domain> {
        self.0
            .split_once('@')
            .and_then(|(_, d)| crate::federation::Domain::parse(d).ok())
    }

    /// This address as seen from `here`: `unit@here` becomes `unit`.
    pub fn seen_from(&self, here: Option<&crate::federation::Domain>) -> NodeId {
        match (self.0.split_once('@'), here) {
            (Some((unit, d)), Some(here)) if d == here.as_str() => NodeId(unit.to_owned()),
            _ => self.clone(),
        }
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
        NodeId::parse_address(&s).map_err(serde::de::Error::custom)
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
    fn an_address_names_a_unit_here_or_in_another_domain() {
        let here = NodeId::parse_address("harbin-gov").unwrap();
        assert!(here.is_local());
        assert_eq!(here.domain(), None);
        let there = NodeId::parse_address("changchun-gov@jilin").unwrap();
        assert!(!there.is_local());
        assert_eq!(there.unit(), "changchun-gov");
        assert_eq!(there.domain().unwrap().as_str(), "jilin");
        let jilin = crate::federation::Domain::parse("jilin").unwrap();
        assert_eq!(there.seen_from(Some(&jilin)).as_str(), "changchun-gov");
        assert_eq!(there.seen_from(None), there);
        // A unit's own id never has a domain.
        assert!(NodeId::parse("changchun-gov@jilin").is_err());
        // Remote units queue by domain; the queue's name is no address.
        assert_eq!(there.queue().as_str(), "@jilin");
        assert_eq!(here.queue().as_str(), "harbin-gov");
        assert!(NodeId::parse_address("@jilin").is_err());
        for bad in ["@jilin", "a@", "a@b@c", "x@Jilin", "changchun-gov@ji/lin"] {
            assert!(NodeId::parse_address(bad).is_err(), "{bad}");
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
