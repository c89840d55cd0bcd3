//! The document layer's cryptography on each suite, in memory, in one run:
//! content encryption (AES-256-GCM against SM4-GCM, through the same
//! `ContentSealer` and chunk layout), content digests (SHA-256 against
//! SM3), statement signing and checking (ECDSA P-256 against SM2 with its
//! binding) and key wrapping (HPKE X25519 against SM2 encryption). Where
//! the time of a GM document goes, before the end-to-end GM rows exist.

use std::time::Instant;

use gongwen_common::envelope::{CHUNK_LEN, ContentKey, ContentSealer, EncryptionKey};
use gongwen_common::gm::{DEFAULT_DISTID, Sm2Key};
use gongwen_common::signed::{Signer, Sm2Binding, Sm2Signer, StatementKind};
use gongwen_common::suite::{Hasher, Suite};
use gongwen_common::{DocId, NodeId};

use crate::report::Row;

const MIB: f64 = 1048576.0;

/// MiB/s sealing `bytes` of content chunk by chunk in `suite`.
fn seal_rate(suite: Suite, bytes: u64) -> anyhow::Result<f64> {
    let key = ContentKey::generate(suite)?;
    let mut sealer = ContentSealer::new(&key, DocId::generate(), bytes)?;
    let plain: Vec<u8> = (0..CHUNK_LEN).map(|i| (i % 251) as u8).collect();
    let started = Instant::now();
    let mut left = bytes;
    while !sealer.is_finished() {
        let n = left.min(CHUNK_LEN as u64) as usize;
        let mut chunk = plain[..n].to_vec();
        sealer.seal_chunk(&mut chunk)?;
        left -= n as u64;
    }
    Ok(bytes as f64 / MIB / started.elapsed().as_secs_f64())
}

/// MiB/s digesting `bytes` in `suite`.
fn digest_rate(suite: Suite, bytes: u64) -> f64 {
    let data: Vec<u8> = (0..CHUNK_LEN).map(|i| (i % 251) as u8).collect();
    let mut h = Hasher::new(suite);
    let started = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK_LEN as u64) as usize;
        h.update(&data[..n]);
        left -= n as u64;
    }
    std::hint::black_box(h.finish());
    bytes as f64 / MIB / started.elapsed().as_secs_f64()
}

/// Statements signed and checked (each: one signature, one full check)
/// per second with `signer`.
fn sign_rate(signer: &Signer, n: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    for i in 0..n {
        let st = signer.sign(StatementKind::Receipt, format!("receipt {i}").into_bytes())?;
        st.verify_signature()?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Content keys wrapped per second for one recipient (HPKE or SM2).
fn wrap_rate(suite: Suite, n: usize) -> anyhow::Result<f64> {
    let key = ContentKey::generate(suite)?;
    let me = NodeId::parse("bench-b")?;
    let public = match suite {
        Suite::Standard => EncryptionKey::generate()?.public().to_vec(),
        Suite::Gm => Sm2Key::generate().public(),
    };
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(key.wrap(DocId::generate(), &me, &public)?);
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The rows: GM figures with the standard ones of the same run beside them.
pub fn rows(signer: Signer, bytes: u64) -> anyhow::Result<Vec<Row>> {
    let mib = bytes as f64 / MIB;
    let mut rows = Vec::new();
    eprintln!("crypto: content encryption, {mib:.0} MiB per suite");
    let (aes, sm4) = (
        seal_rate(Suite::Standard, bytes)?,
        seal_rate(Suite::Gm, bytes)?,
    );
    rows.push(
        Row::new(
            &format!("GM content encryption (SM4-GCM), {mib:.0} MiB in memory"),
            sm4,
            "MiB/s",
        )
        .vs(aes, "AES-256-GCM", sm4 / aes)
        .note("same chunk layout; AES uses the CPU's AES-NI and CLMUL through ring, SM4 is table-driven software"),
    );
    eprintln!("crypto: content digest");
    let (sha, sm3) = (
        digest_rate(Suite::Standard, bytes),
        digest_rate(Suite::Gm, bytes),
    );
    rows.push(
        Row::new(
            &format!("GM content digest (SM3), {mib:.0} MiB in memory"),
            sm3,
            "MiB/s",
        )
        .vs(sha, "SHA-256", sm3 / sha)
        .note("ring's SHA-256 uses the CPU's SHA extensions where present"),
    );
    eprintln!("crypto: statements signed and checked");
    let (sign, enc) = (Sm2Key::generate(), Sm2Key::generate());
    let binding =
        Sm2Binding::for_keys(signer.identity().id.clone(), &sign, &enc, DEFAULT_DISTID, 0)
            .sign(&signer)?;
    let gm_signer = signer
        .clone()
        .with_sm2(Sm2Signer::new(sign, binding, signer.cert())?);
    let n = 300;
    let (ecdsa, sm2) = (sign_rate(&signer, n)?, sign_rate(&gm_signer, n)?);
    rows.push(
        Row::new("GM statement signed and checked (SM2)", sm2, "statements/s")
            .vs(ecdsa, "ECDSA P-256", sm2 / ecdsa)
            .note("a GM check also checks the key binding (one ECDSA verification)"),
    );
    eprintln!("crypto: content keys wrapped");
    let (hpke, sm2_wrap) = (wrap_rate(Suite::Standard, n)?, wrap_rate(Suite::Gm, n)?);
    rows.push(
        Row::new(
            "GM content key wrapped for a recipient (SM2)",
            sm2_wrap,
            "keys/s",
        )
        .vs(hpke, "HPKE X25519", sm2_wrap / hpke)
        .note("one per recipient per document"),
    );
    Ok(rows)
}
