//! The key material a configuration names — certificate, private key, CA
//! certificate, CRL, data folder — loaded once at start and checked
//! against each other, so that each problem is reported once, naming the
//! configuration file, the key in it and what is wrong:
//!
//! ```text
//! configuration file hub.toml: key `tls.ca`: ca/harbin-gov.crt is not a CA
//!   certificate: it is the node certificate of harbin-gov
//! ```

use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::parse_x509_certificate;

use crate::config::ConfigError;
use crate::pki::{self, CertIdentity, Crl, PkiError};
use crate::signed::Signer;

/// A unit's or the hub's own TLS material, checked.
#[derive(Debug)]
pub struct OwnTls {
    /// The certificate (and any chain after it).
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The deployment's CA certificate.
    pub ca: CertificateDer<'static>,
    /// Who the certificate says its holder is.
    pub identity: CertIdentity,
    /// Signs with the key; the key belongs to the certificate.
    pub signer: Signer,
}

fn invalid(config: &Path, key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: config.to_owned(),
        key: key.to_owned(),
        problem: problem.into(),
    }
}

/// Load `cert` (key `tls.cert`), `key` (`tls.key`) and `ca` (`tls.ca`),
/// named by the configuration file `config`, and check that the CA file
/// holds a CA certificate, that the certificate was issued by it and names
/// a gongwen unit or hub, and that the key is the certificate's.
pub fn load_own_tls(
    config: &Path,
    cert: &Path,
    key: &Path,
    ca: &Path,
) -> Result<OwnTls, ConfigError> {
    let chain = pki::load_certs(cert).map_err(|e| invalid(config, "tls.cert", e.to_string()))?;
    let identity = CertIdentity::from_der(&chain[0])
        .map_err(|e| invalid(config, "tls.cert", format!("{}: {e}", cert.display())))?;
    let ca_der = pki::load_certs(ca)
        .map_err(|e| invalid(config, "tls.ca", e.to_string()))?
        .remove(0);
    check_is_ca(&ca_der).map_err(|why| {
        invalid(
            config,
            "tls.ca",
            format!("{} is not a CA certificate: {why}", ca.display()),
        )
    })?;
    if !issued_by(&chain[0], &ca_der) {
        return Err(invalid(
            config,
            "tls.cert",
            format!(
                "{} was not issued by the CA in {} (tls.ca)",
                cert.display(),
                ca.display()
            ),
        ));
    }
    let private =
        pki::load_private_key(key).map_err(|e| invalid(config, "tls.key", e.to_string()))?;
    let signer = Signer::new(&private, chain[0].clone()).map_err(|e| {
        let problem = match e {
            PkiError::KeyDoesNotMatchCertificate => format!(
                "{} is not the private key of the certificate {} (tls.cert)",
                key.display(),
                cert.display()
            ),
            other => format!("{}: {other}", key.display()),
        };
        invalid(config, "tls.key", problem)
    })?;
    Ok(OwnTls {
        chain,
        key: private,
        ca: ca_der,
        identity,
        signer,
    })
}

/// Load the CRL named by key `tls.crl` and check it against the CA.
pub fn load_crl(config: &Path, crl: &Path, ca: &CertificateDer<'_>) -> Result<Crl, ConfigError> {
    Crl::load(crl, ca).map_err(|e| {
        let problem = match e {
            PkiError::Read { .. } => e.to_string(),
            other => format!("{}: {other}", crl.display()),
        };
        invalid(config, "tls.crl", problem)
    })
}

/// Make sure the data folder named by `key` can be one: missing (it will be
/// made) or a folder, not a file.
pub fn check_data_dir(config: &Path, key: &str, dir: &Path) -> Result<(), ConfigError> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(invalid(
            config,
            key,
            format!("{} is a file, not a folder", dir.display()),
        )),
        _ => Ok(()),
    }
}

/// Why `der` is not a CA certificate, if it is not.
fn check_is_ca(der: &CertificateDer<'_>) -> Result<(), String> {
    let (_, cert) = parse_x509_certificate(der).map_err(|_| "it cannot be parsed".to_owned())?;
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if is_ca {
        return Ok(());
    }
    Err(match CertIdentity::from_der(der) {
        Ok(id) => format!("it is the {} certificate of {}", id.role, id.id),
        Err(_) => "it does not have the CA flag".into(),
    })
}

/// Whether `cert` carries a signature made with `ca`'s key.
fn issued_by(cert: &CertificateDer<'_>, ca: &CertificateDer<'_>) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) = (parse_x509_certificate(cert), parse_x509_certificate(ca))
    else {
        return false;
    };
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// An error and its causes on one line, each said once: a cause whose
/// words the message already carries (written into it with `{source}`) is
/// not repeated.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !out.contains(&said) {
            out.push_str(": ");
            out.push_str(&said);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot use data directory /x: {source}")]
    struct Outer {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let e = Outer {
            source: std::io::Error::from_raw_os_error(17),
        };
        let line = one_line(&e);
        assert_eq!(line.matches("File exists").count(), 1, "{line}");
    }
}
