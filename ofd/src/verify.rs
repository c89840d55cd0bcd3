//! 验章: every seal in an OFD checked as GB/T 38540 asks, each giving one
//! verdict with its reason in a clerk's words.
//!
//! The order is the order of what matters most: first that the document
//! is what was sealed (the References' digests, every part of the document
//! covered), then that the seal data is what was signed (Signature.xml's
//! digest, Seal.esl), then the two signatures (the signer's over
//! `TBS_Sign`, the maker's over the seal), then the seal's rules (the
//! signer in its list, its validity period), and last the trust (both
//! certificates chained to the configured roots, none revoked). The first
//! failure is the reason shown.

use std::collections::BTreeSet;
use std::io::{Read, Seek};

use base64::Engine as _;
use gongwen_common::gm;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::package::{Package, dir_of, normalize};
use crate::seal::{CertList, SM2_WITH_SM3, Stamp, parse_stamp};
use crate::structure::{Structure, read_xml};
use crate::trust::{Failure, SealTrust, public_key_and_name, valid_at};

/// Largest `SignedValue.dat` or `Seal.esl` read (a seal picture included).
const MAX_SEAL_BYTES: u64 = 8 * 1024 * 1024;
/// Largest file whose digest is checked.
const MAX_REFERENCED_BYTES: u64 = 1024 * 1024 * 1024;
/// How far in the future a seal's signing time may claim to be (clocks
/// differ between units).
const CLOCK_SKEW: time::Duration = time::Duration::hours(24);

/// 印章有效 / 印章无效 / 无法验证.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SealResult {
    Valid,
    Invalid,
    Unverifiable,
}

impl SealResult {
    pub fn chinese(self) -> &'static str {
        match self {
            SealResult::Valid => "印章有效",
            SealResult::Invalid => "印章无效",
            SealResult::Unverifiable => "无法验证",
        }
    }
}

/// One seal's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealVerdict {
    pub result: SealResult,
    /// Why (empty when valid).
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub seal_name: Option<String>,
    /// The signer certificate's common name.
    #[serde(default)]
    pub signer: Option<String>,
    /// When the signer says the seal was applied (RFC 3339).
    #[serde(default)]
    pub signed_at: Option<String>,
}

/// What an evidence bundle needs to re-check one seal with openssl alone:
/// the signed `TBS_Sign`, the signer's signature (DER) and certificate, and
/// `Signature.xml` whose SM3 is the signed `dataHash`.
#[derive(Debug, Clone)]
pub struct SealInputs {
    pub tbs_sign: Vec<u8>,
    pub signature_der: Vec<u8>,
    /// The signer's certificate (DER), whose key made `signature_der`.
    pub signer_cert: Vec<u8>,
    pub signature_xml: Vec<u8>,
    pub data_hash: Vec<u8>,
}

/// A seal checked: its verdict, and the inputs for the evidence when the
/// seal data could be read.
#[derive(Debug, Clone)]
pub struct SealCheck {
    pub verdict: SealVerdict,
    pub inputs: Option<SealInputs>,
}

/// A signature the lists name: where its files are.
#[derive(Debug, Clone)]
struct Listed {
    id: String,
    kind: String,
    signature_xml: String,
}

fn listed_signatures<R: Read + Seek>(
    pkg: &mut Package<R>,
    lists: &[String],
) -> Result<Vec<Listed>, String> {
    let mut out = Vec::new();
    for list in lists {
        let xml = read_xml(pkg, list)?;
        for sig in xml.all("Signature") {
            let loc = sig
                .attr("BaseLoc")
                .ok_or_else(|| format!("{list} 中的签名没有 BaseLoc"))?;
            let signature_xml =
                normalize(dir_of(list), loc).ok_or_else(|| format!("签名路径不合规：{loc}"))?;
            out.push(Listed {
                id: sig.attr("ID").unwrap_or_default().to_owned(),
                kind: sig.attr("Type").unwrap_or("Seal").to_owned(),
                signature_xml,
            });
        }
    }
    Ok(out)
}

/// The files one Signature.xml names.
#[derive(Debug, Clone, Default)]
struct SignedInfo {
    method: String,
    references: Vec<(String, String)>,
    seal_file: Option<String>,
    signed_value: String,
}

fn signed_info<R: Read + Seek>(pkg: &mut Package<R>, path: &str) -> Result<SignedInfo, String> {
    let xml = read_xml(pkg, path)?;
    if xml.name != "Signature" {
        return Err(format!("{path} 不是签名描述文件"));
    }
    let base = dir_of(path);
    let info = xml
        .first("SignedInfo")
        .ok_or_else(|| format!("{path} 缺少 SignedInfo"))?;
    let refs = info
        .first("References")
        .ok_or_else(|| format!("{path} 缺少 References"))?;
    let mut references = Vec::new();
    for r in refs.all("Reference") {
        let file = r
            .attr("FileRef")
            .ok_or_else(|| format!("{path} 的引用没有 FileRef"))?;
        let file = normalize(base, file).ok_or_else(|| format!("引用路径不合规：{file}"))?;
        let value = r
            .first("CheckValue")
            .map(|c| c.text.trim().to_owned())
            .unwrap_or_default();
        references.push((file, value));
    }
    let signed_value = xml
        .first("SignedValue")
        .map(|v| v.text.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{path} 缺少 SignedValue"))?;
    Ok(SignedInfo {
        method: refs
            .attr("CheckMethod")
            .unwrap_or("1.2.156.10197.1.401")
            .to_owned(),
        references,
        seal_file: info
            .path(&["Seal", "BaseLoc"])
            .and_then(|b| normalize(base, &b.text)),
        signed_value: normalize(base, signed_value)
            .ok_or_else(|| format!("签名值路径不合规：{signed_value}"))?,
    })
}

fn is_sm3(method: &str) -> bool {
    let m = method.trim();
    m == "1.2.156.10197.1.401" || m.eq_ignore_ascii_case("sm3")
}

/// Check every seal of the container whose structure `structure` holds.
pub fn verify_seals<R: Read + Seek>(
    pkg: &mut Package<R>,
    structure: &Structure,
    trust: &SealTrust,
    now: OffsetDateTime,
) -> Result<Vec<SealCheck>, String> {
    let listed = listed_signatures(pkg, &structure.signature_lists)?;
    // The files no seal covers by design: the entry file, the signature
    // lists, and each signature's own files. Content is never among them.
    let mut own: BTreeSet<String> = structure.signature_lists.iter().cloned().collect();
    own.insert("OFD.xml".into());
    let mut infos = Vec::new();
    for l in &listed {
        let info = signed_info(pkg, &l.signature_xml);
        if let Ok(i) = &info {
            own.insert(l.signature_xml.clone());
            own.insert(i.signed_value.clone());
            if let Some(s) = &i.seal_file {
                own.insert(s.clone());
            }
        }
        infos.push(info);
    }
    own.retain(|f| !structure.content.contains(f));
    let mut out = Vec::new();
    for (l, info) in listed.iter().zip(infos) {
        out.push(match info {
            Err(e) => unverifiable(format!("签名 {} 无法读取：{e}", l.id)),
            Ok(_) if l.kind != "Seal" => unverifiable(format!(
                "签名 {} 是数字签名（{}），不是电子印章，暂不支持验证",
                l.id, l.kind
            )),
            Ok(info) => check_one(pkg, l, &info, &own, trust, now)?,
        });
    }
    Ok(out)
}

fn unverifiable(reason: String) -> SealCheck {
    SealCheck {
        verdict: SealVerdict {
            result: SealResult::Unverifiable,
            reason: crate::structure::clip(&reason),
            seal_name: None,
            signer: None,
            signed_at: None,
        },
        inputs: None,
    }
}

fn check_one<R: Read + Seek>(
    pkg: &mut Package<R>,
    listed: &Listed,
    info: &SignedInfo,
    own: &BTreeSet<String>,
    trust: &SealTrust,
    now: OffsetDateTime,
) -> Result<SealCheck, String> {
    let value = match pkg.read(&info.signed_value, MAX_SEAL_BYTES) {
        Ok(v) => v,
        Err(e) => return Ok(unverifiable(format!("签名值无法读取：{e}"))),
    };
    let stamp = match parse_stamp(&value) {
        Ok(s) => s,
        Err(e) => return Ok(unverifiable(format!("签章数据无法识别：{e}"))),
    };
    let signature_xml = pkg.read(&listed.signature_xml, crate::package::MAX_XML_BYTES)?;
    let signer = public_key_and_name(stamp.signer_cert).ok();
    let mut verdict = SealVerdict {
        result: SealResult::Valid,
        reason: String::new(),
        seal_name: Some(stamp.seal.name.clone()),
        signer: signer.as_ref().map(|(_, n)| n.clone()),
        signed_at: stamp.signed_at.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
    };
    let inputs = signer.as_ref().and_then(|_| {
        Some(SealInputs {
            tbs_sign: stamp.tbs_sign.to_vec(),
            signature_der: signature_der(stamp.signature)?,
            signer_cert: stamp.signer_cert.to_vec(),
            signature_xml: signature_xml.clone(),
            data_hash: stamp.data_hash.to_vec(),
        })
    });
    let outcome = (|| -> Result<(), Failure> {
        references(pkg, info, own)?;
        seal_data(pkg, info, &stamp, &signature_xml)?;
        signatures(&stamp, signer.as_ref().map(|(p, _)| p.as_slice()))?;
        seal_rules(&stamp, now)?;
        let at = stamp.signed_at.unwrap_or(now);
        if trust.is_empty() {
            return Err(Failure::Unverifiable(
                "本单位未配置印章信任根（agent.toml 的 [seals] roots），无法确认印章由谁颁发"
                    .into(),
            ));
        }
        trust.check(stamp.signer_cert, "签章人证书", at)?;
        trust.check(stamp.seal.maker_cert, "制章者证书", at)?;
        Ok(())
    })();
    match outcome {
        Ok(()) => {}
        Err(Failure::Invalid(why)) => {
            verdict.result = SealResult::Invalid;
            verdict.reason = why;
        }
        Err(Failure::Unverifiable(why)) => {
            verdict.result = SealResult::Unverifiable;
            verdict.reason = why;
        }
    }
    // Names and reasons come from the seal's maker and the file: bounded.
    verdict.reason = crate::structure::clip(&verdict.reason);
    verdict.seal_name = verdict.seal_name.map(|n| crate::structure::clip(&n));
    verdict.signer = verdict.signer.map(|n| crate::structure::clip(&n));
    Ok(SealCheck { verdict, inputs })
}

/// The References: each file's digest as sealed, and every file of the
/// document among them.
fn references<R: Read + Seek>(
    pkg: &mut Package<R>,
    info: &SignedInfo,
    own: &BTreeSet<String>,
) -> Result<(), Failure> {
    if !is_sm3(&info.method) {
        return Err(Failure::Unverifiable(format!(
            "摘要算法 {} 不是 SM3（暂不支持）",
            info.method
        )));
    }
    let mut covered = BTreeSet::new();
    for (file, expected) in &info.references {
        let expected = base64::engine::general_purpose::STANDARD
            .decode(expected)
            .map_err(|_| Failure::Invalid(format!("{file} 的摘要值不是 base64")))?;
        let mut hasher = gm::Sm3Hasher::default();
        pkg.stream(file, MAX_REFERENCED_BYTES, &mut |b| hasher.update(b))
            .map_err(|e| Failure::Invalid(format!("盖章时的文件已不在：{e}")))?;
        if hasher.finish().as_slice() != expected.as_slice() {
            return Err(Failure::Invalid(format!("{file} 在盖章后被改动")));
        }
        covered.insert(file.clone());
    }
    let names: Vec<String> = pkg.names().map(str::to_owned).collect();
    if let Some(extra) = names
        .iter()
        .find(|n| !covered.contains(*n) && !own.contains(*n))
    {
        return Err(Failure::Invalid(format!(
            "{extra} 不在印章保护范围内（盖章后加入或未盖章保护）"
        )));
    }
    Ok(())
}

/// Signature.xml's digest as signed, and the seal file as signed.
fn seal_data<R: Read + Seek>(
    pkg: &mut Package<R>,
    info: &SignedInfo,
    stamp: &Stamp<'_>,
    signature_xml: &[u8],
) -> Result<(), Failure> {
    if gm::sm3(signature_xml).as_slice() != stamp.data_hash {
        return Err(Failure::Invalid(
            "签章描述（Signature.xml）在盖章后被改动".into(),
        ));
    }
    if let Some(file) = &info.seal_file {
        let esl = pkg
            .read(file, MAX_SEAL_BYTES)
            .map_err(|e| Failure::Invalid(format!("印章文件无法读取：{e}")))?;
        if esl != stamp.seal.raw {
            return Err(Failure::Invalid(format!(
                "印章文件 {file} 与签章中的印章不一致"
            )));
        }
    }
    Ok(())
}

/// The signer's signature over TBS_Sign, and the maker's over the seal.
fn signatures(stamp: &Stamp<'_>, signer_public: Option<&[u8]>) -> Result<(), Failure> {
    if stamp.algorithm != SM2_WITH_SM3 {
        return Err(Failure::Unverifiable(format!(
            "签章签名算法 {} 不是 SM2（暂不支持）",
            stamp.algorithm
        )));
    }
    let public = signer_public.ok_or_else(|| Failure::Unverifiable("签章人证书无法解析".into()))?;
    gm::verify_der_or_raw(public, gm::DEFAULT_DISTID, stamp.tbs_sign, stamp.signature)
        .map_err(|_| Failure::Invalid("签章签名不正确（签章数据被伪造或改动）".into()))?;
    let seal = &stamp.seal;
    if seal.maker_algorithm != SM2_WITH_SM3 {
        return Err(Failure::Unverifiable(format!(
            "制章签名算法 {} 不是 SM2（暂不支持）",
            seal.maker_algorithm
        )));
    }
    let (maker, _) = public_key_and_name(seal.maker_cert)
        .map_err(|e| Failure::Unverifiable(format!("制章者{e}")))?;
    // GB/T 38540 signs SES_SealInfo; GM/T 0031 (and some version-4
    // makers) sign it followed by the maker's certificate and algorithm.
    let with_cert = maker_signed_sequence(stamp);
    let signed = [seal.seal_info, with_cert.as_slice()].iter().any(|m| {
        gm::verify_der_or_raw(&maker, gm::DEFAULT_DISTID, m, seal.maker_signature).is_ok()
    });
    if !signed {
        return Err(Failure::Invalid(
            "制章者签名不正确（印章被伪造或改动）".into(),
        ));
    }
    Ok(())
}

/// SEQUENCE { SES_SealInfo, cert OCTET STRING, algorithm OID }, in DER.
fn maker_signed_sequence(stamp: &Stamp<'_>) -> Vec<u8> {
    let seal = &stamp.seal;
    let mut body = seal.seal_info.to_vec();
    body.extend(der_tlv(0x04, seal.maker_cert));
    body.extend(der_oid(&seal.maker_algorithm));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(body);
    out
}

fn der_oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').filter_map(|a| a.parse().ok()).collect();
    let mut body = Vec::new();
    if arcs.len() >= 2 {
        let mut push = |mut v: u64| {
            let mut chunk = vec![(v & 0x7f) as u8];
            v >>= 7;
            while v > 0 {
                chunk.push(0x80 | (v & 0x7f) as u8);
                v >>= 7;
            }
            chunk.reverse();
            body.extend(chunk);
        };
        push(arcs[0] * 40 + arcs[1]);
        for a in &arcs[2..] {
            push(*a);
        }
    }
    der_tlv(0x06, &body)
}

/// The signer in the seal's list; the seal and the signer's certificate
/// valid when the seal was applied; that time not in the future.
fn seal_rules(stamp: &Stamp<'_>, now: OffsetDateTime) -> Result<(), Failure> {
    let seal = &stamp.seal;
    let listed = match &seal.certs {
        CertList::Certs(certs) => certs.contains(&stamp.signer_cert),
        CertList::Digests(digests) => digests.iter().any(|(alg, d)| {
            let alg = alg.trim().to_ascii_lowercase();
            (alg == "sm3" || alg == "1.2.156.10197.1.401")
                && gm::sm3(stamp.signer_cert).as_slice() == *d
        }),
    };
    if !listed {
        return Err(Failure::Invalid(
            "签章人的证书不在印章允许的证书列表中（无权使用此印章）".into(),
        ));
    }
    let Some(at) = stamp.signed_at else {
        return Err(Failure::Unverifiable("签章时间无法识别".into()));
    };
    if at > now + CLOCK_SKEW {
        return Err(Failure::Invalid(format!("签章时间 {at} 在将来")));
    }
    if at < seal.valid_from {
        return Err(Failure::Invalid(format!(
            "盖章时印章尚未生效（{} 起有效）",
            beijing_date(seal.valid_from)
        )));
    }
    if at > seal.valid_to {
        return Err(Failure::Invalid(format!(
            "盖章时印章已过有效期（有效期至 {}）",
            beijing_date(seal.valid_to)
        )));
    }
    valid_at(stamp.signer_cert, "签章人证书", at)?;
    Ok(())
}

fn beijing_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC));
    format!("{}年{}月{}日", t.year(), u8::from(t.month()), t.day())
}

/// The signature as DER `r, s` (openssl's form), from DER or `r ‖ s`.
fn signature_der(sig: &[u8]) -> Option<Vec<u8>> {
    if sig.first() == Some(&0x30) && sig.len() != 64 {
        return Some(sig.to_vec());
    }
    if sig.len() != 64 {
        return None;
    }
    let int = |x: &[u8]| {
        let x: Vec<u8> = x.iter().copied().skip_while(|b| *b == 0).collect();
        let mut body = Vec::new();
        if x.first().is_none_or(|b| b & 0x80 != 0) {
            body.push(0);
        }
        body.extend(x);
        der_tlv(0x02, &body)
    };
    let mut body = int(&sig[..32]);
    body.extend(int(&sig[32..]));
    Some(der_tlv(0x30, &body))
}

/// A seal's picture as it is placed on a page: the page (from 0), its box
/// in millimetres (x, y, width, height) and the picture (`kind`: "png",
/// "jpg" …).
#[derive(Debug, Clone)]
pub struct PlacedSeal {
    pub page: usize,
    pub boundary: [f64; 4],
    pub kind: String,
    pub picture: Vec<u8>,
}

/// Where each seal's picture goes: its `StampAnnot`s, with the picture
/// from the seal data. Unreadable seals are left out (the page shows no
/// picture for them; the verdict says why).
pub fn placed_seals<R: Read + Seek>(
    pkg: &mut Package<R>,
    structure: &Structure,
) -> Vec<PlacedSeal> {
    let Ok(listed) = listed_signatures(pkg, &structure.signature_lists) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for l in listed {
        let Ok(xml) = read_xml(pkg, &l.signature_xml) else {
            continue;
        };
        let Ok(info) = signed_info(pkg, &l.signature_xml) else {
            continue;
        };
        let Ok(value) = pkg.read(&info.signed_value, MAX_SEAL_BYTES) else {
            continue;
        };
        let Ok(stamp) = parse_stamp(&value) else {
            continue;
        };
        let Some(signed) = xml.first("SignedInfo") else {
            continue;
        };
        for annot in signed.all("StampAnnot") {
            let page = annot
                .attr("PageRef")
                .and_then(|r| structure.page_ids.iter().position(|id| id == r.trim()));
            let boundary: Vec<f64> = annot
                .attr("Boundary")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .filter(|n: &f64| n.is_finite())
                .collect();
            if let (Some(page), [x, y, w, h]) = (page, boundary.as_slice()) {
                out.push(PlacedSeal {
                    page,
                    boundary: [*x, *y, *w, *h],
                    kind: stamp.seal.picture.kind.to_ascii_lowercase(),
                    picture: stamp.seal.picture.data.to_vec(),
                });
            }
        }
    }
    out
}
