//! The unit directory: the CA's signed list of enrolled units.
//!
//! A unit used to become known to the hub only when its agent first
//! connected and published its encryption key, so a notice to a unit whose
//! agent was not installed yet failed. Enrollment now makes each unit's
//! X25519 key and its key binding (signed by the unit's own certificate
//! key, so the hub still cannot substitute a key), and the CA lists them
//! here, signed with the CA key:
//!
//! ```text
//! directory = statement(kind = unit-directory, cert = the CA certificate)
//! body      = "GWD1" issued_ms:i64 count:u32 entry*
//! entry     = id:str name:str role:str groups:u16 str* binding:bytes
//! ```
//!
//! The hub loads the file like the CRL and answers lookups for units that
//! never connected from it; senders still verify every binding themselves.

use std::collections::BTreeMap;

use crate::codec::{CodecError, Reader, Writer};
use crate::envelope::ReachKey;
use crate::id::NodeId;
use crate::pki::{PkiError, Role};
use crate::signed::{SignedError, Statement, StatementKind, cert_public_key, sign_with_key};

const MAGIC: &[u8; 4] = b"GWD1";
/// Largest key binding in an entry (a certificate and a signature).
const MAX_BINDING: usize = 32 * 1024;
/// More units than a national hub has; bounds what a damaged file can ask
/// for.
pub const MAX_UNITS: usize = 500_000;
/// Largest directory body: a local file, not a frame, so not bound by the
/// wire's 1 MiB (an entry is about 730 bytes: 20,000 units are 15 MB).
pub const MAX_DIRECTORY_BODY: usize = 512 << 20;

/// One enrolled unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub id: NodeId,
    /// Display name, e.g. 哈尔滨市人民政府.
    pub name: String,
    pub role: Role,
    /// Groups the unit belongs to (as named in units.csv).
    pub groups: Vec<String>,
    /// The unit's signed key binding ([`KeyBinding`]), with its certificate.
    pub binding: Vec<u8>,
}

/// The directory's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitDirectory {
    /// When the CA wrote it (ms since the epoch).
    pub issued_ms: i64,
    pub entries: Vec<DirectoryEntry>,
}

/// Why a directory file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    #[error("not a unit directory: {0}")]
    Signed(#[from] SignedError),
    #[error("the unit directory is damaged: {0}")]
    Codec(#[from] CodecError),
    #[error("the unit directory is not signed by this deployment's CA")]
    NotOurCa,
    #[error("the unit directory lists {0} twice")]
    Duplicate(NodeId),
    #[error("the unit directory's entry for {id} has a key binding that {problem}")]
    BadBinding { id: NodeId, problem: String },
    #[error("the unit directory's entry for {id} has an unknown role {role:?}")]
    BadRole { id: NodeId, role: String },
}

impl DirectoryEntry {
    /// The display name, when the CA recorded one.
    pub fn display_name(&self) -> Option<String> {
        (!self.name.is_empty()).then(|| self.name.clone())
    }
}

impl UnitDirectory {
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer(&mut out);
        w.raw(MAGIC);
        w.i64(self.issued_ms);
        w.u32(self.entries.len().min(MAX_UNITS) as u32);
        for e in self.entries.iter().take(MAX_UNITS) {
            w.str(e.id.as_str());
            w.str(&e.name);
            w.str(e.role.as_str());
            w.u16(e.groups.len().min(u16::MAX as usize) as u16);
            for g in e.groups.iter().take(u16::MAX as usize) {
                w.str(g);
            }
            w.bytes(&e.binding);
        }
        out
    }

    fn parse_body(body: &[u8]) -> Result<UnitDirectory, DirectoryError> {
        let mut r = Reader::new(body);
        if r.take(4)? != MAGIC {
            return Err(SignedError::BadMagic.into());
        }
        let issued_ms = r.i64()?;
        let n = r.u32()? as usize;
        if n > MAX_UNITS {
            return Err(CodecError::TooLong {
                len: n,
                max: MAX_UNITS,
            }
            .into());
        }
        // An entry takes at least 16 bytes: the body bounds the count too.
        let mut entries: Vec<DirectoryEntry> = Vec::with_capacity(n.min(body.len() / 16));
        for _ in 0..n {
            let id = r.node_id()?;
            if !id.is_local() {
                return Err(CodecError::BadNodeId(id.to_string()).into());
            }
            let name = r.string()?;
            let role_text = r.string()?;
            let role = role_text
                .parse::<Role>()
                .map_err(|_| DirectoryError::BadRole {
                    id: id.clone(),
                    role: role_text,
                })?;
            let groups = (0..r.u16()?)
                .map(|_| r.string())
                .collect::<Result<Vec<_>, _>>()?;
            let binding = r.bytes(MAX_BINDING)?.to_vec();
            entries.push(DirectoryEntry {
                id,
                name,
                role,
                groups,
                binding,
            });
        }
        r.finish()?;
        Ok(UnitDirectory { issued_ms, entries })
    }

    /// Sign with the CA's key (PKCS#8 DER); the CA certificate travels
    /// inside so a reader can see which CA it claims.
    pub fn sign(&self, ca_key_pkcs8: &[u8], ca_cert: &[u8]) -> Result<Vec<u8>, PkiError> {
        Ok(sign_with_key(
            ca_key_pkcs8,
            StatementKind::UnitDirectory,
            self.body(),
            ca_cert.to_vec(),
        )?
        .encode())
    }

    /// Read a directory file: signed by the key of `ca_cert` (the
    /// deployment's CA certificate, DER), every entry's binding signed by
    /// the unit it names for the key it names, no unit twice. Whether each
    /// unit's certificate is still valid is the sender's check, against
    /// the CRL of the day.
    pub fn verify(bytes: &[u8], ca_cert: &[u8]) -> Result<UnitDirectory, DirectoryError> {
        let st = Statement::decode_within(bytes, StatementKind::UnitDirectory, MAX_DIRECTORY_BODY)?;
        let key = cert_public_key(ca_cert)?;
        st.verify_with_key(&key)
            .map_err(|_| DirectoryError::NotOurCa)?;
        let dir = UnitDirectory::parse_body(&st.body)?;
        let mut seen = std::collections::BTreeSet::new();
        for e in &dir.entries {
            if !seen.insert(e.id.clone()) {
                return Err(DirectoryError::Duplicate(e.id.clone()));
            }
            let b = ReachKey::verify(&e.binding, None, time::OffsetDateTime::UNIX_EPOCH).map_err(
                |err| DirectoryError::BadBinding {
                    id: e.id.clone(),
                    problem: format!("does not verify ({err})"),
                },
            )?;
            if b.node != e.id {
                return Err(DirectoryError::BadBinding {
                    id: e.id.clone(),
                    problem: format!("is for {}", b.node),
                });
            }
        }
        Ok(dir)
    }

    /// The entry of `id`: a scan (the hub keeps an index, `Enrollment`).
    pub fn get(&self, id: &NodeId) -> Option<&DirectoryEntry> {
        self.entries.iter().find(|e| &e.id == id)
    }

    /// Group name → members, as the entries name them.
    pub fn groups(&self) -> BTreeMap<String, Vec<NodeId>> {
        let mut out: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
        for e in &self.entries {
            for g in &e.groups {
                out.entry(g.clone()).or_default().push(e.id.clone());
            }
        }
        out
    }
}

/// Of two key bindings for one unit, the one made last: the unit may have
/// published a new key since it was enrolled (or been enrolled again).
/// A binding that cannot be read loses.
pub fn newer_binding<'a>(a: &'a [u8], b: &'a [u8]) -> &'a [u8] {
    let made = |bytes: &[u8]| {
        ReachKey::verify(bytes, None, time::OffsetDateTime::UNIX_EPOCH)
            .ok()
            .map(|r| r.created_ms)
    };
    if made(b) > made(a) { b } else { a }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::envelope::tests::TestPki;
    use crate::envelope::{EncryptionKey, KeyBinding};

    fn binding(pki: &TestPki, id: &str, created_ms: i64) -> Vec<u8> {
        KeyBinding {
            node: NodeId::parse(id).unwrap(),
            public: *EncryptionKey::generate().unwrap().public(),
            created_ms,
        }
        .sign(&pki.signer(id, Role::Node))
        .unwrap()
        .encode()
    }

    fn directory(pki: &TestPki) -> UnitDirectory {
        UnitDirectory {
            issued_ms: 1_700_000_000_000,
            entries: vec![
                DirectoryEntry {
                    id: NodeId::parse("harbin-gov").unwrap(),
                    name: "哈尔滨市人民政府".into(),
                    role: Role::Node,
                    groups: vec!["市级".into()],
                    binding: binding(pki, "harbin-gov", 1),
                },
                DirectoryEntry {
                    id: NodeId::parse("daqing-gov").unwrap(),
                    name: "大庆市人民政府".into(),
                    role: Role::Node,
                    groups: vec!["市级".into(), "油田".into()],
                    binding: binding(pki, "daqing-gov", 1),
                },
            ],
        }
    }

    #[test]
    fn a_directory_signed_by_the_ca_reads_back_whole() {
        let pki = TestPki::new();
        let dir = directory(&pki);
        let bytes = dir.sign(&pki.ca_key_pkcs8(), &pki.ca).unwrap();
        let back = UnitDirectory::verify(&bytes, &pki.ca).unwrap();
        assert_eq!(back, dir);
        assert_eq!(
            back.groups()["市级"],
            vec![
                NodeId::parse("harbin-gov").unwrap(),
                NodeId::parse("daqing-gov").unwrap()
            ]
        );
    }

    #[test]
    fn a_directory_from_another_ca_or_changed_is_refused() {
        let pki = TestPki::new();
        let other = TestPki::new();
        let dir = directory(&pki);
        let bytes = dir.sign(&other.ca_key_pkcs8(), &pki.ca).unwrap();
        assert_eq!(
            UnitDirectory::verify(&bytes, &pki.ca),
            Err(DirectoryError::NotOurCa)
        );
        let mut bytes = dir.sign(&pki.ca_key_pkcs8(), &pki.ca).unwrap();
        // Flip a byte of the first display name.
        let at = bytes.windows(3).position(|w| w == "哈".as_bytes()).unwrap();
        bytes[at + 2] ^= 1;
        assert!(UnitDirectory::verify(&bytes, &pki.ca).is_err());
    }

    #[test]
    fn an_entry_with_another_units_binding_is_refused() {
        let pki = TestPki::new();
        let mut dir = directory(&pki);
        // The CA (or whoever wrote the file) may not hand harbin-gov's
        // documents to a key daqing-gov made.
        dir.entries[0].binding = binding(&pki, "daqing-gov", 1);
        let bytes = dir.sign(&pki.ca_key_pkcs8(), &pki.ca).unwrap();
        assert!(matches!(
            UnitDirectory::verify(&bytes, &pki.ca),
            Err(DirectoryError::BadBinding { .. })
        ));
        let mut dir = directory(&pki);
        dir.entries[1].id = NodeId::parse("harbin-gov").unwrap();
        dir.entries[1].binding = binding(&pki, "harbin-gov", 2);
        let bytes = dir.sign(&pki.ca_key_pkcs8(), &pki.ca).unwrap();
        assert!(matches!(
            UnitDirectory::verify(&bytes, &pki.ca),
            Err(DirectoryError::Duplicate(_))
        ));
    }

    #[test]
    fn the_binding_made_last_wins() {
        let pki = TestPki::new();
        let old = binding(&pki, "harbin-gov", 10);
        let new = binding(&pki, "harbin-gov", 20);
        assert_eq!(newer_binding(&old, &new), new.as_slice());
        assert_eq!(newer_binding(&new, &old), new.as_slice());
        assert_eq!(newer_binding(b"junk", &old), old.as_slice());
        assert_eq!(newer_binding(&old, b"junk"), old.as_slice());
    }
}
