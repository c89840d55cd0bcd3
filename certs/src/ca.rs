//! The certificate authority: every operation on a CA directory.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use gongwen_common::config::Sm2Files;
use gongwen_common::directory::{DirectoryEntry, UnitDirectory};
use gongwen_common::envelope::{EncryptionKey, KeyBinding, ReachKey};
use gongwen_common::fsutil::{create_private_dir, write_atomic, write_new, write_replacing};
use gongwen_common::gm::{DEFAULT_DISTID, Sm2Key, check_distid};
use gongwen_common::id::NodeId;
use gongwen_common::pki::{CertIdentity, Role, SAN_NODE_PREFIX, SAN_ROLE_PREFIX, serial_hex};
use gongwen_common::signed::Sm2Binding;
use gongwen_common::signed::{Signer, Statement, StatementKind, cert_public_key};
use gongwen_common::suite::Suite;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;

use crate::error::CaError;
use crate::registry::{Entry, ListRow, Registry, Status};

pub const CA_KEY: &str = "ca.key";
pub const CA_CERT: &str = "ca.crt";
pub const CRL_FILE: &str = "crl.pem";
pub const REGISTRY: &str = "registry.json";
/// The signed directory of enrolled units the hub loads (`[tls] directory`).
pub const DIRECTORY_FILE: &str = "directory.gwd";
/// Each unit's key binding, as enrolled: `bindings/<id>.binding`.
pub const BINDINGS_DIR: &str = "bindings";
/// Every certificate issued, `issued/<serial>.crt` (PEM): what renewal
/// re-certifies the key of.
pub const ISSUED_DIR: &str = "issued";
/// A GM CA's SM2 distinguishing id, when not the default (`init --sm2-distid`).
pub const SM2_DISTID: &str = "sm2-distid";

/// How long a CRL stays fresh unless told otherwise. Past it the hub
/// refuses every node, so renew it (`gongwen-certs crl`) well before.
pub const DEFAULT_CRL_DAYS: u32 = 30;

/// Certificates are dated a day into the past so that a unit whose clock
/// runs hours behind (a machine without time sync is often off by hours,
/// or by a time zone) can use a certificate issued just now, and sees the
/// hub's as valid too. Revocation goes by serial number, not by date, so
/// the earlier start lets nothing in that the CRL would keep out.
const BACKDATE: time::Duration = time::Duration::days(1);

/// The period a certificate is valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From a day ago until `days` from now.
    pub fn days_from(now: OffsetDateTime, days: u32) -> Validity {
        Validity {
            not_before: now - BACKDATE,
            not_after: now + time::Duration::days(i64::from(days)),
        }
    }
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub id: NodeId,
    pub role: Role,
    /// Display name, e.g. 哈尔滨市人民政府.
    pub name: Option<String>,
    /// Extra DNS names (hub only; the hub's id is always one).
    pub dns: Vec<String>,
    /// IP addresses (hub only).
    pub ips: Vec<IpAddr>,
    pub validity: Validity,
    /// Issue even though the id has a valid certificate.
    pub renew: bool,
}

/// A GM unit's SM2 keys and their binding (an encoded statement).
#[derive(Debug)]
pub struct Sm2Keys {
    pub sign: Sm2Key,
    pub enc: Sm2Key,
    pub binding: Vec<u8>,
}

/// A certificate with the private key generated for it.
#[derive(Debug)]
pub struct Issued {
    pub cert_pem: String,
    /// PKCS#8 PEM; write it with mode 0600.
    pub key_pem: String,
    pub serial: String,
}

/// An open CA directory.
#[derive(Debug)]
pub struct Ca {
    dir: PathBuf,
    key: KeyPair,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    registry: Registry,
    /// While true, the registry is saved at [`Ca::flush`] rather than
    /// after each change (see [`Ca::defer_saves`]).
    deferred: bool,
    /// Changes not saved yet.
    unsaved: bool,
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn random_serial() -> Result<SerialNumber, CaError> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| CaError::InvalidRequest("the system random generator failed".into()))?;
    // Positive and without a leading zero octet, so that the DER integer is
    // exactly these 16 bytes and every tool prints the same serial.
    b[0] = (b[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&b))
}

fn ia5(s: String) -> Result<rcgen::string::Ia5String, CaError> {
    s.clone()
        .try_into()
        .map_err(|_| CaError::InvalidRequest(format!("{s:?} is not an ASCII name")))
}

impl Ca {
    /// Create a CA in `dir`: key, self-signed certificate, empty CRL and
    /// registry. Refuses if any of those files exists.
    pub fn init(
        dir: &Path,
        name: &str,
        now: OffsetDateTime,
        days: u32,
        crl_days: u32,
    ) -> Result<Ca, CaError> {
        Ca::init_for(dir, name, now, days, crl_days, Suite::Standard)
    }

    /// A new CA whose deployment uses `suite` for documents and receipts
    /// (written into its certificate, see [`gongwen_common::suite`]).
    pub fn init_for(
        dir: &Path,
        name: &str,
        now: OffsetDateTime,
        days: u32,
        crl_days: u32,
        suite: Suite,
    ) -> Result<Ca, CaError> {
        for f in [CA_KEY, CA_CERT, REGISTRY, CRL_FILE] {
            if dir.join(f).exists() {
                return Err(CaError::AlreadyExists(dir.to_owned(), f));
            }
        }
        if name.trim().is_empty() {
            return Err(CaError::InvalidRequest(
                "the CA needs a name (--name)".into(),
            ));
        }
        create_private_dir(dir).map_err(CaError::io(dir))?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "gongwen");
        params.distinguished_name = dn;
        if let Some(uri) = suite.san_uri() {
            params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
        }
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial()?);
        let v = Validity::days_from(now, days);
        params.not_before = v.not_before;
        params.not_after = v.not_after;
        let cert = params.self_signed(&key)?;
        // The key is written first and with create_new: if two inits race,
        // one of them fails here before anything else is written.
        write_new(&dir.join(CA_KEY), key.serialize_pem().as_bytes(), 0o600)
            .map_err(CaError::io(dir.join(CA_KEY)))?;
        write_atomic(&dir.join(CA_CERT), cert.pem().as_bytes(), 0o644)
            .map_err(CaError::io(dir.join(CA_CERT)))?;
        let mut ca = Ca {
            dir: dir.to_owned(),
            key,
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            registry: Registry::default(),
            deferred: false,
            unsaved: false,
        };
        ca.write_crl(now, crl_days)?;
        Ok(ca)
    }

    /// The suite this CA's deployment uses.
    pub fn suite(&self) -> Result<Suite, CaError> {
        Suite::of_ca(&self.cert_der).map_err(|e| CaError::Corrupt {
            path: self.dir.join(CA_CERT),
            detail: e.to_string(),
        })
    }

    /// The SM2 distinguishing id the units of this (GM) CA sign with:
    /// `init --sm2-distid`, else the standard default.
    pub fn sm2_distid(&self) -> Result<String, CaError> {
        let path = self.dir.join(SM2_DISTID);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let distid = text.trim().to_owned();
                check_distid(&distid).map_err(|detail| CaError::Corrupt { path, detail })?;
                Ok(distid)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DEFAULT_DISTID.to_owned()),
            Err(e) => Err(CaError::io(&path)(e)),
        }
    }

    /// Record the SM2 distinguishing id of a GM deployment (at init).
    pub fn set_sm2_distid(&self, distid: &str) -> Result<(), CaError> {
        if self.suite()? != Suite::Gm {
            return Err(CaError::InvalidRequest(
                "an SM2 distinguishing id is for a GM CA (init --suite gm)".into(),
            ));
        }
        check_distid(distid).map_err(CaError::InvalidRequest)?;
        let path = self.dir.join(SM2_DISTID);
        write_atomic(&path, format!("{distid}\n").as_bytes(), 0o644).map_err(CaError::io(&path))
    }

    /// Open an existing CA directory.
    pub fn open(dir: &Path) -> Result<Ca, CaError> {
        let key_path = dir.join(CA_KEY);
        if !key_path.exists() {
            return Err(CaError::NotFound(dir.to_owned()));
        }
        let key_pem = std::fs::read_to_string(&key_path).map_err(CaError::io(&key_path))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| CaError::Corrupt {
            path: key_path.clone(),
            detail: e.to_string(),
        })?;
        let cert_path = dir.join(CA_CERT);
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(CaError::io(&cert_path))?;
        let cert_der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| CaError::Corrupt {
                path: cert_path.clone(),
                detail: e.to_string(),
            })?;
        let registry = Registry::load(&dir.join(REGISTRY))?;
        Ok(Ca {
            dir: dir.to_owned(),
            key,
            cert_pem,
            cert_der,
            registry,
            deferred: false,
            unsaved: false,
        })
    }

    /// Save the registry after each change no more until [`Ca::flush`]:
    /// enrolling 10,000 units used to write the whole registry 20,000
    /// times (93 s). Every certificate is still kept in `issued/` the
    /// moment it is made; `enroll` flushes every thousand units and at
    /// its end, so a crash loses the record of at most that many, which a
    /// new run issues again.
    pub fn defer_saves(&mut self) {
        self.deferred = true;
    }

    /// Save the registry if it changed since it was last saved, once the
    /// files written since are on disk (a registry never names a
    /// certificate whose files a crash lost).
    pub fn flush(&mut self) -> Result<(), CaError> {
        if self.deferred {
            gongwen_common::fsutil::sync_filesystem(&self.dir).map_err(CaError::io(&self.dir))?;
        }
        if self.unsaved {
            self.registry.save(&self.dir.join(REGISTRY))?;
            self.unsaved = false;
        }
        Ok(())
    }

    /// Write one of the CA's files (or a bundle's): at once durably, or,
    /// while saves are deferred, durably at the next [`Ca::flush`].
    pub fn write_file(&self, path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
        if self.deferred {
            write_replacing(path, bytes, mode)
        } else {
            write_atomic(path, bytes, mode)
        }
        .map_err(CaError::io(path))
    }

    fn save_registry(&mut self) -> Result<(), CaError> {
        self.unsaved = true;
        if self.deferred {
            return Ok(());
        }
        self.flush()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate in PEM form.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, CaError> {
        Ok(Issuer::from_ca_cert_der(&self.cert_der, &self.key)?)
    }

    fn refuse_duplicate(&self, id: &NodeId, now: OffsetDateTime) -> Result<(), CaError> {
        if let Some(e) = self
            .registry
            .of(id.as_str())
            .find(|e| e.status(now) == Status::Valid)
        {
            return Err(CaError::AlreadyIssued {
                id: e.id.clone(),
                serial: e.serial.clone(),
                not_after: gongwen_common::timefmt::rfc3339(e.not_after),
            });
        }
        Ok(())
    }

    /// A renewal without `--name` keeps the name the unit had.
    fn with_previous_name(&self, mut req: IssueRequest) -> IssueRequest {
        if req.name.is_none() {
            req.name = self
                .registry
                .of(req.id.as_str())
                .next_back()
                .and_then(|e| e.name.clone());
        }
        req
    }

    fn leaf_params(&self, req: &IssueRequest) -> Result<CertificateParams, CaError> {
        if req.role != Role::Hub && (!req.dns.is_empty() || !req.ips.is_empty()) {
            return Err(CaError::InvalidRequest(
                "--dns and --ip are only for the hub's certificate".into(),
            ));
        }
        if req.validity.not_after <= req.validity.not_before {
            return Err(CaError::InvalidRequest(
                "the certificate would expire before it becomes valid".into(),
            ));
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, req.id.as_str());
        if let Some(name) = &req.name {
            dn.push(DnType::OrganizationName, name.as_str());
        }
        dn.push(DnType::OrganizationalUnitName, req.role.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![
            SanType::URI(ia5(format!("{SAN_NODE_PREFIX}{}", req.id))?),
            SanType::URI(ia5(format!("{SAN_ROLE_PREFIX}{}", req.role))?),
        ];
        if req.role == Role::Hub {
            params
                .subject_alt_names
                .push(SanType::DnsName(ia5(req.id.to_string())?));
            for d in &req.dns {
                params
                    .subject_alt_names
                    .push(SanType::DnsName(ia5(d.clone())?));
            }
            for ip in &req.ips {
                params.subject_alt_names.push(SanType::IpAddress(*ip));
            }
            // Client auth too: a hub dials its federation peers with the
            // same certificate it serves its agents with.
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        } else {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        params.not_before = req.validity.not_before;
        params.not_after = req.validity.not_after;
        Ok(params)
    }

    fn record(
        &mut self,
        cert: &rcgen::Certificate,
        req: &IssueRequest,
        from_csr: bool,
    ) -> Result<String, CaError> {
        let ident = CertIdentity::from_der(cert.der())?;
        let serial = serial_hex(&ident.serial);
        let kept = self.dir.join(ISSUED_DIR);
        std::fs::create_dir_all(&kept).map_err(CaError::io(&kept))?;
        let path = kept.join(format!("{serial}.crt"));
        self.write_file(&path, cert.pem().as_bytes(), 0o644)?;
        // A renewal keeps the unit's groups.
        let groups = self
            .registry
            .of(req.id.as_str())
            .next_back()
            .map(|e| e.groups.clone())
            .unwrap_or_default();
        self.registry.push(Entry {
            id: req.id.to_string(),
            name: req.name.clone(),
            role: req.role.to_string(),
            serial: serial.clone(),
            not_before: ident.not_before,
            not_after: ident.not_after,
            from_csr,
            revoked_at: None,
            revocation_reason: None,
            groups,
        });
        self.save_registry()?;
        Ok(serial)
    }

    /// Issue a certificate with a fresh key (ECDSA P-256).
    pub fn issue(&mut self, req: &IssueRequest, now: OffsetDateTime) -> Result<Issued, CaError> {
        if !req.renew {
            self.refuse_duplicate(&req.id, now)?;
        }
        let req = &self.with_previous_name(req.clone());
        let params = self.leaf_params(req)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        let serial = self.record(&cert, req, false)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial,
        })
    }

    /// A certificate for a unit's web console (HTTPS on its LAN): server
    /// authentication only, for the host names and addresses clerks type,
    /// and none of the node's identity — it names no gongwen node or role,
    /// so its key, which sits beside a web server, can never connect to a
    /// hub as the unit. Browsers that trust this CA's ca.crt accept it.
    pub fn issue_console(
        &mut self,
        unit: &NodeId,
        name: Option<&str>,
        hosts: &[String],
        validity: Validity,
    ) -> Result<Issued, CaError> {
        if hosts.is_empty() {
            return Err(CaError::InvalidRequest(
                "a console certificate names the host names or addresses clerks use".into(),
            ));
        }
        if validity.not_after <= validity.not_before {
            return Err(CaError::InvalidRequest(
                "the certificate would expire before it becomes valid".into(),
            ));
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{unit} console"));
        if let Some(name) = name {
            dn.push(DnType::OrganizationName, name);
        }
        params.distinguished_name = dn;
        for h in hosts {
            let san = match h.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(ia5(h.clone())?),
            };
            params.subject_alt_names.push(san);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial()?;
        params.serial_number = Some(serial.clone());
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: serial_hex(&serial.to_bytes()),
        })
    }

    /// Sign a CSR made by `gongwen-agent keygen`. The id is the CSR's CN;
    /// everything else the CSR asks for is ignored — the CA decides.
    pub fn sign_csr(
        &mut self,
        csr_pem: &str,
        role: Role,
        name: Option<String>,
        validity: Validity,
        renew: bool,
        now: OffsetDateTime,
    ) -> Result<(NodeId, String), CaError> {
        if role == Role::Hub {
            return Err(CaError::InvalidRequest(
                "the hub's certificate is made with `issue --role hub`, not from a CSR".into(),
            ));
        }
        let der =
            rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
                .map_err(|e| CaError::BadCsr(format!("not a PEM certificate request ({e})")))?;
        // Checks the CSR's self-signature: whoever made it holds the key.
        let csr = CertificateSigningRequestParams::from_der(&der)
            .map_err(|e| CaError::BadCsr(e.to_string()))?;
        if csr.public_key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(CaError::BadCsr(
                "the key is not ECDSA P-256; make it with `gongwen-agent keygen`".into(),
            ));
        }
        let cn = match csr.params.distinguished_name.get(&DnType::CommonName) {
            Some(rcgen::DnValue::Utf8String(s)) => s.clone(),
            Some(rcgen::DnValue::PrintableString(s)) => s.as_str().to_owned(),
            _ => return Err(CaError::BadCsr("it names no node id (CN)".into())),
        };
        let id = NodeId::parse(&cn).map_err(|e| CaError::BadCsr(e.to_string()))?;
        let req = IssueRequest {
            id: id.clone(),
            role,
            name,
            dns: Vec::new(),
            ips: Vec::new(),
            validity,
            renew,
        };
        if !renew {
            self.refuse_duplicate(&id, now)?;
        }
        let req = self.with_previous_name(req);
        let params = self.leaf_params(&req)?;
        let cert = params.signed_by(&csr.public_key, &self.issuer()?)?;
        self.record(&cert, &req, true)?;
        Ok((id, cert.pem()))
    }

    /// Certify `id`'s current public key again for `days` (renewal without
    /// a visit): same id, role, name and groups, a new serial and validity.
    /// The key is the one in the unit's latest unrevoked certificate the
    /// CA kept, or in `current` (the unit's certificate, for units issued
    /// before the CA kept them). The earlier certificate stays valid until
    /// it expires, so the unit keeps working until it installs this one.
    pub fn renew(
        &mut self,
        id: &NodeId,
        current: Option<&[u8]>,
        validity: Validity,
    ) -> Result<Issued, CaError> {
        let entries: Vec<Entry> = self
            .registry
            .of(id.as_str())
            .filter(|e| e.revoked_at.is_none())
            .cloned()
            .collect();
        let Some(latest) = entries.last() else {
            return Err(if self.registry.of(id.as_str()).next().is_some() {
                CaError::InvalidRequest(format!(
                    "every certificate of {id} is revoked: a revoked key is not certified again; enroll the unit anew"
                ))
            } else {
                CaError::UnknownId(id.to_string())
            });
        };
        let role: Role = latest
            .role
            .parse()
            .map_err(|_| CaError::InvalidRequest(format!("{id} has an unknown role")))?;
        if role == Role::Hub {
            return Err(CaError::InvalidRequest(
                "the hub's certificate is renewed with `issue --role hub --renew` on the hub's machine"
                    .into(),
            ));
        }
        let cert_der = match current {
            Some(der) => der.to_vec(),
            None => self.kept_certificate(id, &entries).ok_or_else(|| {
                CaError::InvalidRequest(format!(
                    "the CA has not kept a certificate of {id} (issued before it kept them): pass its current certificate with --cert {id}.crt"
                ))
            })?,
        };
        let ident = CertIdentity::from_der(&cert_der)?;
        let serial = serial_hex(&ident.serial);
        if ident.id != *id || !entries.iter().any(|e| e.serial == serial) {
            return Err(CaError::InvalidRequest(format!(
                "that certificate ({}, serial {serial}) is not one of {id}'s unrevoked certificates from this CA",
                ident.id
            )));
        }
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der).map_err(|e| {
            CaError::InvalidRequest(format!("the current certificate cannot be read: {e}"))
        })?;
        let public = rcgen::SubjectPublicKeyInfo::from_der(parsed.public_key().raw)?;
        let req = IssueRequest {
            id: id.clone(),
            role,
            name: latest.name.clone(),
            dns: Vec::new(),
            ips: Vec::new(),
            validity,
            renew: true,
        };
        let params = self.leaf_params(&req)?;
        let cert = params.signed_by(&public, &self.issuer()?)?;
        let from_csr = latest.from_csr;
        let serial = self.record(&cert, &req, from_csr)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: String::new(),
            serial,
        })
    }

    /// The newest kept certificate among `entries` (issued/, or the one
    /// carried in the unit's enrolled key binding).
    fn kept_certificate(&self, id: &NodeId, entries: &[Entry]) -> Option<Vec<u8>> {
        for e in entries.iter().rev() {
            let path = self.dir.join(ISSUED_DIR).join(format!("{}.crt", e.serial));
            if let Ok(pem) = std::fs::read(&path)
                && let Ok(der) = CertificateDer::from_pem_slice(&pem)
            {
                return Some(der.to_vec());
            }
        }
        let binding =
            std::fs::read(self.dir.join(BINDINGS_DIR).join(format!("{id}.binding"))).ok()?;
        let st = ReachKey::statement_of(&binding)?;
        let who = CertIdentity::from_der(&st.cert).ok()?;
        let serial = serial_hex(&who.serial);
        entries
            .iter()
            .any(|e| e.serial == serial)
            .then_some(st.cert)
    }

    /// Unrevoked node certificates that expire within `within` of `now`
    /// (expired ones included): the ids `renew --expiring-within` renews.
    pub fn expiring(&self, now: OffsetDateTime, within: time::Duration) -> Vec<NodeId> {
        let mut latest: std::collections::BTreeMap<&str, &Entry> =
            std::collections::BTreeMap::new();
        for e in self.registry.all() {
            if e.revoked_at.is_none() && e.role != Role::Hub.as_str() {
                latest.insert(&e.id, e);
            }
        }
        latest
            .values()
            .filter(|e| e.not_after <= now + within)
            .filter_map(|e| NodeId::parse(&e.id).ok())
            .collect()
    }

    /// Record the groups of `id`'s latest certificate.
    pub fn set_groups(&mut self, id: &NodeId, groups: Vec<String>) -> Result<(), CaError> {
        let Some(e) = self.registry.last_of_mut(id.as_str()) else {
            return Err(CaError::UnknownId(id.to_string()));
        };
        if e.groups != groups {
            e.groups = groups;
            self.save_registry()?;
        }
        Ok(())
    }

    /// Make a unit's encryption key and its key binding, signed with the
    /// unit's certificate key (which the CA made, so holds for now): the
    /// unit can receive before its agent ever connects. Returns the X25519
    /// secret for the bundle and the binding; the binding is recorded.
    pub fn make_encryption_key(
        &self,
        id: &NodeId,
        issued: &Issued,
        now: OffsetDateTime,
    ) -> Result<(EncryptionKey, Vec<u8>), CaError> {
        let cert = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes())
            .map_err(|e| CaError::InvalidRequest(format!("the issued certificate: {e}")))?;
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes())
            .map_err(|e| CaError::InvalidRequest(format!("the issued key: {e}")))?;
        let signer = Signer::new(&key, cert)?;
        let enc = EncryptionKey::generate()
            .map_err(|e| CaError::InvalidRequest(format!("making an X25519 key: {e}")))?;
        let binding = KeyBinding {
            node: id.clone(),
            public: *enc.public(),
            created_ms: ms(now),
        }
        .sign(&signer)?
        .encode();
        self.record_binding(id, &binding)?;
        Ok((enc, binding))
    }

    /// A GM unit's SM2 signing and encryption keys (the dual-key model),
    /// bound to it by a statement signed with the key `issued` certifies.
    pub fn make_sm2_keys(
        &self,
        id: &NodeId,
        issued: &Issued,
        now: OffsetDateTime,
    ) -> Result<Sm2Keys, CaError> {
        let cert = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes())
            .map_err(|e| CaError::InvalidRequest(format!("the issued certificate: {e}")))?;
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes())
            .map_err(|e| CaError::InvalidRequest(format!("the issued key: {e}")))?;
        let signer = Signer::new(&key, cert)?;
        let (sign, enc) = (Sm2Key::generate(), Sm2Key::generate());
        let distid = self.sm2_distid()?;
        let binding =
            Sm2Binding::for_keys(id.clone(), &sign, &enc, &distid, ms(now)).sign(&signer)?;
        // What the signed directory lists for the unit: others can seal
        // documents to it before its agent first connects.
        self.record_binding(id, &binding)?;
        Ok(Sm2Keys { sign, enc, binding })
    }

    /// Write `keys` beside the unit's certificate: `ID.sm2-sign.key` and
    /// `ID.sm2-enc.key` (PKCS#8 PEM, 0600) and `ID.sm2.binding`.
    pub fn write_sm2_keys(&self, out: &Path, id: &NodeId, keys: &Sm2Keys) -> Result<(), CaError> {
        let bad = |e: gongwen_common::gm::GmError| CaError::InvalidRequest(e.to_string());
        let files = Sm2Files::beside(&out.join(format!("{id}.key")));
        for (path, key) in [(&files.sign_key, &keys.sign), (&files.enc_key, &keys.enc)] {
            self.write_file(path, key.to_pkcs8_pem().map_err(bad)?.as_bytes(), 0o600)?;
        }
        self.write_file(&files.binding, &keys.binding, 0o644)
    }

    /// The binding `gongwen-agent keygen` made beside a CSR, checked before
    /// anything is issued: of this CA's suite (a GM unit binds its SM2 keys,
    /// `ID.sm2.binding`; a standard one its X25519 key, `ID.binding`) and
    /// signed by `public`, the key the CSR (or certificate) is for.
    pub fn binding_request(&self, request: &[u8], public: &[u8]) -> Result<Statement, CaError> {
        let bad = |why: String| CaError::InvalidRequest(format!("the key binding: {why}"));
        let (kind, made_by) = match self.suite()? {
            Suite::Standard => (StatementKind::KeyBinding, "gongwen-agent keygen"),
            Suite::Gm => (
                StatementKind::Sm2KeyBinding,
                "gongwen-agent keygen --suite gm: give its .sm2.binding",
            ),
        };
        let st = Statement::decode(request, kind)
            .map_err(|e| bad(format!("{e} (make it with `{made_by}`)")))?;
        st.verify_with_key(public).map_err(|_| {
            bad("it is not signed by the key of this certificate request (give the binding made with this CSR)".into())
        })?;
        Ok(st)
    }

    /// The public key (SEC1 point) a PEM certificate request is for.
    pub fn csr_public_key(csr_pem: &str) -> Result<Vec<u8>, CaError> {
        let der =
            rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
                .map_err(|e| CaError::BadCsr(format!("not a PEM certificate request ({e})")))?;
        use x509_parser::prelude::FromDer;
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
                .map_err(|e| CaError::BadCsr(e.to_string()))?;
        Ok(csr
            .certification_request_info
            .subject_pki
            .subject_public_key
            .data
            .to_vec())
    }

    /// Complete the key binding `gongwen-agent keygen` made beside its CSR
    /// (signed with the unit's key, no certificate yet) with the
    /// certificate just issued for that key, and record it.
    pub fn complete_binding(
        &self,
        id: &NodeId,
        request: &[u8],
        cert_pem: &str,
    ) -> Result<Vec<u8>, CaError> {
        let bad = |why: String| CaError::InvalidRequest(format!("the key binding: {why}"));
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| bad(format!("the certificate: {e}")))?;
        let public = cert_public_key(&cert).map_err(|e| bad(e.to_string()))?;
        let st = self.binding_request(request, &public)?;
        let binding = st.with_cert(cert.to_vec()).encode();
        let b = ReachKey::verify(&binding, None, OffsetDateTime::UNIX_EPOCH)
            .map_err(|e| bad(e.to_string()))?;
        if &b.node != id {
            return Err(bad(format!("it is for {}, the request for {id}", b.node)));
        }
        self.record_binding(id, &binding)?;
        Ok(binding)
    }

    fn record_binding(&self, id: &NodeId, binding: &[u8]) -> Result<(), CaError> {
        let dir = self.dir.join(BINDINGS_DIR);
        std::fs::create_dir_all(&dir).map_err(CaError::io(&dir))?;
        let path = dir.join(format!("{id}.binding"));
        self.write_file(&path, binding, 0o644)
    }

    /// Sign and write `directory.gwd`: every unit (not hubs) with a valid
    /// certificate and a recorded key binding for it. Returns the units
    /// listed and the valid units left out for want of a binding (issued
    /// by hand, or from a CSR without one): those become known to the hub
    /// only when their agent connects.
    pub fn write_directory(&self, now: OffsetDateTime) -> Result<(usize, Vec<String>), CaError> {
        let mut dir = UnitDirectory {
            issued_ms: ms(now),
            entries: Vec::new(),
        };
        let mut without = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for e in self.registry.all().iter().rev() {
            if e.role == Role::Hub.as_str()
                || e.status(now) != Status::Valid
                || !seen.insert(e.id.clone())
            {
                continue;
            }
            let Ok(id) = NodeId::parse(&e.id) else {
                continue;
            };
            let path = self.dir.join(BINDINGS_DIR).join(format!("{id}.binding"));
            let binding = match std::fs::read(&path) {
                Ok(b) => b,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    without.push(e.id.clone());
                    continue;
                }
                Err(err) => return Err(CaError::io(&path)(err)),
            };
            // Only a binding whose certificate is one of the unit's valid
            // ones: after a revocation and a new key, the old binding would
            // send documents to a key the unit no longer trusts.
            let signed_by_valid = ReachKey::statement_of(&binding)
                .and_then(|st| CertIdentity::from_der(&st.cert).ok())
                .is_some_and(|who| {
                    let serial = serial_hex(&who.serial);
                    self.registry
                        .of(&e.id)
                        .any(|c| c.serial == serial && c.status(now) == Status::Valid)
                });
            if !signed_by_valid {
                without.push(e.id.clone());
                continue;
            }
            dir.entries.push(DirectoryEntry {
                id,
                name: e.name.clone().unwrap_or_default(),
                role: e.role.parse().unwrap_or(Role::Node),
                groups: e.groups.clone(),
                binding,
            });
        }
        dir.entries.sort_by(|a, b| a.id.cmp(&b.id));
        without.sort();
        let bytes = dir.sign(&self.key.serialize_der(), &self.cert_der)?;
        let path = self.dir.join(DIRECTORY_FILE);
        write_atomic(&path, &bytes, 0o644).map_err(CaError::io(&path))?;
        Ok((dir.entries.len(), without))
    }

    /// A federation statement for `domain`, whose CA certificate
    /// (PEM or DER) the peer's administrator handed over: signed by this
    /// CA, for the hub's `[[federation.peers]] statement`.
    pub fn federate(
        &self,
        domain: gongwen_common::federation::Domain,
        peer_ca: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, CaError> {
        use gongwen_common::federation::FederationStatement;
        use rustls_pki_types::pem::PemObject;
        let der = match rustls_pki_types::CertificateDer::from_pem_slice(peer_ca) {
            Ok(c) => c.to_vec(),
            Err(_) => peer_ca.to_vec(),
        };
        FederationStatement::check_peer_ca(&der, &self.cert_der)
            .map_err(|e| CaError::InvalidRequest(e.to_string()))?;
        let ours = self.suite()?;
        let theirs = Suite::of_ca(&der).map_err(|e| CaError::InvalidRequest(e.to_string()))?;
        if ours != theirs {
            return Err(CaError::InvalidRequest(format!(
                "the peer CA is for the {theirs} suite and this CA for {ours}: both ends of a federation link must use the same suite"
            )));
        }
        Ok(FederationStatement {
            issued_ms: ms(now),
            domain,
            peer_ca: der,
        }
        .sign(&self.key.serialize_der(), &self.cert_der)?)
    }

    /// Revoke every unrevoked certificate of `id` and write a fresh CRL.
    pub fn revoke(
        &mut self,
        id: &NodeId,
        reason: &str,
        now: OffsetDateTime,
        crl_days: u32,
    ) -> Result<Vec<String>, CaError> {
        if reason_from_name(reason).is_none() {
            return Err(CaError::InvalidRequest(format!(
                "unknown revocation reason {reason:?}; use one of: {}",
                REASONS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut any = false;
        let mut serials = Vec::new();
        for e in self
            .registry
            .all_mut()
            .iter_mut()
            .filter(|e| e.id == id.as_str())
        {
            any = true;
            if e.revoked_at.is_none() {
                e.revoked_at = Some(now);
                e.revocation_reason = Some(reason.to_owned());
                serials.push(e.serial.clone());
            }
        }
        if !any {
            return Err(CaError::UnknownId(id.to_string()));
        }
        if serials.is_empty() {
            return Err(CaError::AlreadyRevoked(id.to_string()));
        }
        self.write_crl(now, crl_days)?;
        Ok(serials)
    }

    /// Sign and write a new CRL listing every revoked certificate, fresh
    /// for `days` days. The registry is saved first, so a crash between the
    /// two leaves the revocation recorded and the next CRL write carries it.
    pub fn write_crl(&mut self, now: OffsetDateTime, days: u32) -> Result<(), CaError> {
        self.write_crl_until(now, now + time::Duration::days(i64::from(days.max(1))))
    }

    /// Like [`Ca::write_crl`] with an explicit next-update time (tests use
    /// it to make a stale CRL).
    pub fn write_crl_until(
        &mut self,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<(), CaError> {
        self.registry.crl_number += 1;
        self.unsaved = true;
        // Always now: the CRL's number must never be used twice.
        self.flush()?;
        let mut revoked = Vec::new();
        for e in self.registry.all() {
            if let Some(at) = e.revoked_at {
                let bytes = hex_decode(&e.serial).ok_or_else(|| CaError::Corrupt {
                    path: self.dir.join(REGISTRY),
                    detail: format!("serial {:?} of {} is not hex", e.serial, e.id),
                })?;
                revoked.push(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&bytes),
                    revocation_time: at,
                    reason_code: e.revocation_reason.as_deref().and_then(reason_from_name),
                    invalidity_date: None,
                });
            }
        }
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(self.registry.crl_number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer()?)?;
        let path = self.dir.join(CRL_FILE);
        write_atomic(&path, crl.pem()?.as_bytes(), 0o644).map_err(CaError::io(&path))
    }

    /// One row per certificate, in issue order.
    pub fn list(&self, now: OffsetDateTime) -> Vec<ListRow> {
        self.registry.all().iter().map(|e| e.row(now)).collect()
    }

    /// The serial of `id`'s valid certificate, if it has one now.
    pub fn valid_serial(&self, id: &NodeId, now: OffsetDateTime) -> Option<String> {
        self.registry
            .of(id.as_str())
            .rev()
            .find(|e| e.status(now) == Status::Valid)
            .map(|e| e.serial.clone())
    }

    /// Write `ID.crt`, `ID.key` (0600) and `ca.crt` into `out`.
    pub fn write_issued(&self, out: &Path, id: &NodeId, issued: &Issued) -> Result<(), CaError> {
        std::fs::create_dir_all(out).map_err(CaError::io(out))?;
        let key = out.join(format!("{id}.key"));
        self.write_file(&key, issued.key_pem.as_bytes(), 0o600)?;
        let crt = out.join(format!("{id}.crt"));
        self.write_file(&crt, issued.cert_pem.as_bytes(), 0o644)?;
        let ca = out.join(CA_CERT);
        self.write_file(&ca, self.cert_pem.as_bytes(), 0o644)
    }
}

/// The reasons `revoke --reason` takes, by their RFC 5280 names in kebab case.
pub const REASONS: &[(&str, RevocationReason)] = &[
    ("unspecified", RevocationReason::Unspecified),
    ("key-compromise", RevocationReason::KeyCompromise),
    ("affiliation-changed", RevocationReason::AffiliationChanged),
    ("superseded", RevocationReason::Superseded),
    (
        "cessation-of-operation",
        RevocationReason::CessationOfOperation,
    ),
    ("privilege-withdrawn", RevocationReason::PrivilegeWithdrawn),
];

pub fn reason_from_name(name: &str) -> Option<RevocationReason> {
    REASONS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
