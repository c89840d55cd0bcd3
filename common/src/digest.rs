//! SHA-256, the digest the standard suite signs and names documents by,
//! and the one certificates and CRLs are remembered by in either suite.

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
