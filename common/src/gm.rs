//! The national algorithms (国密) over bytes: SM3 digests, SM2 signatures
//! (SM3 with the signer's distinguishing id, GB/T 32918.2; DER `r, s` as
//! OpenSSL writes them), SM2 public-key encryption (GM/T 0003.4, the
//! ciphertext as GM/T 0009 ASN.1 in C1C3C2 order, as OpenSSL reads it) and
//! SM4-GCM (RFC 8998). Plain functions; the crypto suite of a deployment
//! reaches them through [`crate::suite`].
//!
//! The implementations are RustCrypto's `sm2`, `sm3` and `sm4`: maintained,
//! pure Rust, tested here against the standards' examples and against
//! OpenSSL, and not audited or certified (SECURITY.md says what that means
//! for an assessment, and where a certified module would plug in).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use sm2::elliptic_curve::Generate;
use sm2::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use sm3::Digest;

/// The distinguishing id every SM2 signature uses unless configured
/// otherwise (GB/T 35276's default), recorded in the statements it signs.
pub const DEFAULT_DISTID: &str = "1234567812345678";

/// Whether `distid` may be a unit's distinguishing id: 1 to 64 of the
/// letters, digits and `.`, `_`, `@`, `-` (it is written into statements,
/// configuration and evidence scripts, so nothing that needs quoting).
pub fn check_distid(distid: &str) -> Result<(), String> {
    let ok = !distid.is_empty()
        && distid.len() <= 64
        && distid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{distid:?} cannot be an SM2 distinguishing id: 1 to 64 letters, digits, '.', '_', '@' or '-'"
        ))
    }
}

/// SM4 keys are 128 bits; GCM nonces 96.
pub const SM4_KEY_LEN: usize = 16;
pub const GCM_NONCE_LEN: usize = 12;
pub const GCM_TAG_LEN: usize = 16;

type Sm4Gcm = aes_gcm::AesGcm<sm4::Sm4, aes_gcm::aead::consts::U12>;

/// Why a GM operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GmError {
    #[error("not an SM2 key: {0}")]
    Key(String),
    #[error("the distinguishing id is not usable: {0}")]
    DistId(String),
    #[error("the SM2 signature does not verify")]
    BadSignature,
    #[error("the SM2 ciphertext does not decrypt with this key")]
    Decrypt,
    #[error("SM2 encryption failed: {0}")]
    Encrypt(String),
    #[error("SM4-GCM: the content was changed or the key is wrong")]
    Open,
    #[error("SM4-GCM: the key must be 16 bytes and the nonce 12")]
    Lengths,
}

/// SM3 of `data`.
pub fn sm3(data: &[u8]) -> [u8; 32] {
    sm3::Sm3::digest(data).into()
}

/// SM3 over data given in pieces (a file read in chunks).
#[derive(Debug, Clone, Default)]
pub struct Sm3Hasher(sm3::Sm3);

impl Sm3Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// An SM2 private key: signs with a distinguishing id, decrypts what was
/// encrypted to its public key. The dual-key model keeps one of each per
/// unit; the type is the same.
#[derive(Clone)]
pub struct Sm2Key {
    secret: sm2::SecretKey,
}

impl std::fmt::Debug for Sm2Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sm2Key").finish_non_exhaustive()
    }
}

impl Sm2Key {
    /// A fresh key from the system's random source.
    pub fn generate() -> Sm2Key {
        Sm2Key {
            secret: sm2::SecretKey::generate(),
        }
    }

    /// From PKCS#8 DER (what [`Sm2Key::to_pkcs8_der`] and OpenSSL write).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Sm2Key, GmError> {
        sm2::SecretKey::from_pkcs8_der(der)
            .map(|secret| Sm2Key { secret })
            .map_err(|e| GmError::Key(e.to_string()))
    }

    /// From a PKCS#8 PEM file's text (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Sm2Key, GmError> {
        sm2::SecretKey::from_pkcs8_pem(pem)
            .map(|secret| Sm2Key { secret })
            .map_err(|e| GmError::Key(e.to_string()))
    }

    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, GmError> {
        self.secret
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|e| GmError::Key(e.to_string()))
    }

    pub fn to_pkcs8_pem(&self) -> Result<String, GmError> {
        self.secret
            .to_pkcs8_pem(Default::default())
            .map(|p| p.to_string())
            .map_err(|e| GmError::Key(e.to_string()))
    }

    /// The public key, SEC1 uncompressed (65 bytes).
    pub fn public(&self) -> Vec<u8> {
        self.secret.public_key().to_sec1_bytes().to_vec()
    }

    /// Sign `message` (SM3 with Z computed from `distid` and the key); the
    /// signature as DER.
    pub fn sign(&self, distid: &str, message: &[u8]) -> Result<Vec<u8>, GmError> {
        use sm2::dsa::signature::Signer;
        let key = sm2::dsa::SigningKey::new(distid, &self.secret)
            .map_err(|e| GmError::DistId(e.to_string()))?;
        let signature: sm2::dsa::Signature = key
            .try_sign(message)
            .map_err(|e| GmError::Key(e.to_string()))?;
        Ok(signature.to_der().as_bytes().to_vec())
    }

    /// Decrypt a GM/T 0009 DER ciphertext (C1C3C2) made for this key.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, GmError> {
        sm2::pke::DecryptingKey::new_with_mode(
            self.secret.to_nonzero_scalar(),
            sm2::pke::Mode::C1C3C2,
        )
        .decrypt_der(ciphertext)
        .map_err(|_| GmError::Decrypt)
    }
}

fn public_key(sec1: &[u8]) -> Result<sm2::PublicKey, GmError> {
    sm2::PublicKey::from_sec1_bytes(sec1).map_err(|e| GmError::Key(e.to_string()))
}

/// A SEC1 public key as a SubjectPublicKeyInfo PEM (what `openssl dgst
/// -verify` and `pkeyutl -pubin` take).
pub fn public_pem(sec1: &[u8]) -> Result<String, GmError> {
    public_key(sec1)?
        .to_public_key_pem(Default::default())
        .map_err(|e| GmError::Key(e.to_string()))
}

/// A SubjectPublicKeyInfo PEM's key, SEC1.
pub fn public_from_pem(pem: &str) -> Result<Vec<u8>, GmError> {
    sm2::PublicKey::from_public_key_pem(pem)
        .map(|k| k.to_sec1_bytes().to_vec())
        .map_err(|e| GmError::Key(e.to_string()))
}

/// Check a DER SM2 signature of `message` by the holder of `public`
/// (SEC1) under `distid`.
pub fn verify(
    public: &[u8],
    distid: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<(), GmError> {
    use sm2::dsa::signature::Verifier;
    let key = sm2::dsa::VerifyingKey::new(distid, public_key(public)?)
        .map_err(|e| GmError::DistId(e.to_string()))?;
    let signature =
        sm2::dsa::DerSignature::from_bytes(signature).map_err(|_| GmError::BadSignature)?;
    let signature = sm2::dsa::Signature::try_from(signature).map_err(|_| GmError::BadSignature)?;
    key.verify(message, &signature)
        .map_err(|_| GmError::BadSignature)
}

/// Check an SM2 signature that may be DER `r, s` or the bare 64 bytes
/// `r ‖ s` some seal vendors write (GB/T 38540 leaves it to them).
pub fn verify_der_or_raw(
    public: &[u8],
    distid: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<(), GmError> {
    if signature.len() == 64 {
        use sm2::dsa::signature::Verifier;
        let key = sm2::dsa::VerifyingKey::new(distid, public_key(public)?)
            .map_err(|e| GmError::DistId(e.to_string()))?;
        if let Ok(raw) = sm2::dsa::Signature::from_slice(signature)
            && key.verify(message, &raw).is_ok()
        {
            return Ok(());
        }
    }
    verify(public, distid, message, signature)
}

/// Encrypt `plaintext` (a content key) to `public` (SEC1): GM/T 0009 DER,
/// C1C3C2.
pub fn encrypt(public: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, GmError> {
    sm2::pke::EncryptingKey::new_with_mode(public_key(public)?, sm2::pke::Mode::C1C3C2)
        .encrypt_der(
            &mut sm2::elliptic_curve::common::getrandom::SysRng,
            plaintext,
        )
        .map_err(|e| GmError::Encrypt(e.to_string()))
}

fn gcm(key: &[u8]) -> Result<Sm4Gcm, GmError> {
    Sm4Gcm::new_from_slice(key).map_err(|_| GmError::Lengths)
}

/// SM4-GCM: `plaintext` sealed under `key` (16 bytes) and `nonce` (12),
/// binding `aad`; the ciphertext with its 16-byte tag at the end.
pub fn sm4_gcm_seal(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, GmError> {
    let nonce: [u8; GCM_NONCE_LEN] = nonce.try_into().map_err(|_| GmError::Lengths)?;
    gcm(key)?
        .encrypt(
            &nonce.into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| GmError::Lengths)
}

/// The reverse of [`sm4_gcm_seal`]; fails if one bit changed.
pub fn sm4_gcm_open(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, GmError> {
    let nonce: [u8; GCM_NONCE_LEN] = nonce.try_into().map_err(|_| GmError::Lengths)?;
    gcm(key)?
        .decrypt(&nonce.into(), Payload { msg: sealed, aad })
        .map_err(|_| GmError::Open)
}

/// [`sm4_gcm_seal`] in place: `buf` (the plaintext) becomes the
/// ciphertext with its tag appended, without a second buffer.
pub fn sm4_gcm_seal_in_place(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), GmError> {
    use aes_gcm::aead::AeadInOut;
    let nonce: [u8; GCM_NONCE_LEN] = nonce.try_into().map_err(|_| GmError::Lengths)?;
    let tag = gcm(key)?
        .encrypt_inout_detached(&nonce.into(), aad, buf.as_mut_slice().into())
        .map_err(|_| GmError::Lengths)?;
    buf.extend_from_slice(&tag);
    Ok(())
}

/// [`sm4_gcm_open`] in place: the plaintext is left at the start of
/// `buf`; its length is returned. Fails if one bit changed.
pub fn sm4_gcm_open_in_place(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<usize, GmError> {
    use aes_gcm::aead::AeadInOut;
    let nonce: [u8; GCM_NONCE_LEN] = nonce.try_into().map_err(|_| GmError::Lengths)?;
    let plain_len = buf.len().checked_sub(GCM_TAG_LEN).ok_or(GmError::Open)?;
    let (data, tag) = buf.split_at_mut(plain_len);
    let tag: [u8; GCM_TAG_LEN] = (&*tag).try_into().map_err(|_| GmError::Open)?;
    gcm(key)?
        .decrypt_inout_detached(&nonce.into(), aad, data.into(), &tag.into())
        .map_err(|_| GmError::Open)?;
    Ok(plain_len)
}

/// One SM4 block encrypted (for the standard's examples).
pub fn sm4_encrypt_block(key: &[u8; 16], block: &mut [u8; 16]) {
    use sm4::cipher::{BlockCipherEncrypt, KeyInit as _};
    let cipher = sm4::Sm4::new(key.into());
    cipher.encrypt_block(block.into());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // GB/T 32905-2016, appendix A.
    #[test]
    fn sm3_gives_the_standards_examples() {
        assert_eq!(
            sm3(b"abc").to_vec(),
            unhex("66c7f0f4 62eeedd9 d1f2d46b dc10e4e2 4167c487 5cf2f7a2 297da02b 8f4ba8e0")
        );
        let sixty_four = b"abcd".repeat(16);
        assert_eq!(
            sm3(&sixty_four).to_vec(),
            unhex("debe9ff9 2275b8a1 38604889 c18e5a4d 6fdb70e5 387e5765 293dcba3 9c0c5732")
        );
        let mut pieces = Sm3Hasher::default();
        for chunk in sixty_four.chunks(7) {
            pieces.update(chunk);
        }
        assert_eq!(pieces.finish(), sm3(&sixty_four));
    }

    // GB/T 32907-2016, appendix A, example 1.
    #[test]
    fn sm4_gives_the_standards_first_example() {
        let key: [u8; 16] = unhex("0123456789abcdeffedcba9876543210")
            .try_into()
            .unwrap();
        let mut block = key;
        sm4_encrypt_block(&key, &mut block);
        assert_eq!(block.to_vec(), unhex("681edf34d206965e86b3e94f536e4246"));
    }

    // GB/T 32907-2016, appendix A, example 2: the same block encrypted a
    // million times (about 3 s in a debug build here).
    #[test]
    fn sm4_gives_the_standards_million_round_example() {
        let key: [u8; 16] = unhex("0123456789abcdeffedcba9876543210")
            .try_into()
            .unwrap();
        let mut block = key;
        for _ in 0..1_000_000 {
            sm4_encrypt_block(&key, &mut block);
        }
        assert_eq!(block.to_vec(), unhex("595298c7c6fd271f0402f804c33d3f66"));
    }

    // RFC 8998, appendix A.1 (SM4-GCM).
    #[test]
    fn sm4_gcm_gives_the_rfc_8998_example_and_refuses_a_changed_bit() {
        let key = unhex("0123456789ABCDEFFEDCBA9876543210");
        let nonce = unhex("00001234567800000000ABCD");
        let aad = unhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
        let plain = unhex(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD
             EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
        );
        let expected = unhex(
            "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735
             D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D
             83DE3541E4C2B58177E065A9BF7B62EC",
        );
        let sealed = sm4_gcm_seal(&key, &nonce, &aad, &plain).unwrap();
        assert_eq!(sealed, expected);
        // In place, the same bytes both ways.
        let mut buf = plain.clone();
        sm4_gcm_seal_in_place(&key, &nonce, &aad, &mut buf).unwrap();
        assert_eq!(buf, expected);
        let n = sm4_gcm_open_in_place(&key, &nonce, &aad, &mut buf).unwrap();
        assert_eq!(&buf[..n], &plain[..]);
        let mut short = vec![0u8; 5];
        assert_eq!(
            sm4_gcm_open_in_place(&key, &nonce, &aad, &mut short),
            Err(GmError::Open)
        );
        assert_eq!(sm4_gcm_open(&key, &nonce, &aad, &sealed).unwrap(), plain);
        let mut changed = sealed.clone();
        changed[3] ^= 1;
        assert_eq!(
            sm4_gcm_open(&key, &nonce, &aad, &changed),
            Err(GmError::Open)
        );
        assert_eq!(
            sm4_gcm_open(&key, &nonce, b"other", &sealed),
            Err(GmError::Open)
        );
        assert_eq!(
            sm4_gcm_seal(&key[..8], &nonce, &aad, &plain),
            Err(GmError::Lengths)
        );
    }

    #[test]
    fn sm2_signs_and_encrypts_and_refuses_the_wrong_key_or_id() {
        let key = Sm2Key::generate();
        let other = Sm2Key::generate();
        let sig = key.sign(DEFAULT_DISTID, b"statement").unwrap();
        verify(&key.public(), DEFAULT_DISTID, b"statement", &sig).unwrap();
        assert_eq!(
            verify(&other.public(), DEFAULT_DISTID, b"statement", &sig),
            Err(GmError::BadSignature)
        );
        assert_eq!(
            verify(&key.public(), "another id", b"statement", &sig),
            Err(GmError::BadSignature)
        );
        assert_eq!(
            verify(&key.public(), DEFAULT_DISTID, b"statemenT", &sig),
            Err(GmError::BadSignature)
        );
        let wrapped = encrypt(&key.public(), &[7u8; 16]).unwrap();
        assert_eq!(key.decrypt(&wrapped).unwrap(), [7u8; 16]);
        assert_eq!(other.decrypt(&wrapped), Err(GmError::Decrypt));
        // Keys survive PKCS#8 and PEM.
        let again = Sm2Key::from_pkcs8_der(&key.to_pkcs8_der().unwrap()).unwrap();
        assert_eq!(again.public(), key.public());
        let pem = public_pem(&key.public()).unwrap();
        assert_eq!(public_from_pem(&pem).unwrap(), key.public());
    }
}
