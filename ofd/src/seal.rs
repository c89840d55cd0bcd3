//! The electronic seal's data (GB/T 38540-2020, `SES_Signature` version 4;
//! GM/T 0031-2014, version 1) read from DER. Every signed part keeps its
//! raw bytes: the signer signed the DER of `TBS_Sign`, the seal maker that
//! of `SES_SealInfo`, and verification checks those bytes, not a
//! re-encoding of what we understood.

use crate::der::{self, DerError, Reader, Tlv};
use time::OffsetDateTime;

/// SM2 signature with SM3 (GB/T 33560).
pub const SM2_WITH_SM3: &str = "1.2.156.10197.1.501";

/// The certificates a seal allows to sign with it.
#[derive(Debug, Clone)]
pub enum CertList<'a> {
    /// The certificates themselves (DER).
    Certs(Vec<&'a [u8]>),
    /// Their digests: (algorithm name as written, digest).
    Digests(Vec<(String, &'a [u8])>),
}

/// The seal's picture (what is shown on the page).
#[derive(Debug, Clone)]
pub struct Picture<'a> {
    /// "png", "jpg", "gif", "svg", "ofd"… as the maker wrote it.
    pub kind: String,
    pub data: &'a [u8],
    /// Size on the page, in millimetres.
    pub width: u64,
    pub height: u64,
}

/// An electronic seal (`SESeal`).
#[derive(Debug, Clone)]
pub struct Seal<'a> {
    /// The whole seal's DER (compared with the package's `Seal.esl`).
    pub raw: &'a [u8],
    pub version: u64,
    /// What the maker signed (`SES_SealInfo`'s DER; version 1 signs it
    /// with the certificate and algorithm after it).
    pub seal_info: &'a [u8],
    pub es_id: String,
    pub kind: u64,
    pub name: String,
    pub certs: CertList<'a>,
    pub created: OffsetDateTime,
    pub valid_from: OffsetDateTime,
    pub valid_to: OffsetDateTime,
    pub picture: Picture<'a>,
    pub maker_cert: &'a [u8],
    pub maker_algorithm: String,
    pub maker_signature: &'a [u8],
}

/// A seal applied to a document (`SES_Signature`).
#[derive(Debug, Clone)]
pub struct Stamp<'a> {
    pub version: u64,
    /// What the signer signed (`TBS_Sign`'s DER).
    pub tbs_sign: &'a [u8],
    pub seal: Seal<'a>,
    /// When the signer says the seal was applied (no timestamp authority
    /// vouches for it unless `time_stamp` is present).
    pub signed_at: Option<OffsetDateTime>,
    /// SM3 of `Signature.xml`, as signed.
    pub data_hash: &'a [u8],
    pub property_info: String,
    pub signer_cert: &'a [u8],
    pub algorithm: String,
    pub signature: &'a [u8],
    pub time_stamp: Option<&'a [u8]>,
}

fn err(what: &str, e: DerError) -> String {
    format!("{what}：{e}")
}

/// Read a `SignedValue.dat`: version 4 first, then version 1.
pub fn parse_stamp(bytes: &[u8]) -> Result<Stamp<'_>, String> {
    let mut top = Reader::new(bytes);
    let (_, mut sig) = top.sequence("电子签章数据").map_err(|e| e.to_string())?;
    let (tbs, mut tbs_fields) = sig.sequence("待签章数据").map_err(|e| e.to_string())?;
    let version = tbs_fields
        .any()
        .and_then(|v| v.small_int("版本"))
        .map_err(|e| err("待签章数据", e))?;
    if version >= 4 {
        stamp_v4(tbs, tbs_fields, version, sig)
    } else {
        stamp_v1(tbs, tbs_fields, version, sig)
    }
    .map_err(|e| format!("电子签章数据（第 {version} 版）格式不对：{e}"))
}

fn stamp_v4<'a>(
    tbs: Tlv<'a>,
    mut f: Reader<'a>,
    version: u64,
    mut sig: Reader<'a>,
) -> Result<Stamp<'a>, DerError> {
    let seal = seal_v4(f.sequence("电子印章")?.0)?;
    let signed_at = f
        .take(der::GENERALIZED_TIME, "签章时间")?
        .time("签章时间")?;
    let data_hash = f.take(der::BIT_STRING, "原文杂凑值")?.bits("原文杂凑值")?;
    let property_info = f.take(der::IA5_STRING, "原文属性")?.text("原文属性")?;
    let signer_cert = sig.take(der::OCTET_STRING, "签章者证书")?.body;
    let algorithm = sig.take(der::OID, "签名算法")?.oid("签名算法")?;
    let signature = sig.take(der::BIT_STRING, "签名值")?.bits("签名值")?;
    // timeStamp [0] EXPLICIT BIT STRING OPTIONAL (some write it implicitly).
    let time_stamp = match sig.optional(0xa0)? {
        Some(t) => Some(
            Reader::new(t.body)
                .take(der::BIT_STRING, "时间戳")?
                .bits("时间戳")?,
        ),
        None => sig.optional(0x80)?.map(|t| t.body),
    };
    Ok(Stamp {
        version,
        tbs_sign: tbs.raw,
        seal,
        signed_at: Some(signed_at),
        data_hash,
        property_info,
        signer_cert,
        algorithm,
        signature,
        time_stamp,
    })
}

fn stamp_v1<'a>(
    tbs: Tlv<'a>,
    mut f: Reader<'a>,
    version: u64,
    mut sig: Reader<'a>,
) -> Result<Stamp<'a>, DerError> {
    let seal = seal_v1(f.sequence("电子印章")?.0)?;
    // timeInfo BIT STRING: a UTCTime, DER or as its text.
    let time_bits = f.take(der::BIT_STRING, "签章时间")?.bits("签章时间")?;
    let signed_at = match Reader::new(time_bits).any() {
        Ok(t) if matches!(t.tag, der::UTC_TIME | der::GENERALIZED_TIME) => t.time("签章时间").ok(),
        _ => {
            let tag = if time_bits.len() >= 14 {
                der::GENERALIZED_TIME
            } else {
                der::UTC_TIME
            };
            Tlv {
                tag,
                body: time_bits,
                raw: time_bits,
            }
            .time("签章时间")
            .ok()
        }
    };
    let data_hash = f.take(der::BIT_STRING, "原文杂凑值")?.bits("原文杂凑值")?;
    let property_info = f.take(der::IA5_STRING, "原文属性")?.text("原文属性")?;
    let signer_cert = f.take(der::OCTET_STRING, "签章者证书")?.body;
    let algorithm = f.take(der::OID, "签名算法")?.oid("签名算法")?;
    let signature = sig.take(der::BIT_STRING, "签名值")?.bits("签名值")?;
    Ok(Stamp {
        version,
        tbs_sign: tbs.raw,
        seal,
        signed_at,
        data_hash,
        property_info,
        signer_cert,
        algorithm,
        signature,
        time_stamp: None,
    })
}

struct SealInfo<'a> {
    raw: &'a [u8],
    version: u64,
    es_id: String,
    kind: u64,
    name: String,
    certs: CertList<'a>,
    created: OffsetDateTime,
    valid_from: OffsetDateTime,
    valid_to: OffsetDateTime,
    picture: Picture<'a>,
}

fn seal_info<'a>(info: Tlv<'a>, v4: bool) -> Result<SealInfo<'a>, DerError> {
    let mut f = Reader::new(info.body);
    let (_, mut header) = f.sequence("印章头")?;
    let id = header
        .take(der::IA5_STRING, "印章头标识")?
        .text("印章头标识")?;
    if id != "ES" {
        return Err(DerError(format!("印章头标识是 {id:?}，应为 \"ES\"")));
    }
    let version = header.any()?.small_int("印章版本")?;
    let es_id = f.take(der::IA5_STRING, "印章标识")?.text("印章标识")?;
    let (_, mut p) = f.sequence("印章属性")?;
    let kind = p.any()?.small_int("印章类型")?;
    let name = p.take(der::UTF8_STRING, "印章名称")?.text("印章名称")?;
    let certs = if v4 {
        let list_type = p.any()?.small_int("证书列表类型")?;
        let (_, mut list) = p.sequence("证书列表")?;
        match list_type {
            1 => {
                let mut certs = Vec::new();
                while !list.is_empty() {
                    certs.push(list.take(der::OCTET_STRING, "证书")?.body);
                }
                CertList::Certs(certs)
            }
            2 => {
                let mut digests = Vec::new();
                while !list.is_empty() {
                    let (_, mut d) = list.sequence("证书摘要")?;
                    let alg = d
                        .take(der::PRINTABLE_STRING, "摘要算法")?
                        .text("摘要算法")?;
                    digests.push((alg, d.take(der::OCTET_STRING, "摘要值")?.body));
                }
                CertList::Digests(digests)
            }
            n => return Err(DerError(format!("证书列表类型 {n} 不认识"))),
        }
    } else {
        let (_, mut list) = p.sequence("证书列表")?;
        let mut certs = Vec::new();
        while !list.is_empty() {
            certs.push(list.take(der::OCTET_STRING, "证书")?.body);
        }
        CertList::Certs(certs)
    };
    let created = p.any()?.time("制章日期")?;
    let valid_from = p.any()?.time("有效期起")?;
    let valid_to = p.any()?.time("有效期止")?;
    let (_, mut pic) = f.sequence("印章图像")?;
    let picture = Picture {
        kind: pic.take(der::IA5_STRING, "图像类型")?.text("图像类型")?,
        data: pic.take(der::OCTET_STRING, "图像数据")?.body,
        width: pic.any()?.small_int("图像宽")?,
        height: pic.any()?.small_int("图像高")?,
    };
    Ok(SealInfo {
        raw: info.raw,
        version,
        es_id,
        kind,
        name,
        certs,
        created,
        valid_from,
        valid_to,
        picture,
    })
}

fn seal_v4<'a>(seal: Tlv<'a>) -> Result<Seal<'a>, DerError> {
    let mut f = Reader::new(seal.body);
    let info = seal_info(f.sequence("印章信息")?.0, true)?;
    let (cert, algorithm, signature) = maker_signature(&mut f)?;
    Ok(assemble(seal.raw, info, cert, algorithm, signature))
}

fn seal_v1<'a>(seal: Tlv<'a>) -> Result<Seal<'a>, DerError> {
    let mut f = Reader::new(seal.body);
    let info = seal_info(f.sequence("印章信息")?.0, false)?;
    // Version 1 wraps the same three fields in SES_SignInfo.
    let (_, mut sign) = f.sequence("制章签名信息")?;
    let (cert, algorithm, signature) = maker_signature(&mut sign)?;
    Ok(assemble(seal.raw, info, cert, algorithm, signature))
}

/// The seal maker's certificate, signature algorithm and signature.
fn maker_signature<'a>(f: &mut Reader<'a>) -> Result<(&'a [u8], String, &'a [u8]), DerError> {
    let cert = f.take(der::OCTET_STRING, "制章者证书")?.body;
    let algorithm = f.take(der::OID, "制章签名算法")?.oid("制章签名算法")?;
    let signature = f.take(der::BIT_STRING, "制章签名值")?.bits("制章签名值")?;
    Ok((cert, algorithm, signature))
}

fn assemble<'a>(
    raw: &'a [u8],
    info: SealInfo<'a>,
    maker_cert: &'a [u8],
    maker_algorithm: String,
    maker_signature: &'a [u8],
) -> Seal<'a> {
    Seal {
        raw,
        version: info.version,
        seal_info: info.raw,
        es_id: info.es_id,
        kind: info.kind,
        name: info.name,
        certs: info.certs,
        created: info.created,
        valid_from: info.valid_from,
        valid_to: info.valid_to,
        picture: info.picture,
        maker_cert,
        maker_algorithm,
        maker_signature,
    }
}
