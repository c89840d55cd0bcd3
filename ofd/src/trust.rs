//! The seal trust a deployment configures (`[seals] roots`, `crls`): the
//! certificates of the authorities that issue seal makers' and signers'
//! certificates, and their revocation lists. A certificate is trusted when
//! a chain of SM2 signatures leads from it to one of these, every link
//! valid at the time the seal was applied and none revoked.

use ::time::OffsetDateTime;
use gongwen_common::gm;
use x509_parser::prelude::*;

/// Longest chain followed (signer → intermediates → root).
const MAX_CHAIN: usize = 6;

/// One configured authority.
#[derive(Debug, Clone)]
struct Authority {
    der: Vec<u8>,
}

/// One configured revocation list (its issuer's signature is checked when
/// used, so a list nobody signed revokes nothing).
#[derive(Debug, Clone)]
struct Crl {
    der: Vec<u8>,
}

/// What a deployment trusts for seals.
#[derive(Debug, Clone, Default)]
pub struct SealTrust {
    authorities: Vec<Authority>,
    crls: Vec<Crl>,
}

/// Split PEM text into its DER blocks of `label`, or take the bytes as DER.
fn blocks(bytes: &[u8], label: &str) -> Result<Vec<Vec<u8>>, String> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(vec![bytes.to_vec()]);
    };
    if !text.contains("-----BEGIN") {
        return Ok(vec![bytes.to_vec()]);
    }
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| format!("PEM 格式错误：{e}"))?;
        if pem.label == label {
            out.push(pem.contents);
        }
    }
    if out.is_empty() {
        return Err(format!("没有 {label}"));
    }
    Ok(out)
}

impl SealTrust {
    /// Nothing trusted: every seal's verdict stops at 无法验证.
    pub fn none() -> SealTrust {
        SealTrust::default()
    }

    pub fn is_empty(&self) -> bool {
        self.authorities.is_empty()
    }

    /// Add the certificates in a root file (PEM, one or more, or DER).
    pub fn add_roots(&mut self, bytes: &[u8]) -> Result<usize, String> {
        let ders = blocks(bytes, "CERTIFICATE")?;
        for der in &ders {
            X509Certificate::from_der(der).map_err(|e| format!("不是证书：{e}"))?;
            self.authorities.push(Authority { der: der.clone() });
        }
        Ok(ders.len())
    }

    /// Add the lists in a CRL file (PEM or DER).
    pub fn add_crls(&mut self, bytes: &[u8]) -> Result<usize, String> {
        let ders = blocks(bytes, "X509 CRL")?;
        for der in &ders {
            CertificateRevocationList::from_der(der)
                .map_err(|e| format!("不是证书吊销列表：{e}"))?;
            self.crls.push(Crl { der: der.clone() });
        }
        Ok(ders.len())
    }

    /// Whether `cert` (DER) chains to a configured authority, valid at
    /// `at`; the reason in a clerk's words if not. `role` names the
    /// certificate ("签章人证书", "制章者证书").
    pub fn check(&self, cert: &[u8], role: &str, at: OffsetDateTime) -> Result<(), Failure> {
        let (_, mut current) = X509Certificate::from_der(cert)
            .map_err(|e| Failure::Unverifiable(format!("{role}无法解析：{e}")))?;
        let mut current_der = cert.to_vec();
        for _ in 0..MAX_CHAIN {
            within_validity(&current, role, at)?;
            self.not_revoked(&current, role)?;
            // A configured authority is trusted as it stands.
            if self.authorities.iter().any(|a| a.der == current_der) {
                return Ok(());
            }
            let issuer = self
                .authorities
                .iter()
                .filter_map(|a| X509Certificate::from_der(&a.der).ok().map(|(_, c)| (a, c)))
                .find(|(_, c)| {
                    c.subject().as_raw() == current.issuer().as_raw()
                        && signed_by(&current, c).is_ok()
                });
            let Some((authority, issuer)) = issuer else {
                // Say whether the issuer is unknown or the signature wrong.
                let named = self.authorities.iter().any(|a| {
                    X509Certificate::from_der(&a.der)
                        .is_ok_and(|(_, c)| c.subject().as_raw() == current.issuer().as_raw())
                });
                if let Err(Failure::Unverifiable(why)) = signed_by(&current, &current) {
                    return Err(Failure::Unverifiable(format!("{role}：{why}")));
                }
                return Err(Failure::Invalid(if named {
                    format!("{role}的签发者签名不正确（证书被伪造或改动）")
                } else {
                    format!(
                        "{role}不是受信任的印章机构签发的（签发者：{}）",
                        current.issuer()
                    )
                }));
            };
            if issuer.subject().as_raw() == issuer.issuer().as_raw() {
                within_validity(&issuer, "印章信任根", at)?;
                return Ok(());
            }
            current_der = authority.der.clone();
            current = issuer;
        }
        Err(Failure::Invalid(format!("{role}的证书链过长")))
    }

    fn not_revoked(&self, cert: &X509Certificate<'_>, role: &str) -> Result<(), Failure> {
        for crl in &self.crls {
            let Ok((_, list)) = CertificateRevocationList::from_der(&crl.der) else {
                continue;
            };
            if list.issuer().as_raw() != cert.issuer().as_raw() {
                continue;
            }
            // Only a list its issuer signed counts.
            let issuer_signed = self.authorities.iter().any(|a| {
                X509Certificate::from_der(&a.der).is_ok_and(|(_, issuer)| {
                    issuer.subject().as_raw() == list.issuer().as_raw()
                        && sm2_signed(
                            list.tbs_cert_list.as_ref(),
                            &list.signature_algorithm.algorithm.to_id_string(),
                            &list.signature_value.data,
                            &issuer,
                        )
                        .is_ok()
                })
            });
            if !issuer_signed {
                continue;
            }
            if list
                .iter_revoked_certificates()
                .any(|r| r.raw_serial() == cert.raw_serial())
            {
                return Err(Failure::Invalid(format!("{role}已被吊销")));
            }
        }
        Ok(())
    }
}

/// Why a check did not pass: the seal is shown wrong, or it cannot be
/// decided here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Invalid(String),
    Unverifiable(String),
}

fn within_validity(
    cert: &X509Certificate<'_>,
    role: &str,
    at: OffsetDateTime,
) -> Result<(), Failure> {
    let v = cert.validity();
    let at_s = at.unix_timestamp();
    if at_s < v.not_before.timestamp() {
        return Err(Failure::Invalid(format!(
            "盖章时{role}尚未生效（{} 起有效）",
            v.not_before
        )));
    }
    if at_s > v.not_after.timestamp() {
        return Err(Failure::Invalid(format!(
            "盖章时{role}已过期（有效期至 {}）",
            v.not_after
        )));
    }
    Ok(())
}

/// Whether `cert` carries a valid SM2 signature by `issuer`'s key.
fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> Result<(), Failure> {
    sm2_signed(
        cert.tbs_certificate.as_ref(),
        &cert.signature_algorithm.algorithm.to_id_string(),
        &cert.signature_value.data,
        issuer,
    )
}

fn sm2_signed(
    tbs: &[u8],
    algorithm: &str,
    signature: &[u8],
    issuer: &X509Certificate<'_>,
) -> Result<(), Failure> {
    if algorithm != crate::seal::SM2_WITH_SM3 {
        return Err(Failure::Unverifiable(format!(
            "证书签名算法 {algorithm} 不是 SM2（暂不支持）"
        )));
    }
    gm::verify_der_or_raw(
        &issuer.public_key().subject_public_key.data,
        gm::DEFAULT_DISTID,
        tbs,
        signature,
    )
    .map_err(|_| Failure::Invalid("证书签名不正确".into()))
}

/// The SEC1 public key in a certificate, and its subject's common name.
pub fn public_key_and_name(cert: &[u8]) -> Result<(Vec<u8>, String), String> {
    let (_, c) = X509Certificate::from_der(cert).map_err(|e| format!("证书无法解析：{e}"))?;
    let name = c
        .subject()
        .iter_common_name()
        .filter_map(|n| n.as_str().ok())
        .next()
        .map(str::to_owned)
        .unwrap_or_else(|| c.subject().to_string());
    Ok((c.public_key().subject_public_key.data.to_vec(), name))
}

/// A certificate's validity, checked at `at`.
pub fn valid_at(cert: &[u8], role: &str, at: OffsetDateTime) -> Result<(), Failure> {
    let (_, c) = X509Certificate::from_der(cert)
        .map_err(|e| Failure::Unverifiable(format!("{role}无法解析：{e}")))?;
    within_validity(&c, role, at)
}
