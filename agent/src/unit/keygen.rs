//! `gongwen-agent keygen`: a key made on the unit's own machine and a
//! certificate signing request for the administrator. The key never leaves.

use std::path::{Path, PathBuf};

use gongwen_common::NodeId;
use gongwen_common::config::Sm2Files;
use gongwen_common::envelope::{EncryptionKey, KeyBinding};
use gongwen_common::fsutil::{write_atomic, write_new};
use gongwen_common::gm::{DEFAULT_DISTID, Sm2Key};
use gongwen_common::pki::SAN_NODE_PREFIX;
use gongwen_common::signed::{Sm2Binding, StatementKind, sign_with_key};
use gongwen_common::suite::Suite;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, SanType,
};

use crate::error::AgentError;

/// Files written by [`keygen`].
#[derive(Debug)]
pub struct KeygenOutput {
    pub key: PathBuf,
    pub csr: PathBuf,
    /// The X25519 document key (0600), for `[tls] encryption_key`.
    pub enc_key: PathBuf,
    /// Its binding, signed with the new key; the CA adds the certificate
    /// (`gongwen-certs sign --binding`).
    pub binding: PathBuf,
    /// In a GM deployment: the SM2 keys and their binding.
    pub sm2: Option<Sm2Files>,
}

/// Make `ID.key` (0600, refused if it exists) and `ID.csr` in `out`,
/// and the unit's document key `ID.enc.key` (0600) with `ID.binding`.
pub fn keygen(id: &NodeId, out: &Path) -> Result<KeygenOutput, AgentError> {
    keygen_for(id, out, Suite::Standard)
}

/// [`keygen`] for a deployment of `suite`: a GM unit also gets its SM2
/// signing and encryption keys and their binding.
pub fn keygen_for(id: &NodeId, out: &Path, suite: Suite) -> Result<KeygenOutput, AgentError> {
    keygen_with(id, out, suite, DEFAULT_DISTID)
}

/// [`keygen_for`] with the SM2 distinguishing id a GM deployment chose
/// (`gongwen-certs init --sm2-distid`), recorded in the binding.
pub fn keygen_with(
    id: &NodeId,
    out: &Path,
    suite: Suite,
    distid: &str,
) -> Result<KeygenOutput, AgentError> {
    gongwen_common::gm::check_distid(distid).map_err(AgentError::BadInput)?;
    std::fs::create_dir_all(out).map_err(|source| AgentError::Dir {
        path: out.to_owned(),
        source,
    })?;
    let key_path = out.join(format!("{id}.key"));
    let csr_path = out.join(format!("{id}.csr"));
    let enc_path = out.join(format!("{id}.enc.key"));
    let binding_path = out.join(format!("{id}.binding"));
    // Every private key this would write, checked before any is written:
    // nothing is left half made when one is already there.
    let sm2_files = Sm2Files::beside(&key_path);
    let mut keys = vec![&key_path, &enc_path];
    if suite == Suite::Gm {
        keys.extend([&sm2_files.sign_key, &sm2_files.enc_key]);
    }
    for path in keys {
        if path.exists() {
            return Err(AgentError::KeyExists { path: path.clone() });
        }
    }
    let key = write_key_and_csr(id, &key_path, &csr_path)?;
    let enc = EncryptionKey::generate().map_err(|e| AgentError::Damaged {
        path: enc_path.clone(),
        detail: e.to_string(),
    })?;
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let binding = KeyBinding {
        node: id.clone(),
        public: *enc.public(),
        created_ms: now_ms,
    }
    .sign_with_key(&key.serialize_der())?;
    write_new(&enc_path, &enc.secret_bytes(), 0o600).map_err(|source| AgentError::Write {
        path: enc_path.clone(),
        source,
    })?;
    write_atomic(&binding_path, &binding, 0o644).map_err(|source| AgentError::Write {
        path: binding_path.clone(),
        source,
    })?;
    let sm2 = match suite {
        Suite::Standard => None,
        Suite::Gm => Some(sm2_keys(
            id,
            sm2_files,
            &key.serialize_der(),
            now_ms,
            distid,
        )?),
    };
    Ok(KeygenOutput {
        key: key_path,
        csr: csr_path,
        enc_key: enc_path,
        binding: binding_path,
        sm2,
    })
}

/// A P-256 key and its certificate request naming `id`: the key written
/// only if none is there (0600), the request beside it.
fn write_key_and_csr(id: &NodeId, key_path: &Path, csr_path: &Path) -> Result<KeyPair, AgentError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, id.as_str());
    params.distinguished_name = dn;
    let uri = format!("{SAN_NODE_PREFIX}{id}")
        .try_into()
        .map_err(AgentError::Keygen)?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    let csr = params.serialize_request(&key)?;
    write_new(key_path, key.serialize_pem().as_bytes(), 0o600).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            AgentError::KeyExists {
                path: key_path.to_owned(),
            }
        } else {
            AgentError::Write {
                path: key_path.to_owned(),
                source,
            }
        }
    })?;
    write_atomic(csr_path, csr.pem()?.as_bytes(), 0o644).map_err(|source| AgentError::Write {
        path: csr_path.to_owned(),
        source,
    })?;
    Ok(key)
}

/// The SM2 keys of a GM unit, and their binding signed with `pkcs8` (the
/// new certificate key).
fn sm2_keys(
    id: &NodeId,
    files: Sm2Files,
    pkcs8: &[u8],
    now_ms: i64,
    distid: &str,
) -> Result<Sm2Files, AgentError> {
    let write = |path: &Path, bytes: &[u8], mode: u32| {
        let result = if mode == 0o600 {
            write_new(path, bytes, mode)
        } else {
            write_atomic(path, bytes, mode)
        };
        result.map_err(|source| AgentError::Write {
            path: path.to_owned(),
            source,
        })
    };
    let pem = |key: &Sm2Key, path: &Path| {
        key.to_pkcs8_pem().map_err(|e| AgentError::Damaged {
            path: path.to_owned(),
            detail: e.to_string(),
        })
    };
    let (sign, enc) = (Sm2Key::generate(), Sm2Key::generate());
    let body = Sm2Binding::for_keys(id.clone(), &sign, &enc, distid, now_ms).encode();
    let binding = sign_with_key(pkcs8, StatementKind::Sm2KeyBinding, body, Vec::new())?.encode();
    write(
        &files.sign_key,
        pem(&sign, &files.sign_key)?.as_bytes(),
        0o600,
    )?;
    write(&files.enc_key, pem(&enc, &files.enc_key)?.as_bytes(), 0o600)?;
    write(&files.binding, &binding, 0o644)?;
    Ok(files)
}
