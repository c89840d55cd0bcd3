//! The gongwen wire protocol: length-prefixed frames and the messages they
//! carry. Pure functions over bytes; the decoder never panics and never
//! allocates more than a frame's declared length, which is bounded.
//!
//! ```text
//! frame   = length:u32-be  type:u8  body          (length = 1 + body length)
//! string  = len:u16-be  utf-8 bytes
//! ```
//!
//! The first bidirectional stream an agent opens carries `Hello`; the hub
//! answers `Welcome` (the agent is admitted) or `Refused` (with a code).

use crate::id::NodeId;
use crate::pki::Role;

/// Version of the message vocabulary carried in `Hello`.
pub const PROTOCOL_VERSION: u16 = 1;
/// Largest frame either side accepts (type byte + body).
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("frame of {0} bytes is larger than the {MAX_FRAME_LEN}-byte limit")]
    Oversize(usize),
    #[error("empty frame")]
    Empty,
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    #[error("message ends before its fields do")]
    Truncated,
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
    #[error("a text field is not UTF-8")]
    NotUtf8,
    #[error("a text field is longer than {0} bytes")]
    FieldTooLong(usize),
    #[error("invalid node id in message")]
    BadNodeId,
    #[error("unknown role code {0}")]
    BadRole(u8),
}

/// Why the hub refused an agent, sent in `Refused` and in connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum RefuseCode {
    /// The agent speaks a protocol version the hub does not.
    UnsupportedVersion = 1,
    /// The certificate's role may not connect as an agent.
    RoleNotAllowed = 2,
    /// The certificate was revoked while connected.
    Revoked = 3,
    /// A newer connection of the same node replaced this one.
    Replaced = 4,
    /// The hub's revocation list is stale; it refuses everyone until renewed.
    CrlStale = 5,
    /// The hub is shutting down.
    ShuttingDown = 6,
    /// The peer broke the protocol.
    ProtocolViolation = 7,
    /// Anything else, explained in the message.
    Other = 99,
}

impl RefuseCode {
    pub fn from_u16(v: u16) -> RefuseCode {
        match v {
            1 => RefuseCode::UnsupportedVersion,
            2 => RefuseCode::RoleNotAllowed,
            3 => RefuseCode::Revoked,
            4 => RefuseCode::Replaced,
            5 => RefuseCode::CrlStale,
            6 => RefuseCode::ShuttingDown,
            7 => RefuseCode::ProtocolViolation,
            _ => RefuseCode::Other,
        }
    }
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Agent → hub, first frame of the first stream.
    Hello { version: u16, software: String },
    /// Hub → agent: admitted, as the node the certificate names.
    Welcome {
        node: NodeId,
        role: Role,
        hub: NodeId,
        /// The hub's clock, milliseconds since the Unix epoch.
        hub_time_ms: i64,
    },
    /// Hub → agent: not admitted (or no longer), and why.
    Refused { code: RefuseCode, message: String },
}

const T_HELLO: u8 = 0x01;
const T_WELCOME: u8 = 0x02;
const T_REFUSED: u8 = 0x03;

/// Longest text field (a `u16` length prefix).
const MAX_STR: usize = u16::MAX as usize;

fn role_code(r: Role) -> u8 {
    match r {
        Role::Hub => 1,
        Role::Node => 2,
        Role::Supervisor => 3,
    }
}

fn role_from(c: u8) -> Result<Role, WireError> {
    match c {
        1 => Ok(Role::Hub),
        2 => Ok(Role::Node),
        3 => Ok(Role::Supervisor),
        other => Err(WireError::BadRole(other)),
    }
}

/// Append the frame for `msg` to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_PREFIX]);
    let mut w = Writer(out);
    match msg {
        Message::Hello { version, software } => {
            w.u8(T_HELLO);
            w.u16(*version);
            w.str(software);
        }
        Message::Welcome {
            node,
            role,
            hub,
            hub_time_ms,
        } => {
            w.u8(T_WELCOME);
            w.str(node.as_str());
            w.u8(role_code(*role));
            w.str(hub.as_str());
            w.i64(*hub_time_ms);
        }
        Message::Refused { code, message } => {
            w.u8(T_REFUSED);
            w.u16(*code as u16);
            w.str(message);
        }
    }
    let len = out.len() - start - LEN_PREFIX;
    // Messages we build are far below 4 GiB; saturate rather than wrap if not.
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    out[start..start + LEN_PREFIX].copy_from_slice(&len32.to_be_bytes());
}

/// Encode one message into a fresh buffer.
pub fn to_frame(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, &mut out);
    out
}

/// Read the length prefix of a frame: `Ok(None)` until 4 bytes are there.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, WireError> {
    let Some(prefix) = buf.get(..LEN_PREFIX) else {
        return Ok(None);
    };
    let mut b = [0u8; LEN_PREFIX];
    b.copy_from_slice(prefix);
    let len = u32::from_be_bytes(b) as usize;
    if len == 0 {
        return Err(WireError::Empty);
    }
    if len > MAX_FRAME_LEN {
        return Err(WireError::Oversize(len));
    }
    Ok(Some(len))
}

/// Decode one frame from the front of `buf`.
///
/// `Ok(None)`: more bytes are needed. `Ok(Some((msg, used)))`: a message and
/// the number of bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
    let Some(len) = frame_len(buf)? else {
        return Ok(None);
    };
    let Some(frame) = buf.get(LEN_PREFIX..LEN_PREFIX + len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(frame)?, LEN_PREFIX + len)))
}

/// Decode the part of a frame after its length prefix.
pub fn decode_body(frame: &[u8]) -> Result<Message, WireError> {
    let mut r = Reader { buf: frame, pos: 0 };
    let msg = match r.u8()? {
        T_HELLO => Message::Hello {
            version: r.u16()?,
            software: r.string()?,
        },
        T_WELCOME => Message::Welcome {
            node: r.node_id()?,
            role: role_from(r.u8()?)?,
            hub: r.node_id()?,
            hub_time_ms: r.i64()?,
        },
        T_REFUSED => Message::Refused {
            code: RefuseCode::from_u16(r.u16()?),
            message: r.string()?,
        },
        other => return Err(WireError::UnknownType(other)),
    };
    r.finish()?;
    Ok(msg)
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// Text longer than the field allows is cut at a character boundary:
    /// only free-form messages can be that long, and a cut message is better
    /// than a frame the peer refuses.
    fn str(&mut self, s: &str) {
        let mut end = s.len().min(MAX_STR);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u16(end as u16);
        self.0.extend_from_slice(&s.as_bytes()[..end]);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<String, WireError> {
        let n = self.u16()? as usize;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| WireError::NotUtf8)
    }
    fn node_id(&mut self) -> Result<NodeId, WireError> {
        NodeId::parse(&self.string()?).map_err(|_| WireError::BadNodeId)
    }
    fn finish(self) -> Result<(), WireError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            n => Err(WireError::TrailingBytes(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        vec![
            Message::Hello {
                version: PROTOCOL_VERSION,
                software: "gongwen-agent 0.1.0".into(),
            },
            Message::Welcome {
                node: NodeId::parse("harbin-gov").unwrap(),
                role: Role::Supervisor,
                hub: NodeId::parse("hub").unwrap(),
                hub_time_ms: 1_795_000_000_123,
            },
            Message::Refused {
                code: RefuseCode::Revoked,
                message: "证书已吊销".into(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in samples() {
            let f = to_frame(&m);
            assert_eq!(decode(&f).unwrap(), Some((m, f.len())));
        }
    }

    #[test]
    fn partial_frames_ask_for_more() {
        for m in samples() {
            let f = to_frame(&m);
            for cut in 0..f.len() {
                assert_eq!(decode(&f[..cut]).unwrap(), None, "cut at {cut}");
            }
        }
    }

    #[test]
    fn oversize_length_is_refused_before_the_body_arrives() {
        let mut f = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
        f.push(T_HELLO);
        assert_eq!(decode(&f), Err(WireError::Oversize(MAX_FRAME_LEN + 1)));
    }

    #[test]
    fn a_frame_cut_inside_a_field_is_truncated_not_a_panic() {
        let f = to_frame(&samples()[1]);
        // Claim a shorter frame than the fields need.
        let body = &f[LEN_PREFIX..f.len() - 3];
        assert_eq!(decode_body(body), Err(WireError::Truncated));
    }

    #[test]
    fn trailing_bytes_and_unknown_types_are_refused() {
        let mut body = to_frame(&samples()[0])[LEN_PREFIX..].to_vec();
        body.push(0);
        assert_eq!(decode_body(&body), Err(WireError::TrailingBytes(1)));
        assert_eq!(decode_body(&[0x7f]), Err(WireError::UnknownType(0x7f)));
        assert_eq!(decode(&[0, 0, 0, 0]), Err(WireError::Empty));
    }

    #[test]
    fn invalid_node_id_and_role_are_refused() {
        let mut body = vec![T_WELCOME];
        body.extend_from_slice(&3u16.to_be_bytes());
        body.extend_from_slice(b"../");
        assert_eq!(decode_body(&body), Err(WireError::BadNodeId));
        let mut body = vec![T_WELCOME, 0, 2, b'a', b'b', 9];
        body.extend_from_slice(&[0, 2, b'h', b'b']);
        body.extend_from_slice(&0i64.to_be_bytes());
        assert_eq!(decode_body(&body), Err(WireError::BadRole(9)));
    }

    #[test]
    fn decoder_survives_every_single_byte_corruption() {
        // A cheap stand-in for the fuzzer: no input may panic.
        for m in samples() {
            let f = to_frame(&m);
            for i in 0..f.len() {
                for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                    let mut g = f.clone();
                    g[i] = v;
                    let _ = decode(&g);
                }
            }
        }
    }

    #[test]
    fn overlong_text_is_cut_at_a_character_boundary() {
        let m = Message::Refused {
            code: RefuseCode::Other,
            message: "吊".repeat(30_000),
        };
        let f = to_frame(&m);
        let Some((Message::Refused { message, .. }, _)) = decode(&f).unwrap() else {
            panic!("not a Refused");
        };
        assert!(message.len() <= MAX_STR && message.chars().all(|c| c == '吊'));
    }
}
