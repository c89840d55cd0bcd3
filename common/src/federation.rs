//! Federation: each deployment is a *domain* with its own CA, and the
//! administrators of two domains trust each other's CA by a statement
//! their own CA signs, never by merging CAs.
//!
//! ```text
//! statement = statement(kind = federation, cert = our CA certificate)
//! body      = "GWT1" issued_ms:i64 domain:str peer_ca:bytes
//! ```
//!
//! `gongwen-certs federate` writes it; the hub loads the statements its
//! `[[federation.peers]]` name and admits a peer hub on ALPN
//! [`FEDERATION_ALPN`] only with a hub certificate from the CA the
//! statement for the domain it claims names. Because our CA signs it, the
//! hub can hand the statements to its agents, which check them with the
//! CA they already trust: no new root is configured anywhere but in the
//! CA folder.

use std::fmt;

use serde::{Serialize, Serializer};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::codec::{CodecError, Reader, Writer};
use crate::id::NodeId;
use crate::pki::PkiError;
use crate::signed::{SignedError, Statement, StatementKind, cert_public_key, sign_with_key};
use crate::suite::Suite;

/// ALPN of hub-to-hub links; `gongwen/1` stays the agents'.
pub const FEDERATION_ALPN: &[u8] = b"gongwen-fed/1";

/// Version of the hub-to-hub vocabulary carried in `PeerHello`.
pub const FEDERATION_VERSION: u16 = 1;

const MAGIC: &[u8; 4] = b"GWT1";
/// Largest CA certificate a statement carries.
const MAX_CA_CERT: usize = 16 * 1024;

/// The name of a deployment: `[a-z0-9][a-z0-9-]{1,62}`, as node ids
/// (`national`, `heilongjiang`, `jilin`). A unit elsewhere is
/// `unit@domain`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Domain(String);

/// Why a string is not a domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid domain name: use 2 to 63 lower-case letters a-z, digits and '-', starting with a letter or digit"
)]
pub struct InvalidDomain(pub String);

impl Domain {
    pub fn parse(s: &str) -> Result<Domain, InvalidDomain> {
        // The same alphabet as node ids: a domain is a folder name and a
        // part of an outbox folder's name (`outbox/gov@jilin/`).
        NodeId::parse(s)
            .map(|_| Domain(s.to_owned()))
            .map_err(|_| InvalidDomain(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Domain {
    type Err = InvalidDomain;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::parse(s)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Domain({})", self.0)
    }
}

impl Serialize for Domain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// An address written by a unit of `sender_domain` (bare: a unit of that
/// domain), as a unit of `here` names it (bare: a unit of `here`). Pure.
pub fn localize(address: &NodeId, sender_domain: &Domain, here: Option<&Domain>) -> NodeId {
    let absolute = match address.domain() {
        Some(_) => address.clone(),
        None => NodeId::remote(address, sender_domain),
    };
    absolute.seen_from(here)
}

/// Whether a hub certificate (DER) may dial a peer: it must carry the
/// client-auth purpose, which hub certificates issued before federation
/// lack (`gongwen-certs issue --role hub --renew` makes one that has it).
pub fn can_dial(hub_cert: &[u8]) -> bool {
    X509Certificate::from_der(hub_cert)
        .ok()
        .and_then(|(_, c)| {
            c.extended_key_usage()
                .ok()
                .flatten()
                .map(|e| e.value.client_auth)
        })
        .unwrap_or(false)
}

/// What our CA says about a peer domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederationStatement {
    /// When our CA signed it (ms since the epoch).
    pub issued_ms: i64,
    pub domain: Domain,
    /// The peer domain's CA certificate (DER), as its administrator handed
    /// it over.
    pub peer_ca: Vec<u8>,
}

/// Why a federation statement cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    #[error("not a federation statement: {0}")]
    Signed(#[from] SignedError),
    #[error("the federation statement is damaged: {0}")]
    Codec(#[from] CodecError),
    #[error("the federation statement names an invalid domain: {0}")]
    Domain(#[from] InvalidDomain),
    #[error(
        "the federation statement is not signed by this deployment's CA (it was made with another CA folder)"
    )]
    NotOurCa,
    #[error("the peer CA certificate in it cannot be read")]
    BadPeerCa,
    #[error("the peer certificate in it is not a CA certificate")]
    NotACa,
    #[error("the peer CA is this deployment's own CA: a domain does not federate with itself")]
    OwnCa,
    #[error("a chain of federation statements must hold 1 to {MAX_CHAIN}, not {0}")]
    ChainLength(usize),
    #[error("the chain of federation statements ends at {got}, not {wanted}")]
    ChainEnds { wanted: Domain, got: Domain },
    #[error("{0}'s CA is of the other crypto suite")]
    Suite(Domain),
}

impl FederationStatement {
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.peer_ca.len() + 96);
        let mut w = Writer(&mut out);
        w.raw(MAGIC);
        w.i64(self.issued_ms);
        w.str(self.domain.as_str());
        w.bytes(&self.peer_ca);
        out
    }

    fn parse_body(body: &[u8]) -> Result<FederationStatement, FederationError> {
        let mut r = Reader::new(body);
        if r.take(4)? != MAGIC {
            return Err(SignedError::BadMagic.into());
        }
        let issued_ms = r.i64()?;
        let domain = Domain::parse(&r.string()?)?;
        let peer_ca = r.bytes(MAX_CA_CERT)?.to_vec();
        r.finish()?;
        Ok(FederationStatement {
            issued_ms,
            domain,
            peer_ca,
        })
    }

    /// Check that `peer_ca` is a CA certificate a statement may name: it
    /// parses, it is a CA, and it is not `our_ca`.
    pub fn check_peer_ca(peer_ca: &[u8], our_ca: &[u8]) -> Result<(), FederationError> {
        let (_, cert) =
            X509Certificate::from_der(peer_ca).map_err(|_| FederationError::BadPeerCa)?;
        if !cert.is_ca() {
            return Err(FederationError::NotACa);
        }
        if peer_ca == our_ca {
            return Err(FederationError::OwnCa);
        }
        Ok(())
    }

    /// Sign with our CA's key (PKCS#8 DER); our CA certificate travels
    /// inside so a reader can see which CA it claims.
    pub fn sign(&self, ca_key_pkcs8: &[u8], ca_cert: &[u8]) -> Result<Vec<u8>, PkiError> {
        Ok(sign_with_key(
            ca_key_pkcs8,
            StatementKind::Federation,
            self.body(),
            ca_cert.to_vec(),
        )?
        .encode())
    }

    /// Read a statement file: signed by the key of `our_ca` (DER), naming
    /// a CA certificate other than ours.
    pub fn verify(bytes: &[u8], our_ca: &[u8]) -> Result<FederationStatement, FederationError> {
        let st = Statement::decode(bytes, StatementKind::Federation)?;
        let key = cert_public_key(our_ca)?;
        st.verify_with_key(&key)
            .map_err(|_| FederationError::NotOurCa)?;
        let statement = FederationStatement::parse_body(&st.body)?;
        FederationStatement::check_peer_ca(&statement.peer_ca, our_ca)?;
        Ok(statement)
    }

    /// The suite the peer's CA was made for.
    pub fn peer_suite(&self) -> Result<Suite, FederationError> {
        Suite::of_ca(&self.peer_ca).map_err(|_| FederationError::BadPeerCa)
    }
}

/// The most statements between our CA and a domain's: our peer, and up
/// to three hubs beyond (国务院 → 省 → 市 → 县 and back).
pub const MAX_CHAIN: usize = 4;

/// A chain of statements from one CA to a domain's: the first signed by
/// the CA the chain starts from, each next one by the CA the one before
/// names, the last naming the domain. A hub hands its peers its chain for
/// each domain it reaches; the peer puts its own statement for that hub in
/// front. Routes and trust then follow the same path: a domain reached
/// through a peer is trusted as that peer's CA vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain(pub Vec<Vec<u8>>);

impl Chain {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer(&mut out);
        w.u16(self.0.len().min(MAX_CHAIN) as u16);
        for st in self.0.iter().take(MAX_CHAIN) {
            w.bytes(st);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Chain, FederationError> {
        let mut r = Reader::new(bytes);
        let n = r.u16()? as usize;
        if n == 0 || n > MAX_CHAIN {
            return Err(FederationError::ChainLength(n));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(r.bytes(MAX_CA_CERT + 1024)?.to_vec());
        }
        r.finish()?;
        Ok(Chain(out))
    }

    /// Walk the chain from `start_ca` (DER): every statement signed by the
    /// CA before it, each CA of `suite`, the last for `domain`. Returns the
    /// domain's CA certificate.
    pub fn verify(
        &self,
        start_ca: &[u8],
        domain: &Domain,
        suite: Suite,
    ) -> Result<Vec<u8>, FederationError> {
        if self.0.is_empty() || self.0.len() > MAX_CHAIN {
            return Err(FederationError::ChainLength(self.0.len()));
        }
        let mut ca = start_ca.to_vec();
        let mut last = None;
        for bytes in &self.0 {
            let st = FederationStatement::verify(bytes, &ca)?;
            if st.peer_suite()? != suite {
                return Err(FederationError::Suite(st.domain.clone()));
            }
            ca = st.peer_ca.clone();
            last = Some(st.domain);
        }
        match last {
            Some(d) if &d == domain => Ok(ca),
            Some(d) => Err(FederationError::ChainEnds {
                wanted: domain.clone(),
                got: d,
            }),
            None => Err(FederationError::ChainLength(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(key: &rcgen::KeyPair, name: &str) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.self_signed(key).unwrap().der().to_vec()
    }

    #[test]
    fn a_chain_is_walked_from_our_ca_to_the_domain_it_names() {
        let keys: Vec<rcgen::KeyPair> = (0..3)
            .map(|_| rcgen::KeyPair::generate().unwrap())
            .collect();
        // Every CA bears the same name: the chain goes by signatures.
        let cas: Vec<Vec<u8>> = keys.iter().map(|k| ca(k, "公文交换 CA")).collect();
        let d = |s: &str| Domain::parse(s).unwrap();
        let vouch = |by: usize, domain: &str, of: usize| {
            FederationStatement {
                issued_ms: 1,
                domain: d(domain),
                peer_ca: cas[of].clone(),
            }
            .sign(&keys[by].serialize_der(), &cas[by])
            .unwrap()
        };
        // jilin (0) trusts national (1); national vouches for heilongjiang (2).
        let chain = Chain(vec![vouch(0, "national", 1), vouch(1, "heilongjiang", 2)]);
        let back = Chain::decode(&chain.encode()).unwrap();
        assert_eq!(
            back.verify(&cas[0], &d("heilongjiang"), Suite::Standard)
                .unwrap(),
            cas[2]
        );
        assert!(matches!(
            back.verify(&cas[0], &d("liaoning"), Suite::Standard),
            Err(FederationError::ChainEnds { .. })
        ));
        // Started from the wrong CA, or with a link missing.
        assert_eq!(
            back.verify(&cas[1], &d("heilongjiang"), Suite::Standard),
            Err(FederationError::NotOurCa)
        );
        let gap = Chain(vec![vouch(1, "heilongjiang", 2)]);
        assert_eq!(
            gap.verify(&cas[0], &d("heilongjiang"), Suite::Standard),
            Err(FederationError::NotOurCa)
        );
        assert!(Chain::decode(&Chain(vec![]).encode()).is_err());
    }

    #[test]
    fn addresses_are_localized_from_the_senders_domain_to_ours() {
        let d = |s: &str| Domain::parse(s).unwrap();
        let a = |s: &str| NodeId::parse_address(s).unwrap();
        let (hlj, jilin) = (d("heilongjiang"), d("jilin"));
        // harbin-gov of heilongjiang wrote these; jilin reads them.
        assert_eq!(
            localize(&a("harbin-gov"), &hlj, Some(&jilin)).as_str(),
            "harbin-gov@heilongjiang"
        );
        assert_eq!(
            localize(&a("changchun-gov@jilin"), &hlj, Some(&jilin)).as_str(),
            "changchun-gov"
        );
        assert_eq!(
            localize(&a("gov-office@national"), &hlj, Some(&jilin)).as_str(),
            "gov-office@national"
        );
    }

    #[test]
    fn domains_use_the_node_id_alphabet() {
        for ok in ["national", "heilongjiang", "jilin", "harbin-city"] {
            assert!(Domain::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "x", "Jilin", "ji lin", "jilin@x", "../x", "吉林"] {
            assert!(Domain::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_statement_is_read_back_only_with_the_ca_that_signed_it() {
        let ours = rcgen::KeyPair::generate().unwrap();
        let theirs = rcgen::KeyPair::generate().unwrap();
        let ca = |key: &rcgen::KeyPair, name: &str| {
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, name);
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            p.self_signed(key).unwrap().der().to_vec()
        };
        let our_ca = ca(&ours, "ours");
        let their_ca = ca(&theirs, "theirs");
        let st = FederationStatement {
            issued_ms: 1,
            domain: Domain::parse("jilin").unwrap(),
            peer_ca: their_ca.clone(),
        };
        let bytes = st.sign(&ours.serialize_der(), &our_ca).unwrap();
        assert_eq!(FederationStatement::verify(&bytes, &our_ca).unwrap(), st);
        // Signed by the peer's own CA: not ours.
        let forged = st.sign(&theirs.serialize_der(), &our_ca).unwrap();
        assert_eq!(
            FederationStatement::verify(&forged, &our_ca),
            Err(FederationError::NotOurCa)
        );
        // Naming our own CA.
        let own = FederationStatement {
            peer_ca: our_ca.clone(),
            ..st.clone()
        }
        .sign(&ours.serialize_der(), &our_ca)
        .unwrap();
        assert_eq!(
            FederationStatement::verify(&own, &our_ca),
            Err(FederationError::OwnCa)
        );
        // Every byte of the body matters (the carried certificate is not
        // signed: it only says which CA the statement claims).
        for n in [12, 20, 40, 200] {
            let mut bent = bytes.clone();
            bent[n] ^= 1;
            assert!(FederationStatement::verify(&bent, &our_ca).is_err(), "{n}");
        }
    }
}
