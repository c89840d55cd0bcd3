//! Hostile peers: a unit with a valid certificate that misbehaves on the
//! wire must get a clear refusal or be cut off, and must not hold up the
//! other units.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use gongwen_common::Role;
use gongwen_common::stream::{READ_TIMEOUT, read_message};
use gongwen_common::tls::HUB_STREAMS_PER_UNIT;
use gongwen_common::wire::{ErrorCode, Message, RefuseCode};
use gongwen_tests::raw::RawAgent;
use gongwen_tests::{Net, RunningAgent, RunningHub, bounded, wait_inbox};

/// Three units; daqing-gov is the misbehaving one, the other two exchange
/// a document to show they are unaffected.
async fn setup() -> (Net, RunningHub, RawAgent) {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov", "daqing-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let raw = RawAgent::connect(&net.path().join("daqing-gov"), "daqing-gov", hub.addr).await;
    (net, hub, raw)
}

async fn honest_units_still_exchange(net: &Net, hub: &RunningHub) -> (RunningAgent, RunningAgent) {
    let prov = net.start_agent("prov-gov", hub.addr);
    let harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    net.drop_file("prov-gov", "harbin-gov", "通知.txt", b"unaffected");
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(
        std::fs::read(docs[0].join("通知.txt")).unwrap(),
        b"unaffected"
    );
    (prov, harbin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_frame_is_refused_by_its_length_before_any_body_arrives() {
    let (net, hub, raw) = setup().await;
    let (mut send, mut recv) = raw.conn.open_bi().await.unwrap();
    // A length prefix of 4 GiB and no body: the refusal must not wait for
    // (or make room for) the body.
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let answer = bounded(
        "the hub's refusal",
        read_message(&mut recv, Duration::from_secs(5)),
    )
    .await
    .unwrap();
    match answer {
        Message::Error { code, message } => {
            assert_eq!(code, ErrorCode::BadRequest);
            assert!(message.contains("larger than"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // One bad frame is an error, not a reason to drop the unit.
    assert!(raw.conn.close_reason().is_none());
    honest_units_still_exchange(&net, &hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_flooding_invalid_frames_is_cut_off_and_the_others_are_not() {
    let (net, hub, raw) = setup().await;
    let mut refused = 0;
    for _ in 0..100 {
        let Ok((mut send, mut recv)) = raw.conn.open_bi().await else {
            break;
        };
        // A 4-byte frame of an unknown message type.
        if send
            .write_all(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])
            .await
            .is_err()
        {
            break;
        }
        let _ = send.finish();
        match read_message(&mut recv, READ_TIMEOUT).await {
            Ok(Message::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::BadRequest);
                refused += 1;
            }
            _ => break,
        }
    }
    let reason = bounded("the hub closing the flood", raw.conn.closed()).await;
    match reason {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(
                RefuseCode::from_u16(u16::try_from(c.error_code.into_inner()).unwrap()),
                RefuseCode::ProtocolViolation
            );
        }
        other => panic!("expected the hub to close the connection, got {other}"),
    }
    assert!(
        (1..100).contains(&refused),
        "{refused} invalid frames answered before the cut"
    );
    honest_units_still_exchange(&net, &hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_never_finish_a_request_are_limited_dropped_and_hold_up_no_one() {
    let (net, hub, raw) = setup().await;
    // Slowloris: every stream the hub allows, each with one byte of a
    // length prefix and then nothing.
    let mut stalled = Vec::new();
    for _ in 0..HUB_STREAMS_PER_UNIT - 1 {
        let (mut send, recv) = raw.conn.open_bi().await.unwrap();
        send.write_all(&[0]).await.unwrap();
        stalled.push((send, recv));
    }
    let started = Instant::now();
    // The hub's stream limit holds: one more stream cannot be opened now.
    let extra = tokio::time::timeout(Duration::from_millis(500), async {
        let (mut send, _recv) = raw.conn.open_bi().await.unwrap();
        send.write_all(&[0]).await.unwrap();
        let (mut send, recv) = raw.conn.open_bi().await.unwrap();
        send.write_all(&[0]).await.unwrap();
        recv
    })
    .await;
    assert!(
        extra.is_err(),
        "more than {HUB_STREAMS_PER_UNIT} streams were allowed"
    );

    // Meanwhile the other units exchange documents as usual.
    let _agents = honest_units_still_exchange(&net, &hub).await;

    // Each stalled request is given up by the hub after its read timeout.
    for (_send, mut recv) in stalled {
        let end = bounded(
            "the hub giving up a stalled request",
            read_message(&mut recv, READ_TIMEOUT * 2),
        )
        .await;
        assert!(end.is_err(), "a stalled request got an answer: {end:?}");
    }
    assert!(
        started.elapsed() < READ_TIMEOUT * 2,
        "stalled streams were held for {:?}",
        started.elapsed()
    );
    // The connection itself stays: a slow unit is not cut off for being slow.
    assert!(raw.conn.close_reason().is_none());
}
