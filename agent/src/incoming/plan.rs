//! The decisions of receiving a document, as plain functions over values:
//! how big a delivery may be, where a broken download resumes, what a
//! failed check means, and what the end of the content stream asks of us.
//! [`crate::incoming::receive`] carries them out.

use gongwen_common::envelope::{CHUNK_LEN, SEALED_CHUNK_LEN};
use gongwen_common::transfer::StreamEnd;
use gongwen_common::wire::ErrorCode;

/// The most content a delivery may announce: what a document of the
/// largest size this unit takes encrypts to (a tag per chunk), with room
/// to spare, never more.
pub fn max_content_len(max_document_size: u64) -> u64 {
    max_document_size.saturating_add(max_document_size / 64 + 1024)
}

/// A download's checkpoint as the offset file keeps it: the offset, a
/// space, and the digest of the files so far.
pub fn parse_checkpoint(text: &str) -> Option<(u64, String)> {
    let (at, digest) = text.trim().split_once(' ')?;
    if digest.is_empty() || digest.contains(' ') {
        return None;
    }
    Some((at.parse::<u64>().ok()?, digest.to_owned()))
}

/// Where a download resumes from a checkpoint at `at` (content bytes) of
/// `content_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The first chunk still to come.
    pub chunk: u64,
    /// How many plaintext bytes the kept files already hold.
    pub plain: u64,
}

/// A checkpoint counts only where one can be: after a whole sealed chunk,
/// inside the content. Anything else (none, the start, mid-chunk, at or
/// past the end) starts over.
pub fn resume_point(at: u64, content_len: u64) -> Option<Resume> {
    if at == 0 || !at.is_multiple_of(SEALED_CHUNK_LEN) || at >= content_len {
        return None;
    }
    let chunk = at / SEALED_CHUNK_LEN;
    Some(Resume {
        chunk,
        plain: chunk * CHUNK_LEN as u64,
    })
}

/// What a document that failed a check becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedCheck {
    /// Its fault (altered, forged, not for us): quarantined, with a signed
    /// `quarantined` receipt.
    Quarantine,
    /// Not its fault (its signer's revocation status cannot be judged
    /// now): refused for now, and the hub tries again.
    NotNow,
}

pub fn failed_check(transient: bool) -> FailedCheck {
    if transient {
        FailedCheck::NotNow
    } else {
        FailedCheck::Quarantine
    }
}

/// What the end of the content stream asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterStream {
    /// All of it arrived: check it and file it.
    File,
    /// Keep what was made durable; the hub tries again (from the
    /// checkpoint).
    KeepForRetry,
    /// Refuse the delivery with this code and message.
    Refuse(ErrorCode, &'static str),
    /// Writing it here failed: tell the hub we cannot store it now.
    CannotStore,
}

/// `written`: whether writing what arrived succeeded.
pub fn after_stream(
    end: &StreamEnd,
    received: u64,
    content_len: u64,
    written: bool,
) -> AfterStream {
    match end {
        StreamEnd::TooLong => {
            AfterStream::Refuse(ErrorCode::ContentMismatch, "more content than announced")
        }
        StreamEnd::Stalled | StreamEnd::Broken(_) => AfterStream::KeepForRetry,
        StreamEnd::Finished | StreamEnd::WriterGone if !written => AfterStream::CannotStore,
        StreamEnd::Finished | StreamEnd::WriterGone if received == content_len => AfterStream::File,
        StreamEnd::Finished | StreamEnd::WriterGone => AfterStream::KeepForRetry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_may_be_a_little_larger_than_the_largest_document_never_much() {
        let max = 100 << 20;
        assert!(max_content_len(max) > max);
        assert!(max_content_len(max) < max + max / 32);
        assert_eq!(max_content_len(u64::MAX), u64::MAX);
    }

    #[test]
    fn a_checkpoint_reads_back_from_its_file() {
        assert_eq!(
            parse_checkpoint("1048576 ab12\n"),
            Some((1_048_576, "ab12".to_owned()))
        );
    }

    #[test]
    fn a_damaged_checkpoint_is_no_checkpoint() {
        for text in ["", "1048576", "x ab12", "-1 ab12", "1048576 ", "1 a b"] {
            assert_eq!(parse_checkpoint(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_download_resumes_only_after_a_whole_chunk_inside_the_content() {
        let len = 10 * SEALED_CHUNK_LEN + 5;
        assert_eq!(
            resume_point(3 * SEALED_CHUNK_LEN, len),
            Some(Resume {
                chunk: 3,
                plain: 3 * CHUNK_LEN as u64
            })
        );
        assert_eq!(resume_point(0, len), None, "the start is starting over");
        assert_eq!(resume_point(SEALED_CHUNK_LEN + 1, len), None, "mid-chunk");
    }

    #[test]
    fn a_checkpoint_at_or_past_the_end_starts_over() {
        let len = 4 * SEALED_CHUNK_LEN;
        assert_eq!(resume_point(len, len), None);
        assert_eq!(resume_point(8 * SEALED_CHUNK_LEN, len), None);
    }

    #[test]
    fn only_a_transient_failure_is_refused_for_now() {
        assert_eq!(failed_check(true), FailedCheck::NotNow);
        assert_eq!(failed_check(false), FailedCheck::Quarantine);
    }

    #[test]
    fn a_whole_stream_is_filed_and_a_short_one_kept_for_a_retry() {
        assert_eq!(
            after_stream(&StreamEnd::Finished, 10, 10, true),
            AfterStream::File
        );
        assert_eq!(
            after_stream(&StreamEnd::Finished, 9, 10, true),
            AfterStream::KeepForRetry
        );
    }

    #[test]
    fn a_broken_or_stalled_stream_keeps_what_was_made_durable() {
        assert_eq!(
            after_stream(&StreamEnd::Stalled, 3, 10, true),
            AfterStream::KeepForRetry
        );
        assert_eq!(
            after_stream(&StreamEnd::Broken("reset".into()), 3, 10, false),
            AfterStream::KeepForRetry,
            "what was made durable stays for the retry"
        );
    }

    #[test]
    fn a_write_that_failed_is_a_refusal_for_now_even_when_all_arrived() {
        for end in [StreamEnd::Finished, StreamEnd::WriterGone] {
            assert_eq!(after_stream(&end, 10, 10, false), AfterStream::CannotStore);
        }
    }

    #[test]
    fn more_content_than_announced_is_refused() {
        assert!(matches!(
            after_stream(&StreamEnd::TooLong, 11, 10, true),
            AfterStream::Refuse(ErrorCode::ContentMismatch, _)
        ));
    }
}
