//! The byte encoding shared by the wire protocol and every signed
//! statement: big-endian integers, length-prefixed bytes and text, read
//! by a cursor that never panics and never reads past its input.
//!
//! The encoding is canonical: one value has exactly one encoding, so a
//! signature over the bytes is a signature over the value.

use crate::id::NodeId;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("input ends before its fields do")]
    Truncated,
    #[error("{0} unexpected bytes after the value")]
    TrailingBytes(usize),
    #[error("a text field is not UTF-8")]
    NotUtf8,
    #[error("a field of {len} bytes is longer than its limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("invalid node id {0:?}")]
    BadNodeId(String),
    #[error("invalid {what} code {code}")]
    BadCode { what: &'static str, code: u64 },
}

/// Appends encoded fields to a buffer.
#[derive(Debug)]
pub struct Writer<'a>(pub &'a mut Vec<u8>);

impl Writer<'_> {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    /// Bytes with a u32 length prefix. Callers bound their sizes far below
    /// 4 GiB; a longer input is cut rather than wrapped.
    pub fn bytes(&mut self, b: &[u8]) {
        let n = b.len().min(u32::MAX as usize);
        self.u32(n as u32);
        self.raw(&b[..n]);
    }
    /// Text with a u16 length prefix, cut at a character boundary if longer.
    pub fn str(&mut self, s: &str) {
        let mut end = s.len().min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u16(end as u16);
        self.raw(&s.as_bytes()[..end]);
    }
    pub fn node_ids(&mut self, ids: &[NodeId]) {
        self.u16(ids.len().min(u16::MAX as usize) as u16);
        for id in ids.iter().take(u16::MAX as usize) {
            self.str(id.as_str());
        }
    }
}

/// Reads encoded fields from a slice.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    /// Bytes with a u32 length prefix, at most `max` long.
    pub fn bytes(&mut self, max: usize) -> Result<&'a [u8], CodecError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(CodecError::TooLong { len, max });
        }
        self.take(len)
    }
    pub fn string(&mut self) -> Result<String, CodecError> {
        let n = self.u16()? as usize;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| CodecError::NotUtf8)
    }
    /// A unit's address (local, or `unit@domain`: a header names remote
    /// recipients); where only a local unit may stand, the caller checks
    /// [`NodeId::is_local`].
    pub fn node_id(&mut self) -> Result<NodeId, CodecError> {
        let s = self.string()?;
        NodeId::parse_address(&s).map_err(|_| CodecError::BadNodeId(s))
    }
    pub fn node_ids(&mut self, max: usize) -> Result<Vec<NodeId>, CodecError> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(CodecError::TooLong { len: n, max });
        }
        (0..n).map(|_| self.node_id()).collect()
    }
    pub fn finish(self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(CodecError::TrailingBytes(n)),
        }
    }
}
