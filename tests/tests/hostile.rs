//! Hostile peers: a unit with a valid certificate that misbehaves on the
//! wire must get a clear refusal or be cut off, and must not hold up the
//! other units.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use gongwen_common::Role;
use gongwen_common::stream::{READ_TIMEOUT, read_message};
use gongwen_common::tls::HUB_STREAMS_PER_UNIT;
use gongwen_common::wire::{self, ErrorCode, Message, RefuseCode};
use gongwen_tests::flood::rss_kib;
use gongwen_tests::raw::{RawAgent, connect_without_hello};
use gongwen_tests::{HubProcess, Net, RunningAgent, RunningHub, bounded, wait_inbox};

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

fn bytes_of(v: Vec<u8>) -> std::sync::Arc<[u8]> {
    v.into()
}

/// The hub's log as it is now, and its longest line.
fn hub_log(hub: &HubProcess) -> (String, usize) {
    let log = std::fs::read_to_string(&hub.log).unwrap();
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    (log, longest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_or_unexpected_first_frame_is_refused_with_a_short_log_line_and_never_echoed() {
    let net = Net::new();
    net.issue("daqing-gov", Role::Node);
    let hub = HubProcess::start(&net, "127.0.0.1:0".parse().unwrap()).await;
    let dir = net.path().join("daqing-gov");
    // A 1 MiB first frame, and then many small unexpected ones, each on a
    // connection of its own; the bytes are a marker the log must not show.
    let big = Message::PublishKey {
        binding: vec![b'M'; (1 << 20) - 16],
    };
    let small = Message::PublishKey {
        binding: vec![b'M'; 3000],
    };
    let mut frames = vec![wire::to_frame(&big)];
    frames.extend((0..20).map(|_| wire::to_frame(&small)));
    for frame in &frames {
        let (_endpoint, conns) = connect_without_hello(&dir, "daqing-gov", hub.addr, 1).await;
        let conn = &conns[0];
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        // The hub may close before all of it is taken.
        let _ = send.write_all(frame).await;
        let why = bounded("the hub closing the connection", conn.closed()).await;
        match why {
            quinn::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(
                    RefuseCode::from_u16(u16::try_from(c.error_code.into_inner()).unwrap()),
                    RefuseCode::ProtocolViolation
                );
                assert!(
                    c.reason.len() < 64,
                    "the refusal carries {} bytes",
                    c.reason.len()
                );
            }
            other => panic!("expected the hub to refuse, got {other}"),
        }
    }
    let (log, longest) = hub_log(&hub);
    assert!(longest < 1000, "a log line of {longest} bytes");
    assert!(!log.contains("MMMMMMMM"), "the hub logged the peer's bytes");
    assert!(
        log.contains("larger than the 4096-byte limit"),
        "the oversize hello is not named in the log:\n{log}"
    );
    let described = format!(
        "expected hello, got a PublishKey message of {} bytes",
        wire::to_frame(&small).len()
    );
    assert!(
        log.contains(&described),
        "the unexpected frame is not described by kind and length:\n{log}"
    );
    let warned = log.matches("expected hello, got").count();
    assert!(
        warned <= gongwen_hub::state::loglimit::PER_WINDOW as usize,
        "{warned} warnings for 20 bad hellos from one unit in a few seconds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_unadmitted_connections_of_one_unit_are_turned_away_with_little_memory() {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov", "daqing-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = HubProcess::start(&net, "127.0.0.1:0".parse().unwrap()).await;
    let rss_before = rss_kib(hub.pid());
    let dir = net.path().join("daqing-gov");
    let (_endpoint, conns) = connect_without_hello(&dir, "daqing-gov", hub.addr, 200).await;
    // Each announces a hello of 1 MiB and sends as much of it as the hub
    // lets it, all at once.
    let mut frame = ((1u32 << 20) - 8).to_be_bytes().to_vec();
    frame.extend(std::iter::repeat_n(b'M', (1 << 20) - 8));
    let frame = bytes_of(frame);
    let mut sending = tokio::task::JoinSet::new();
    for conn in conns.clone() {
        let frame = frame.clone();
        sending.spawn(async move {
            if let Ok((mut send, recv)) = conn.open_bi().await {
                let _ = tokio::time::timeout(Duration::from_secs(2), send.write_all(&frame)).await;
                Some((send, recv))
            } else {
                None
            }
        });
    }
    let mut streams = Vec::new();
    while let Some(s) = sending.join_next().await {
        streams.push(s.unwrap());
    }
    let rss_during = rss_kib(hub.pid());
    for conn in &conns {
        bounded("the hub turning a connection away", conn.closed()).await;
    }
    let rss_after = rss_kib(hub.pid());
    eprintln!(
        "200 unadmitted connections of one unit: hub RSS {rss_before} KiB before, {rss_during} KiB with them open, {rss_after} KiB after"
    );
    let grew = rss_during.max(rss_after).saturating_sub(rss_before);
    assert!(grew < 16 * 1024, "the hub grew by {grew} KiB");
    // The others are not held up.
    let _prov = net.start_agent("prov-gov", hub.addr);
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_units(2).await;
    net.drop_file("prov-gov", "harbin-gov", "通知.txt", b"unaffected");
    wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
}
