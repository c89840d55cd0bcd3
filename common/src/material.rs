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

use crate::config::{ConfigError, Sm2Files};
use crate::gm::Sm2Key;
use crate::pki::{self, CertIdentity, Crl, PkiError};
use crate::signed::{Signer, Sm2Binding, Sm2Signer};

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

/// In a GM deployment, the SM2 keys a configuration names
/// (`tls.sm2_sign_key`, `tls.sm2_enc_key`, `tls.sm2_binding`), checked
/// against each other and against the certificate key of `signer`: the
/// same signer signing in the GM suite, and the key documents for this
/// unit are opened with.
pub fn load_sm2(
    config: &Path,
    files: &Sm2Files,
    signer: Signer,
) -> Result<(Signer, Sm2Key), ConfigError> {
    let read_key = |path: &Path, key: &str| -> Result<Sm2Key, ConfigError> {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            invalid(
                config,
                key,
                format!(
                    "{}: {e} (a GM deployment needs the unit's SM2 keys: gongwen-certs issue on a GM CA, or gongwen-agent keygen --suite gm, writes them beside its key)",
                    path.display()
                ),
            )
        })?;
        Sm2Key::from_pkcs8_pem(&pem).map_err(|e| {
            invalid(
                config,
                key,
                format!("{} is not an SM2 private key: {e}", path.display()),
            )
        })
    };
    let sign = read_key(&files.sign_key, "tls.sm2_sign_key")?;
    let enc = read_key(&files.enc_key, "tls.sm2_enc_key")?;
    let binding = std::fs::read(&files.binding).map_err(|e| {
        invalid(
            config,
            "tls.sm2_binding",
            format!("{}: {e}", files.binding.display()),
        )
    })?;
    let bound = Sm2Binding::verify(&binding, signer.cert(), signer.identity()).map_err(|e| {
        invalid(
            config,
            "tls.sm2_binding",
            format!(
                "{} does not bind SM2 keys to this unit's certificate: {e}",
                files.binding.display()
            ),
        )
    })?;
    if bound.enc_public != enc.public() {
        return Err(invalid(
            config,
            "tls.sm2_enc_key",
            format!(
                "{} is not the SM2 encryption key {} names",
                files.enc_key.display(),
                files.binding.display()
            ),
        ));
    }
    let cert = signer.cert().to_vec();
    let sm2 = Sm2Signer::new(sign, binding, &cert).map_err(|e| {
        invalid(
            config,
            "tls.sm2_sign_key",
            format!("{}: {e}", files.sign_key.display()),
        )
    })?;
    Ok((signer.with_sm2(sm2), enc))
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

/// How bad one finding of [`check_all`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The daemon would refuse to start or to serve with it.
    Problem,
    /// Works today; will not for long (a certificate or CRL running out).
    Warning,
}

/// One thing `check` found: the configuration key it is about and what,
/// in plain words.
/// For `check`: in a GM deployment (the CA's suite), whether the SM2 keys
/// are there and bound to the certificate; nothing to say otherwise, or
/// when the certificate or CA cannot be read (reported on their own).
pub fn check_sm2(config: &Path, named: &Named<'_>, sm2: &Sm2Files) -> Option<Finding> {
    let own = load_own_tls(config, named.cert, named.key, named.ca).ok()?;
    if crate::suite::Suite::of_ca(own.ca.as_ref()).ok()? != crate::suite::Suite::Gm {
        return None;
    }
    match load_sm2(config, sm2, own.signer) {
        Ok(_) => None,
        Err(ConfigError::Invalid { key, problem, .. }) => Some(Finding::problem(&key, problem)),
        Err(other) => Some(Finding::problem("tls", other.to_string())),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub key: String,
    pub text: String,
}

impl Finding {
    pub fn problem(key: &str, text: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Problem,
            key: key.to_owned(),
            text: text.into(),
        }
    }

    pub fn warning(key: &str, text: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            key: key.to_owned(),
            text: text.into(),
        }
    }
}

/// A certificate expiring within this is worth a warning.
pub const CERT_WARNING: time::Duration = time::Duration::days(30);
/// A CRL whose next update is within this is worth a warning.
pub const CRL_WARNING: time::Duration = time::Duration::days(7);

/// What [`check_all`] looks at: the files a configuration names.
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub ca: &'a Path,
    /// The hub's CRL (agents have none).
    pub crl: Option<&'a Path>,
}

/// Every problem with the key material, each found on its own (unlike
/// [`load_own_tls`], which stops at the first): unreadable or missing
/// files, a CA file that is not a CA, a certificate not from that CA, a
/// key that is not the certificate's, validity, and the CRL's signature,
/// freshness and whether it revokes the certificate. Returns the findings
/// and, when the certificate could be read, who it names.
pub fn check_all(
    files: Named<'_>,
    now: time::OffsetDateTime,
) -> (Vec<Finding>, Option<CertIdentity>) {
    let mut found = Vec::new();
    let ca = match pki::load_certs(files.ca) {
        Ok(mut c) => {
            let ca = c.remove(0);
            if let Err(why) = check_is_ca(&ca) {
                found.push(Finding::problem(
                    "tls.ca",
                    format!("{} is not a CA certificate: {why}", files.ca.display()),
                ));
            }
            Some(ca)
        }
        Err(e) => {
            found.push(Finding::problem("tls.ca", e.to_string()));
            None
        }
    };
    let cert = match pki::load_certs(files.cert) {
        Ok(mut c) => Some(c.remove(0)),
        Err(e) => {
            found.push(Finding::problem("tls.cert", e.to_string()));
            None
        }
    };
    let identity = cert.as_ref().and_then(|c| match CertIdentity::from_der(c) {
        Ok(id) => Some(id),
        Err(e) => {
            found.push(Finding::problem(
                "tls.cert",
                format!("{}: {e}", files.cert.display()),
            ));
            None
        }
    });
    if let Some(id) = &identity {
        let until = crate::timefmt::rfc3339(id.not_after);
        if now > id.not_after {
            found.push(Finding::problem(
                "tls.cert",
                format!(
                    "{} expired at {until}: ask for a new one (gongwen-certs issue --renew)",
                    files.cert.display()
                ),
            ));
        } else if now < id.not_before {
            found.push(Finding::problem(
                "tls.cert",
                format!(
                    "{} is not valid before {} (is this machine's clock right?)",
                    files.cert.display(),
                    crate::timefmt::rfc3339(id.not_before)
                ),
            ));
        } else if id.not_after - now < CERT_WARNING {
            found.push(Finding::warning(
                "tls.cert",
                format!(
                    "{} expires at {until}, in {} days: renew it before then",
                    files.cert.display(),
                    (id.not_after - now).whole_days()
                ),
            ));
        }
    }
    if let (Some(cert), Some(ca)) = (&cert, &ca)
        && !issued_by(cert, ca)
    {
        found.push(Finding::problem(
            "tls.cert",
            format!(
                "{} was not issued by the CA in {} (tls.ca)",
                files.cert.display(),
                files.ca.display()
            ),
        ));
    }
    match pki::load_private_key(files.key) {
        Err(e) => found.push(Finding::problem("tls.key", e.to_string())),
        Ok(key) => {
            if let Some(cert) = &cert
                && let Err(e) = Signer::new(&key, cert.clone())
            {
                found.push(Finding::problem(
                    "tls.key",
                    match e {
                        PkiError::KeyDoesNotMatchCertificate => format!(
                            "{} is not the private key of the certificate {} (tls.cert)",
                            files.key.display(),
                            files.cert.display()
                        ),
                        other => format!("{}: {other}", files.key.display()),
                    },
                ));
            }
        }
    }
    if let (Some(crl_path), Some(ca)) = (files.crl, &ca) {
        match Crl::load(crl_path, ca) {
            Err(e) => found.push(Finding::problem(
                "tls.crl",
                match e {
                    PkiError::Read { .. } => e.to_string(),
                    other => format!("{}: {other}", crl_path.display()),
                },
            )),
            Ok(crl) => {
                let next = crl
                    .next_update
                    .map(crate::timefmt::rfc3339)
                    .unwrap_or_default();
                if crl.is_stale(now) {
                    found.push(Finding::problem(
                        "tls.crl",
                        format!(
                            "{} went stale at {next}: every unit is refused until it is renewed (gongwen-certs crl)",
                            crl_path.display()
                        ),
                    ));
                } else if crl.next_update.is_some_and(|n| n - now < CRL_WARNING) {
                    found.push(Finding::warning(
                        "tls.crl",
                        format!(
                            "{} must be renewed by {next} (gongwen-certs crl)",
                            crl_path.display()
                        ),
                    ));
                }
                if let Some(id) = &identity
                    && crl.is_revoked(&id.serial)
                {
                    found.push(Finding::problem(
                        "tls.cert",
                        format!(
                            "{} is revoked by {}",
                            files.cert.display(),
                            crl_path.display()
                        ),
                    ));
                }
            }
        }
    }
    (found, identity)
}

/// Print findings one per line (`problem:` / `warning:`, the file and the
/// key) and say whether all is well (no problem; warnings allowed).
pub fn report(config: &Path, found: &[Finding]) -> bool {
    for f in found {
        let tag = match f.severity {
            Severity::Problem => "problem",
            Severity::Warning => "warning",
        };
        println!("{tag}: {}: {}: {}", config.display(), f.key, f.text);
    }
    let problems = found
        .iter()
        .filter(|f| f.severity == Severity::Problem)
        .count();
    if problems == 0 {
        println!(
            "{}: all is well{}",
            config.display(),
            if found.is_empty() {
                ""
            } else {
                " (see the warnings)"
            }
        );
    } else {
        println!("{}: {problems} problem(s)", config.display());
    }
    problems == 0
}
