//! `gongwen-agent keygen`: a key made on the unit's own machine and a
//! certificate signing request for the administrator. The key never leaves.

use std::path::{Path, PathBuf};

use gongwen_common::NodeId;
use gongwen_common::fsutil::{write_atomic, write_new};
use gongwen_common::pki::SAN_NODE_PREFIX;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, SanType,
};

use crate::error::AgentError;

/// Files written by [`keygen`].
#[derive(Debug)]
pub struct KeygenOutput {
    pub key: PathBuf,
    pub csr: PathBuf,
}

/// Make `ID.key` (0600, refused if it exists) and `ID.csr` in `out`.
pub fn keygen(id: &NodeId, out: &Path) -> Result<KeygenOutput, AgentError> {
    std::fs::create_dir_all(out).map_err(|source| AgentError::Dir {
        path: out.to_owned(),
        source,
    })?;
    let key_path = out.join(format!("{id}.key"));
    let csr_path = out.join(format!("{id}.csr"));
    if key_path.exists() {
        return Err(AgentError::KeyExists { path: key_path });
    }
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
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            AgentError::KeyExists {
                path: key_path.clone(),
            }
        } else {
            AgentError::Write {
                path: key_path.clone(),
                source,
            }
        }
    })?;
    write_atomic(&csr_path, csr.pem()?.as_bytes(), 0o644).map_err(|source| AgentError::Write {
        path: csr_path.clone(),
        source,
    })?;
    Ok(KeygenOutput {
        key: key_path,
        csr: csr_path,
    })
}
