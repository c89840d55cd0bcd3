//! A lookup's answer in pieces: a group of thousands of members, with a
//! key binding of about 700 bytes each, does not fit in one frame (1 MiB
//! held about 1,540 members). The hub cuts the answer into `DirectoryPart`
//! frames and a last `Directory` ([`pieces`]); the agent joins them
//! ([`Joined`]). Pure functions over values.

use std::collections::HashSet;

use crate::id::NodeId;
use crate::wire::{MAX_ITEMS, Message, Resolved};

/// Bytes of one piece, at most (well below a frame's 1 MiB).
pub const PIECE: usize = 512 * 1024;
/// The most bytes of bindings, names and members a joined answer may hold
/// (a lookup of a country's every unit is a few hundred MiB at most).
pub const MAX_JOINED: usize = 256 << 20;

/// One lookup answer, whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub resolved: Vec<Resolved>,
    pub unknown: Vec<String>,
    pub bindings: Vec<Vec<u8>>,
}

/// A piece being filled: what it holds, and its size on the wire.
#[derive(Default)]
struct Piece {
    answer: Answer,
    bytes: usize,
    members: usize,
}

impl Piece {
    /// Whether `bytes` more, one more item of a list of `len`, still fit.
    fn fits(&self, bytes: usize, len: usize) -> bool {
        self.bytes + bytes <= PIECE && len < MAX_ITEMS
    }
}

/// Bytes of `a` on the wire, about (a few bytes of framing aside).
fn size(a: &Answer) -> usize {
    a.resolved
        .iter()
        .map(|r| {
            4 + r.name.len()
                + r.members
                    .iter()
                    .map(|m| 2 + m.as_str().len())
                    .sum::<usize>()
        })
        .sum::<usize>()
        + a.unknown.iter().map(|u| 2 + u.len()).sum::<usize>()
        + a.bindings.iter().map(|b| 4 + b.len()).sum::<usize>()
}

/// Whether `a` goes whole in one frame of at most `bytes`: every list
/// within its item count too (a frame's lists are cut at [`MAX_ITEMS`]).
fn fits_one(a: &Answer, bytes: usize) -> bool {
    size(a) <= bytes
        && a.resolved.len() <= MAX_ITEMS
        && a.resolved.iter().all(|r| r.members.len() <= MAX_ITEMS)
        && a.unknown.len() <= MAX_ITEMS
        && a.bindings.len() <= MAX_ITEMS
}

/// The frames of `answer`: one `Directory` when it fits in one piece; else
/// `DirectoryPart`s and a last `Directory`, a group's members going on
/// from one piece to the next under its name. A peer that cannot take
/// parts gets one frame if it fits one, and else an error in words: a
/// frame would cut its lists, and a recipient list cut short is a
/// document that silently misses units.
pub fn pieces(answer: Answer, in_parts: bool) -> Vec<Message> {
    if fits_one(&answer, PIECE) {
        return vec![whole(answer)];
    }
    if !in_parts {
        if fits_one(&answer, crate::wire::MAX_BLOB) {
            return vec![whole(answer)];
        }
        return vec![Message::Error {
            code: crate::wire::ErrorCode::TooLarge,
            message: format!(
                "the answer names {} units, more than one message to this agent's version can hold: upgrade the agent (protocol version 6 takes it in parts)",
                answer.bindings.len()
            ),
        }];
    }
    let mut done: Vec<Answer> = Vec::new();
    let mut cur = Piece::default();
    let mut next = |cur: &mut Piece| done.push(std::mem::take(cur).answer);
    for r in answer.resolved {
        let mut members = r.members.into_iter().peekable();
        loop {
            if !cur.fits(4 + r.name.len(), cur.answer.resolved.len()) {
                next(&mut cur);
            }
            cur.bytes += 4 + r.name.len();
            let mut chunk = Vec::new();
            while let Some(m) = members.peek() {
                let b = 2 + m.as_str().len();
                if !cur.fits(b, cur.members) {
                    break;
                }
                cur.bytes += b;
                cur.members += 1;
                chunk.extend(members.next());
            }
            cur.answer.resolved.push(Resolved {
                name: r.name.clone(),
                members: chunk,
            });
            if members.peek().is_none() {
                break;
            }
            next(&mut cur);
        }
    }
    for u in answer.unknown {
        if !cur.fits(2 + u.len(), cur.answer.unknown.len()) {
            next(&mut cur);
        }
        cur.bytes += 2 + u.len();
        cur.answer.unknown.push(u);
    }
    for b in answer.bindings {
        if !cur.fits(4 + b.len(), cur.answer.bindings.len()) {
            next(&mut cur);
        }
        cur.bytes += 4 + b.len();
        cur.answer.bindings.push(b);
    }
    next(&mut cur);
    let last = done.len() - 1;
    done.into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i == last {
                whole(a)
            } else {
                Message::DirectoryPart {
                    resolved: a.resolved,
                    unknown: a.unknown,
                    bindings: a.bindings,
                }
            }
        })
        .collect()
}

fn whole(a: Answer) -> Message {
    Message::Directory {
        resolved: a.resolved,
        unknown: a.unknown,
        bindings: a.bindings,
    }
}

/// Pieces read so far.
#[derive(Debug, Default)]
pub struct Joined {
    answer: Answer,
    bytes: usize,
}

impl Joined {
    /// Add one piece; `Err` with the size when the whole grew past
    /// [`MAX_JOINED`].
    pub fn add(
        &mut self,
        resolved: Vec<Resolved>,
        unknown: Vec<String>,
        bindings: Vec<Vec<u8>>,
    ) -> Result<(), usize> {
        self.bytes += resolved
            .iter()
            .map(|r| r.name.len() + 24 * r.members.len())
            .sum::<usize>()
            + unknown.iter().map(String::len).sum::<usize>()
            + bindings.iter().map(Vec::len).sum::<usize>();
        if self.bytes > MAX_JOINED {
            return Err(self.bytes);
        }
        self.answer.resolved.extend(resolved);
        self.answer.unknown.extend(unknown);
        self.answer.bindings.extend(bindings);
        Ok(())
    }

    /// The whole answer: a name that came in several pieces once, with its
    /// members in order and without repeats.
    pub fn finish(self) -> Answer {
        let mut resolved: Vec<Resolved> = Vec::new();
        let mut at: std::collections::HashMap<String, (usize, HashSet<NodeId>)> =
            std::collections::HashMap::new();
        for r in self.answer.resolved {
            match at.get_mut(&r.name) {
                Some((i, seen)) => {
                    for m in r.members {
                        if seen.insert(m.clone()) {
                            resolved[*i].members.push(m);
                        }
                    }
                }
                None => {
                    let seen = r.members.iter().cloned().collect();
                    at.insert(r.name.clone(), (resolved.len(), seen));
                    resolved.push(r);
                }
            }
        }
        Answer {
            resolved,
            ..self.answer
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::{MAX_FRAME_LEN, decode, to_frame};

    fn answer(members: usize, binding_len: usize) -> Answer {
        let ids: Vec<NodeId> = (0..members)
            .map(|i| NodeId::parse(&format!("county-{i:05}")).unwrap())
            .collect();
        Answer {
            resolved: vec![
                Resolved {
                    name: "prov-gov".into(),
                    members: vec![NodeId::parse("prov-gov").unwrap()],
                },
                Resolved {
                    name: "all-counties".into(),
                    members: ids,
                },
            ],
            unknown: vec!["nowhere".into()],
            bindings: (0..members + 1)
                .map(|i| vec![(i % 251) as u8; binding_len])
                .collect(),
        }
    }

    fn join(frames: &[Message]) -> Answer {
        let mut j = Joined::default();
        for (i, f) in frames.iter().enumerate() {
            let last = i + 1 == frames.len();
            let (Message::DirectoryPart {
                resolved,
                unknown,
                bindings,
            }
            | Message::Directory {
                resolved,
                unknown,
                bindings,
            }) = f.clone()
            else {
                panic!("frame {i}: {}", f.kind())
            };
            assert_eq!(matches!(f, Message::Directory { .. }), last, "frame {i}");
            // Every piece is a valid frame that reads back as sent.
            let bytes = to_frame(f);
            assert!(
                bytes.len() <= MAX_FRAME_LEN,
                "frame {i}: {} bytes",
                bytes.len()
            );
            assert_eq!(decode(&bytes).unwrap().unwrap().0, *f);
            j.add(resolved, unknown, bindings).unwrap();
        }
        j.finish()
    }

    #[test]
    fn a_group_of_ten_thousand_goes_in_pieces_that_join_to_the_whole() {
        let whole = answer(10_000, 730);
        let frames = pieces(whole.clone(), true);
        assert!(frames.len() > 10, "{} frames", frames.len());
        assert_eq!(join(&frames), whole);
    }

    #[test]
    fn many_members_with_small_bindings_keep_each_list_within_its_item_bound() {
        // 20,000 members at a few bytes each: the item count, not the
        // bytes, cuts the pieces.
        let whole = answer(20_000, 1);
        let frames = pieces(whole.clone(), true);
        assert_eq!(join(&frames), whole);
    }

    #[test]
    fn a_small_answer_goes_whole_and_an_older_agent_never_gets_a_list_cut_short() {
        assert_eq!(pieces(answer(10, 700), true).len(), 1);
        assert_eq!(pieces(answer(1_000, 700), false).len(), 1);
        for too_many in [answer(3_000, 700), answer(5_000, 1)] {
            let frames = pieces(too_many, false);
            assert!(
                matches!(&frames[..], [Message::Error { message, .. }] if message.contains("upgrade the agent")),
                "{frames:?}"
            );
        }
    }

    #[test]
    fn a_name_asked_twice_joins_without_repeating_members() {
        let mut j = Joined::default();
        let r = |ids: &[&str]| Resolved {
            name: "cities".into(),
            members: ids.iter().map(|i| NodeId::parse(i).unwrap()).collect(),
        };
        j.add(vec![r(&["a-gov", "b-gov"])], vec![], vec![]).unwrap();
        j.add(vec![r(&["b-gov", "c-gov"])], vec![], vec![]).unwrap();
        let a = j.finish();
        assert_eq!(a.resolved, vec![r(&["a-gov", "b-gov", "c-gov"])]);
    }

    #[test]
    fn a_joined_answer_has_a_bound() {
        let mut j = Joined::default();
        let big = vec![0u8; 1 << 20];
        let mut result = Ok(());
        for _ in 0..300 {
            result = j.add(vec![], vec![], vec![big.clone()]);
            if result.is_err() {
                break;
            }
        }
        assert!(result.is_err());
    }
}
