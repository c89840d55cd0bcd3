//! Reading and writing whole messages on QUIC streams, with a deadline on
//! every read. The only place where wire frames meet sockets.

use std::time::Duration;

use crate::wire::{self, LEN_PREFIX, Message, WireError};

/// How long a peer may take to deliver one frame once we expect it.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a peer may take to answer when the answer waits on work over a
/// whole document: before a transfer, re-reading and hashing what an
/// earlier attempt kept (to resume from it); after one, checking and
/// syncing the document. For a 4 GiB document on a cold disk that is far
/// longer than [`READ_TIMEOUT`]; a peer that is gone is found by QUIC's idle
/// timeout instead.
pub const DOCUMENT_WORK_TIMEOUT: Duration = Duration::from_secs(600);

/// How often a transfer of `len` bytes is made durable (fsync and a
/// recorded offset), so that a broken transfer resumes from there: an
/// eighth of it, at least 8 MiB and at most 128 MiB. A resume re-sends at
/// most about an eighth; a large transfer pays for only eight checkpoints.
pub fn checkpoint_interval(len: u64) -> u64 {
    (len / 8).clamp(8 << 20, 128 << 20)
}

/// Errors moving a message over a stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    #[error("the peer sent nothing for {0:?}")]
    Timeout(Duration),
    #[error("the stream ended")]
    Finished,
    #[error("reading from the peer failed: {0}")]
    Read(#[from] quinn::ReadExactError),
    #[error("writing to the peer failed: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("the peer sent an invalid frame: {0}")]
    Wire(#[from] WireError),
    #[error("the peer broke off an answer in parts with a {0}")]
    BrokenAnswer(&'static str),
    #[error("no stream could be opened: {0}")]
    Open(#[from] quinn::ConnectionError),
}

/// Read one message, giving up after `timeout`.
pub async fn read_message(
    recv: &mut quinn::RecvStream,
    timeout: Duration,
) -> Result<Message, StreamError> {
    read_message_within(recv, timeout, wire::MAX_FRAME_LEN).await
}

/// [`read_message`] for a frame of at most `max_len` bytes; a longer one
/// is refused by its length prefix, before anything is allocated for it.
pub async fn read_message_within(
    recv: &mut quinn::RecvStream,
    timeout: Duration,
    max_len: usize,
) -> Result<Message, StreamError> {
    match tokio::time::timeout(timeout, read_message_inner(recv, max_len)).await {
        Ok(r) => r,
        Err(_) => Err(StreamError::Timeout(timeout)),
    }
}

async fn read_message_inner(
    recv: &mut quinn::RecvStream,
    max_len: usize,
) -> Result<Message, StreamError> {
    let mut prefix = [0u8; LEN_PREFIX];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Err(StreamError::Finished),
        Err(e) => return Err(e.into()),
    }
    // frame_len checks the bound before anything is allocated.
    let len = wire::frame_len_within(&prefix, max_len)?.ok_or(WireError::Truncated)?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await?;
    Ok(wire::decode_body(&body)?)
}

/// Write one message.
pub async fn write_message(send: &mut quinn::SendStream, msg: &Message) -> Result<(), StreamError> {
    send.write_all(&wire::to_frame(msg)).await?;
    Ok(())
}

/// One request on a stream of its own and its answer: the exchange every
/// push and every agent request is (see [`crate::wire`]'s table). The
/// answer must come within `timeout`; a JSON answer in parts is read whole.
pub async fn request(
    conn: &quinn::Connection,
    msg: &Message,
    timeout: Duration,
) -> Result<Message, StreamError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    write_message(&mut send, msg).await?;
    let _ = send.finish();
    read_answer(&mut recv, timeout).await
}

/// [`request`] for a request whose only good answer is `Ok`: the peer's
/// refusal or another answer is an error, in words.
pub async fn request_ok(
    conn: &quinn::Connection,
    msg: &Message,
    timeout: Duration,
) -> Result<(), String> {
    match request(conn, msg, timeout).await {
        Ok(Message::Ok) => Ok(()),
        Ok(Message::Error { message, .. }) => Err(message),
        Ok(other) => Err(format!("unexpected answer: {}", other.describe())),
        Err(e) => Err(e.to_string()),
    }
}

/// Bytes of JSON in one `JsonPart`.
pub const JSON_PIECE: usize = 512 * 1024;
/// Largest JSON answer read in parts (an overdue list of a whole country
/// is a few tens of MiB).
pub const MAX_JSON_ANSWER: usize = 256 << 20;

/// The frames of a JSON answer: one `Json` when it fits in a frame (or the
/// peer cannot take parts), else `JsonPart`s and a last `Json`. Pure.
pub fn json_frames(body: Vec<u8>, in_parts: bool) -> Vec<Message> {
    if !in_parts || body.len() <= JSON_PIECE {
        return vec![Message::Json { body }];
    }
    let mut pieces: Vec<Message> = body
        .chunks(JSON_PIECE)
        .map(|c| Message::JsonPart { body: c.to_vec() })
        .collect();
    if let Some(Message::JsonPart { body }) = pieces.pop() {
        pieces.push(Message::Json { body });
    }
    pieces
}

/// Read an answer: one message, except that a JSON answer in parts is read
/// whole (each part within `timeout`, all of them at most
/// [`MAX_JSON_ANSWER`] bytes) and given as one `Json`, and a lookup's
/// answer in parts is joined into one `Directory`
/// ([`crate::lookup::Joined`]).
pub async fn read_answer(
    recv: &mut quinn::RecvStream,
    timeout: Duration,
) -> Result<Message, StreamError> {
    let mut gathered: Vec<u8> = Vec::new();
    let mut looked_up: Option<crate::lookup::Joined> = None;
    loop {
        match read_message(recv, timeout).await? {
            Message::DirectoryPart {
                resolved,
                unknown,
                bindings,
            } if gathered.is_empty() => {
                looked_up
                    .get_or_insert_default()
                    .add(resolved, unknown, bindings)
                    .map_err(|len| {
                        StreamError::Wire(WireError::Oversize {
                            len,
                            max: crate::lookup::MAX_JOINED,
                        })
                    })?;
            }
            Message::Directory {
                resolved,
                unknown,
                bindings,
            } if looked_up.is_some() => {
                let mut joined = looked_up.take().unwrap_or_default();
                joined.add(resolved, unknown, bindings).map_err(|len| {
                    StreamError::Wire(WireError::Oversize {
                        len,
                        max: crate::lookup::MAX_JOINED,
                    })
                })?;
                let whole = joined.finish();
                return Ok(Message::Directory {
                    resolved: whole.resolved,
                    unknown: whole.unknown,
                    bindings: whole.bindings,
                });
            }
            other if looked_up.is_some() => {
                return Err(StreamError::BrokenAnswer(other.kind()));
            }
            Message::JsonPart { body } => {
                if gathered.len() + body.len() > MAX_JSON_ANSWER {
                    return Err(StreamError::Wire(WireError::Oversize {
                        len: gathered.len() + body.len(),
                        max: MAX_JSON_ANSWER,
                    }));
                }
                gathered.extend_from_slice(&body);
            }
            Message::Json { body } if !gathered.is_empty() => {
                if gathered.len() + body.len() > MAX_JSON_ANSWER {
                    return Err(StreamError::Wire(WireError::Oversize {
                        len: gathered.len() + body.len(),
                        max: MAX_JSON_ANSWER,
                    }));
                }
                gathered.extend_from_slice(&body);
                return Ok(Message::Json { body: gathered });
            }
            other if !gathered.is_empty() => {
                return Err(StreamError::BrokenAnswer(other.kind()));
            }
            other => return Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_json_answer_goes_in_parts_that_join_to_the_whole() {
        let body: Vec<u8> = (0..3 * JSON_PIECE + 17).map(|i| (i % 251) as u8).collect();
        let frames = json_frames(body.clone(), true);
        assert_eq!(frames.len(), 4);
        let mut joined = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            match f {
                Message::JsonPart { body } if i < 3 => joined.extend_from_slice(body),
                Message::Json { body } if i == 3 => joined.extend_from_slice(body),
                other => panic!("frame {i}: {}", other.kind()),
            }
            assert!(wire::to_frame(f).len() <= wire::MAX_FRAME_LEN);
        }
        assert_eq!(joined, body);
        // A small one, or a peer that cannot take parts: one frame.
        assert_eq!(json_frames(b"[]".to_vec(), true).len(), 1);
        assert_eq!(json_frames(body, false).len(), 1);
    }

    #[test]
    fn checkpoints_scale_with_the_transfer_within_bounds() {
        assert_eq!(checkpoint_interval(1 << 20), 8 << 20);
        assert_eq!(checkpoint_interval(64 << 20), 8 << 20);
        assert_eq!(checkpoint_interval(256 << 20), 32 << 20);
        assert_eq!(checkpoint_interval(1 << 30), 128 << 20);
        assert_eq!(checkpoint_interval(8 << 30), 128 << 20);
    }
}
