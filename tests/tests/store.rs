//! One suite for the hub's store, run against both backends: the embedded
//! store (redb, spool folder, audit.log) and PostgreSQL (a throwaway
//! cluster per test, started by the test). What a hub relies on — queues
//! in urgency order, receipts recorded once and forwarded once, answers,
//! recall, escalation steps that run once, content streamed in and out and
//! resumed, the audit chain — must hold the same on both. At the end, what
//! only a shared store must do: two hubs on one database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use gongwen_certs::{Ca, IssueRequest, Validity};
use gongwen_common::config::{EscalationAction, EscalationStep, StoreConfig};
use gongwen_common::envelope::Urgency;
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::signed::Signer;
use gongwen_common::transfer::Batches;
use gongwen_common::{DocId, NodeId, Role, pki};
use gongwen_hub::rules::lifecycle::DeliveryState;
use gongwen_hub::store::{
    Accept, Delivery, DocRecord, Push, SharedStore, Store, Write, embedded::Embedded,
    postgres::Postgres,
};
use gongwen_tests::pg;

fn id(s: &str) -> NodeId {
    NodeId::parse(s).unwrap()
}

/// Real signers from a throwaway CA: the audit chain holds real signed
/// receipts.
struct Units {
    _dir: tempfile::TempDir,
    hub: Signer,
    harbin: Signer,
    daqing: Signer,
}

fn units() -> Units {
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut ca = Ca::init(&dir.path().join("ca"), "test CA", now, 365, 30).unwrap();
    let mut signer = |name: &str, role| {
        let req = IssueRequest {
            id: id(name),
            role,
            name: None,
            dns: Vec::new(),
            ips: Vec::new(),
            validity: Validity::days_from(now, 30),
            renew: true,
        };
        let issued = ca.issue(&req, now).unwrap();
        let out = dir.path().join(name);
        ca.write_issued(&out, &id(name), &issued).unwrap();
        let chain = pki::load_certs(&out.join(format!("{name}.crt"))).unwrap();
        let key = pki::load_private_key(&out.join(format!("{name}.key"))).unwrap();
        Signer::new(&key, chain[0].clone()).unwrap()
    };
    let hub = signer("hub", Role::Hub);
    let harbin = signer("harbin-gov", Role::Node);
    let daqing = signer("daqing-gov", Role::Node);
    Units {
        _dir: dir,
        hub,
        harbin,
        daqing,
    }
}

const DEADLINE_MS: i64 = 1_800_000_000_000;
const HOUR_MS: i64 = 3_600_000;

fn steps() -> Vec<EscalationStep> {
    vec![
        EscalationStep {
            after: Duration::ZERO,
            action: EscalationAction::Urge,
            notify: vec![],
        },
        EscalationStep {
            after: Duration::from_secs(7200),
            action: EscalationAction::Supervise,
            notify: vec![id("prov-supervision")],
        },
    ]
}

fn receipt(doc_id: DocId, kind: ReceiptKind, issuer: &str, recipient: &str) -> Receipt {
    Receipt {
        doc_id,
        kind,
        recipient: id(recipient),
        issuer: id(issuer),
        doc_digest: [7; 32],
        time_ms: 1,
        by: if kind == ReceiptKind::Acknowledged {
            "张三".into()
        } else {
            String::new()
        },
        reason: String::new(),
        seals: Vec::new(),
    }
}

/// An accepted document from prov-gov to `to`, with the ladder's first
/// step due at its deadline.
fn accept(u: &Units, n: u64, urgency: Urgency, to: &[&str]) -> Accept {
    let doc_id = DocId::from_parts(1_700_000_000_000 + n, [n as u8; 10]);
    let r = receipt(doc_id, ReceiptKind::Accepted, "hub", "hub");
    Accept {
        record: DocRecord {
            doc_id,
            sender: id("prov-gov"),
            to: to.iter().map(|t| id(t)).collect(),
            cc: vec![],
            title: format!("关于第{n}号事项的通知"),
            doc_number: format!("黑政发〔2026〕{n}号"),
            doc_type: "通知".into(),
            urgency,
            deadline: None,
            created_ms: 0,
            accepted_ms: 5,
            digest: "d".repeat(64),
            content_len: 1,
            files: vec![],
            content_removed: false,
            links: Default::default(),
        },
        header: vec![n as u8; 3],
        receipt_bytes: r.sign(&u.hub).unwrap().encode(),
        receipt: r,
        deadline_ms: DEADLINE_MS,
        first_due_ms: Some(DEADLINE_MS),
        at_ms: 5,
    }
}

fn delivered(signer: &Signer, who: &str, doc_id: DocId) -> Write {
    let r = receipt(doc_id, ReceiptKind::Delivered, who, who);
    Write::Delivery(Box::new(Delivery {
        receipt_bytes: r.sign(signer).unwrap().encode(),
        receipt: r,
        at_ms: 10,
    }))
}

/// The stores under test.
enum Backend {
    Embedded(tempfile::TempDir),
    Postgres(pg::Cluster),
}

impl Backend {
    /// `None` (and a message naming the package) when PostgreSQL is absent
    /// outside CI.
    fn postgres() -> Option<Backend> {
        pg::available().then(|| Backend::Postgres(pg::Cluster::start()))
    }

    fn embedded() -> Backend {
        Backend::Embedded(tempfile::tempdir().unwrap())
    }

    /// A hub's store on this backend (another one on the same database for
    /// PostgreSQL: a second hub).
    async fn open(&self) -> SharedStore {
        match self {
            Backend::Embedded(dir) => Arc::new(Embedded::open(dir.path()).unwrap()),
            Backend::Postgres(c) => Arc::new(
                Postgres::open(&c.conn(), &StoreConfig::default())
                    .await
                    .unwrap(),
            ),
        }
    }
}

/// Run `case` on the embedded store and on PostgreSQL.
macro_rules! both {
    ($case:ident) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                let b = super::Backend::embedded();
                let store = b.open().await;
                super::$case(&*store).await;
                store.close().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(b) = super::Backend::postgres() else {
                    return;
                };
                let store = b.open().await;
                super::$case(&*store).await;
                store.close().await;
            }
        }
    };
}

both!(documents_are_queued_by_urgency_and_claimed_once);
async fn documents_are_queued_by_urgency_and_claimed_once(s: &dyn Store) {
    let u = units();
    s.put_binding(&id("harbin-gov"), b"binding").await.unwrap();
    assert_eq!(
        s.binding(&id("harbin-gov")).await.unwrap().as_deref(),
        Some(&b"binding"[..])
    );
    assert_eq!(s.binding(&id("daqing-gov")).await.unwrap(), None);
    s.put_binding(&id("harbin-gov"), b"renewed").await.unwrap();
    s.put_binding(&id("daqing-gov"), b"daqing").await.unwrap();
    let mut all = s.bindings().await.unwrap();
    all.sort();
    assert_eq!(
        all,
        vec![
            (id("daqing-gov"), b"daqing".to_vec()),
            (id("harbin-gov"), b"renewed".to_vec())
        ]
    );

    let normal = accept(&u, 1, Urgency::Normal, &["harbin-gov", "daqing-gov"]);
    let urgent = accept(&u, 2, Urgency::ExtraUrgent, &["harbin-gov"]);
    let (n, e) = (normal.record.doc_id, urgent.record.doc_id);
    let outcomes = s
        .commit(vec![
            Write::Accept(Box::new(normal.clone())),
            Write::Accept(Box::new(urgent)),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(s.doc(n).await.unwrap().unwrap(), normal.record);
    assert_eq!(s.header(n).await.unwrap().unwrap(), vec![1, 1, 1]);
    assert_eq!(
        s.accepted_receipt(n).await.unwrap().unwrap(),
        normal.receipt_bytes
    );
    let copies = s.deliveries(n).await.unwrap();
    assert_eq!(copies.len(), 2);
    assert!(copies.iter().all(|(_, r)| r.state == DeliveryState::Queued));

    // The extra-urgent document first, though it came second.
    let harbin = id("harbin-gov");
    assert_eq!(
        s.claim_deliveries(&harbin, 10, &[]).await.unwrap(),
        vec![e, n]
    );
    assert_eq!(s.claim_deliveries(&harbin, 1, &[]).await.unwrap().len(), 1);
    // What this hub is delivering is not offered again.
    assert!(
        s.claim_deliveries(&harbin, 10, &[e, n])
            .await
            .unwrap()
            .is_empty()
    );
    s.release_delivery(&harbin, n).await.unwrap();
    assert_eq!(
        s.claim_deliveries(&harbin, 10, &[e]).await.unwrap(),
        vec![n]
    );
    assert_eq!(
        s.claim_deliveries(&id("daqing-gov"), 10, &[])
            .await
            .unwrap(),
        vec![n]
    );
}

both!(a_copy_refused_further_on_is_marked_undeliverable_and_told_back);
/// A document from heilongjiang carried here for two units of jilin and one
/// of ours; the hub towards jilin refuses it for good.
async fn a_copy_refused_further_on_is_marked_undeliverable_and_told_back(s: &dyn Store) {
    use gongwen_common::federation::Domain;
    let u = units();
    let a = |s: &str| NodeId::parse_address(s).unwrap();
    let mut doc = accept(&u, 7, Urgency::Normal, &["harbin-gov"]);
    doc.record.sender = a("prov-gov@heilongjiang");
    doc.record.to = vec![
        a("changchun-gov@jilin"),
        a("jilin-gov@jilin"),
        id("harbin-gov"),
    ];
    let doc_id = doc.record.doc_id;
    s.commit(vec![Write::Accept(Box::new(doc))]).await.unwrap();
    let jilin = NodeId::relay_queue(&Domain::parse("jilin").unwrap());
    let back = NodeId::relay_queue(&Domain::parse("heilongjiang").unwrap());
    assert_eq!(
        s.claim_deliveries(&jilin, 10, &[]).await.unwrap(),
        vec![doc_id]
    );
    let refused = vec![a("changchun-gov@jilin"), a("jilin-gov@jilin")];
    let notice: gongwen_hub::store::RecallNotice =
        Arc::new(|r: &NodeId| format!("undeliverable to {r}").into_bytes());
    let marked = s
        .undeliverable(
            &jilin,
            doc_id,
            refused.clone(),
            "无法送达：太大".into(),
            notice.clone(),
            20,
        )
        .await
        .unwrap();
    assert_eq!(marked, refused);
    for (r, rec) in s.deliveries(doc_id).await.unwrap() {
        if r.is_local() {
            assert_eq!(rec.state, DeliveryState::Queued, "{r}");
        } else {
            assert_eq!(rec.state, DeliveryState::Quarantined, "{r}");
            assert_eq!(rec.reason.as_deref(), Some("无法送达：太大"), "{r}");
        }
    }
    // Out of the relay queue (nothing tries it again); our unit's copy
    // still waits for it.
    assert!(
        s.claim_deliveries(&jilin, 10, &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.claim_deliveries(&id("harbin-gov"), 10, &[])
            .await
            .unwrap(),
        vec![doc_id]
    );
    // Told back towards the sender, once per copy.
    let told: Vec<String> = s
        .claim_pushes(&back, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, p)| match p {
            Push::Notice(b) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        told,
        [
            "undeliverable to changchun-gov@jilin",
            "undeliverable to jilin-gov@jilin"
        ]
    );
    // Said again, it changes nothing.
    let again = s
        .undeliverable(&jilin, doc_id, refused, "无法送达：太大".into(), notice, 30)
        .await
        .unwrap();
    assert!(again.is_empty());
}

both!(only_the_main_copies_climb_the_ladder_and_are_urged_unnamed);
/// 主送 harbin-gov, 抄送 daqing-gov: the ladder and a 催办 naming nobody
/// reach harbin-gov alone; a 催办 naming daqing-gov reaches it.
async fn only_the_main_copies_climb_the_ladder_and_are_urged_unnamed(s: &dyn Store) {
    let u = units();
    let mut a = accept(&u, 8, Urgency::Normal, &["harbin-gov"]);
    a.record.cc = vec![id("daqing-gov")];
    let doc = a.record.doc_id;
    s.commit(vec![Write::Accept(Box::new(a))]).await.unwrap();
    let notices: gongwen_hub::store::StepNotices =
        Arc::new(|_, r, _, _| vec![(r.clone(), b"step".to_vec())]);
    let ran = s
        .run_due(DEADLINE_MS + 10 * HOUR_MS, steps(), notices.clone())
        .await
        .unwrap();
    assert!(
        ran.iter().all(|r| r.notified == vec![id("harbin-gov")]),
        "{ran:?}"
    );
    assert!(!ran.is_empty());
    let cc = s.delivery(doc, &id("daqing-gov")).await.unwrap().unwrap();
    assert_eq!((cc.urge_count, cc.escalation_level), (0, 0));
    let notice: gongwen_hub::store::UrgeNotice = Arc::new(|_, _, _| b"urge".to_vec());
    let t = DEADLINE_MS + 11 * HOUR_MS;
    let urged = s.urge_now(doc, vec![], t, notice.clone()).await.unwrap();
    assert_eq!(urged, vec![id("harbin-gov")]);
    let urged = s
        .urge_now(doc, vec![id("daqing-gov")], t, notice)
        .await
        .unwrap();
    assert_eq!(urged, vec![id("daqing-gov")]);
}

both!(a_delivery_receipt_is_recorded_once_and_forwarded_once);
async fn a_delivery_receipt_is_recorded_once_and_forwarded_once(s: &dyn Store) {
    let u = units();
    let a = accept(&u, 3, Urgency::Normal, &["harbin-gov", "daqing-gov"]);
    let doc = a.record.doc_id;
    s.commit(vec![Write::Accept(Box::new(a))]).await.unwrap();
    let harbin = id("harbin-gov");
    s.claim_deliveries(&harbin, 10, &[]).await.unwrap();

    let first = s
        .commit(vec![delivered(&u.harbin, "harbin-gov", doc)])
        .await
        .unwrap();
    let first = first[0].clone().unwrap();
    assert!(first.new);
    assert_eq!(first.sender, id("prov-gov"));
    // daqing-gov has not received it yet: the content stays.
    assert!(!first.content_done);
    let again = s
        .commit(vec![delivered(&u.harbin, "harbin-gov", doc)])
        .await
        .unwrap();
    assert!(!again[0].clone().unwrap().new);
    // A receipt for a document the store does not hold changes nothing.
    let stray = s
        .commit(vec![delivered(&u.harbin, "harbin-gov", DocId::generate())])
        .await
        .unwrap();
    assert_eq!(stray[0], None);

    assert!(
        s.claim_deliveries(&harbin, 10, &[])
            .await
            .unwrap()
            .is_empty()
    );
    let state = s.delivery(doc, &harbin).await.unwrap().unwrap().state;
    assert_eq!(state, DeliveryState::Delivered);

    // The sender gets the receipt once.
    let prov = id("prov-gov");
    let pushes = s.claim_pushes(&prov, 10).await.unwrap();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert!(matches!(&pushes[0].1, Push::Receipt(_)));
    s.forwarded(&prov, vec![pushes[0].0], vec![]).await.unwrap();
    assert!(s.claim_pushes(&prov, 10).await.unwrap().is_empty());

    // The last recipient's receipt: the content is no longer needed.
    let last = s
        .commit(vec![delivered(&u.daqing, "daqing-gov", doc)])
        .await
        .unwrap();
    assert!(last[0].clone().unwrap().content_done);

    let v = s.audit_verify().await.unwrap();
    assert_eq!((v.entries, v.first_broken, v.repeated), (3, None, 0));

    // What supervision reads: receipt kinds and every copy of every document.
    let mut kinds = s.receipt_kinds(doc).await.unwrap();
    kinds.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    assert_eq!(
        kinds,
        vec![
            (id("daqing-gov"), ReceiptKind::Delivered),
            (id("harbin-gov"), ReceiptKind::Delivered)
        ]
    );
    let all = s.all_deliveries().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0.doc_id, doc);
    assert!(
        all[0]
            .1
            .iter()
            .all(|(_, r)| r.state == DeliveryState::Delivered)
    );
}

both!(answers_recall_and_urging_follow_the_lifecycle);
async fn answers_recall_and_urging_follow_the_lifecycle(s: &dyn Store) {
    let u = units();
    let a = accept(&u, 4, Urgency::Urgent, &["harbin-gov", "daqing-gov"]);
    let doc = a.record.doc_id;
    s.commit(vec![Write::Accept(Box::new(a))]).await.unwrap();
    s.commit(vec![delivered(&u.harbin, "harbin-gov", doc)])
        .await
        .unwrap();

    let signed = receipt(doc, ReceiptKind::Acknowledged, "harbin-gov", "harbin-gov");
    let bytes = signed.sign(&u.harbin).unwrap().encode();
    let (sender, new) = s
        .record_answer(signed.clone(), bytes.clone(), 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((sender, new), (id("prov-gov"), true));
    let (_, new) = s.record_answer(signed, bytes, 21).await.unwrap().unwrap();
    assert!(!new, "the same answer again is recorded once");
    let state = s
        .delivery(doc, &id("harbin-gov"))
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(state, DeliveryState::Acknowledged);

    // The sender urges: only the copy still open is urged.
    let urged = s
        .urge_now(doc, vec![], 30, Arc::new(|_, _, _| b"urge".to_vec()))
        .await
        .unwrap();
    assert_eq!(urged, vec![id("daqing-gov")]);
    let rec = s.delivery(doc, &id("daqing-gov")).await.unwrap().unwrap();
    assert_eq!(rec.urge_count, 1);
    assert_eq!(
        s.claim_pushes(&id("daqing-gov"), 10).await.unwrap().len(),
        1
    );

    // Recall: the queued copy is withdrawn, the signed-for one stays.
    let recalled = s
        .recall(doc, Arc::new(|_| b"recall".to_vec()), 40)
        .await
        .unwrap();
    assert_eq!(recalled.withdrawn, vec![id("daqing-gov")]);
    assert_eq!(recalled.answered, vec![id("harbin-gov")]);
    assert!(recalled.notified.is_empty());
    assert!(
        s.claim_deliveries(&id("daqing-gov"), 10, &[])
            .await
            .unwrap()
            .is_empty()
    );
    let v = s.audit_verify().await.unwrap();
    assert_eq!((v.entries, v.first_broken), (3, None));
}

both!(each_escalation_step_runs_once_until_the_answer);
async fn each_escalation_step_runs_once_until_the_answer(s: &dyn Store) {
    let u = units();
    let a = accept(&u, 5, Urgency::Normal, &["harbin-gov"]);
    let doc = a.record.doc_id;
    s.commit(vec![Write::Accept(Box::new(a))]).await.unwrap();
    let notices: gongwen_hub::store::StepNotices = Arc::new(|_, r, _, step| {
        if step == 0 {
            vec![(r.clone(), b"urge".to_vec())]
        } else {
            vec![(id("prov-supervision"), b"supervise".to_vec())]
        }
    });
    assert_eq!(s.next_due().await.unwrap(), Some(DEADLINE_MS));
    assert!(
        s.run_due(DEADLINE_MS - 1, steps(), notices.clone())
            .await
            .unwrap()
            .is_empty()
    );
    let ran = s
        .run_due(DEADLINE_MS, steps(), notices.clone())
        .await
        .unwrap();
    assert_eq!(ran.len(), 1);
    assert_eq!((ran[0].doc_id, ran[0].step), (doc, 0));
    assert_eq!(ran[0].notified, vec![id("harbin-gov")]);
    assert!(
        s.run_due(DEADLINE_MS, steps(), notices.clone())
            .await
            .unwrap()
            .is_empty(),
        "a step runs once"
    );
    assert_eq!(s.next_due().await.unwrap(), Some(DEADLINE_MS + 2 * HOUR_MS));
    let ran = s
        .run_due(DEADLINE_MS + 2 * HOUR_MS, steps(), notices.clone())
        .await
        .unwrap();
    assert_eq!(ran[0].notified, vec![id("prov-supervision")]);
    assert_eq!(s.next_due().await.unwrap(), None, "the ladder has ended");
    let rec = s.delivery(doc, &id("harbin-gov")).await.unwrap().unwrap();
    assert_eq!(rec.escalation_level, 2);

    // A second document is signed for before its deadline: no step runs.
    let b = accept(&u, 6, Urgency::Normal, &["harbin-gov"]);
    let doc = b.record.doc_id;
    s.commit(vec![Write::Accept(Box::new(b))]).await.unwrap();
    s.commit(vec![delivered(&u.harbin, "harbin-gov", doc)])
        .await
        .unwrap();
    let signed = receipt(doc, ReceiptKind::Acknowledged, "harbin-gov", "harbin-gov");
    let bytes = signed.sign(&u.harbin).unwrap().encode();
    s.record_answer(signed, bytes, 20).await.unwrap().unwrap();
    assert!(
        s.run_due(DEADLINE_MS + 10 * HOUR_MS, steps(), notices)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `len` bytes that differ from one run to the next.
fn content(len: usize) -> Vec<u8> {
    let seed = std::process::id() as u64;
    (0..len)
        .map(|i| ((i as u64).wrapping_mul(2654435761) ^ seed) as u8)
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The content digest in the suite the tests run on (SHA-256, or SM3).
fn content_digest(b: &[u8]) -> String {
    hex(&gongwen_tests::test_suite().digest(b))
}

async fn read_all(s: &dyn Store, doc: DocId, offset: u64) -> Vec<u8> {
    let mut rx = s.read_content(doc, offset).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = rx.recv().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

both!(an_accepted_answer_marks_the_question_in_the_same_commit);
async fn an_accepted_answer_marks_the_question_in_the_same_commit(s: &dyn Store) {
    use gongwen_common::links::{Decision, ReplyKind};
    let u = units();
    // prov-gov asks harbin-gov for a decision, due at 1000 ms.
    let mut question = accept(&u, 40, Urgency::Normal, &["harbin-gov"]);
    question.record.links.reply = Some(ReplyKind::Decision);
    question.record.links.reply_by_ms = Some(1_000);
    let q = question.record.doc_id;
    s.commit(vec![Write::Accept(Box::new(question))])
        .await
        .unwrap();
    // harbin-gov's answer, accepted late (at 2000 ms).
    let mut answer = accept(&u, 41, Urgency::Normal, &["prov-gov"]);
    answer.record.sender = id("harbin-gov");
    answer.record.links.answers = Some(q);
    answer.record.links.decision = Some(Decision::NotApproved);
    answer.at_ms = 2_000;
    let a = answer.record.doc_id;
    s.commit(vec![Write::Accept(Box::new(answer))])
        .await
        .unwrap();
    let rec = s.delivery(q, &id("harbin-gov")).await.unwrap().unwrap();
    assert_eq!(rec.reply.answered_ms, Some(2_000));
    assert_eq!(rec.reply.answer_doc, Some(a.to_string()));
    assert_eq!(rec.reply.decision, Some(Decision::NotApproved));
    assert!(rec.reply.late);
    let doc = s.doc(q).await.unwrap().unwrap();
    assert_eq!(doc.links.reply, Some(ReplyKind::Decision));
    assert_eq!(doc.links.reply_by_ms, Some(1_000));
}

both!(a_signed_for_question_climbs_the_ladder_for_its_answer);
async fn a_signed_for_question_climbs_the_ladder_for_its_answer(s: &dyn Store) {
    use gongwen_common::links::ReplyKind;
    use gongwen_hub::rules::lifecycle::REPLY_PHASE;
    let u = units();
    const BY: i64 = 50_000;
    let mut q = accept(&u, 42, Urgency::Normal, &["harbin-gov"]);
    q.record.links.reply = Some(ReplyKind::Report);
    q.record.links.reply_by_ms = Some(BY);
    q.record.links.reply_first_due_ms = Some(BY);
    let doc = q.record.doc_id;
    s.commit(vec![Write::Accept(Box::new(q))]).await.unwrap();
    s.commit(vec![delivered(&u.harbin, "harbin-gov", doc)])
        .await
        .unwrap();
    let notices: gongwen_hub::store::StepNotices =
        Arc::new(|_, r, _, _| vec![(r.clone(), b"urge".to_vec())]);
    // Not before it is signed for (the sign-for ladder is at its deadline).
    assert!(
        s.run_due(BY, steps(), notices.clone())
            .await
            .unwrap()
            .is_empty()
    );
    let signed = receipt(doc, ReceiptKind::Acknowledged, "harbin-gov", "harbin-gov");
    let bytes = signed.sign(&u.harbin).unwrap().encode();
    s.record_answer(signed, bytes, 20).await.unwrap().unwrap();
    assert_eq!(s.next_due().await.unwrap(), Some(BY));
    let ran = s.run_due(BY, steps(), notices.clone()).await.unwrap();
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].step, REPLY_PHASE);
    assert!(
        s.run_due(BY, steps(), notices.clone())
            .await
            .unwrap()
            .is_empty(),
        "a step runs once"
    );
    let rec = s.delivery(doc, &id("harbin-gov")).await.unwrap().unwrap();
    assert_eq!((rec.urge_count, rec.reply.escalation_level), (1, 1));
    // The answer comes: the rest of the ladder does not run.
    let mut answer = accept(&u, 43, Urgency::Normal, &["prov-gov"]);
    answer.record.sender = id("harbin-gov");
    answer.record.links.answers = Some(doc);
    answer.at_ms = BY + 1;
    s.commit(vec![Write::Accept(Box::new(answer))])
        .await
        .unwrap();
    assert!(
        s.run_due(BY + 10 * HOUR_MS, steps(), notices)
            .await
            .unwrap()
            .iter()
            .all(|r| r.doc_id != doc),
        "no step for an answered question"
    );
}

both!(content_streams_in_resumes_and_streams_out);
async fn content_streams_in_resumes_and_streams_out(s: &dyn Store) {
    let bytes = content(3 * 1024 * 1024 + 777);
    let digest = content_digest(&bytes);
    let doc = DocId::generate();

    // A first attempt breaks after 2 MiB and a bit.
    let mut sink = s
        .open_upload(
            doc,
            &digest,
            bytes.len() as u64,
            gongwen_tests::test_suite(),
        )
        .await
        .unwrap();
    assert_eq!(sink.offset(), 0);
    let cut = 2 * 1024 * 1024 + 99;
    let (held, _) = sink
        .write(Batches::from_reader(std::io::Cursor::new(
            bytes[..cut].to_vec(),
        )))
        .await
        .unwrap();
    assert_eq!(held, cut as u64);
    drop(sink);

    // The next attempt resumes at a durable point no further than that.
    let mut sink = s
        .open_upload(
            doc,
            &digest,
            bytes.len() as u64,
            gongwen_tests::test_suite(),
        )
        .await
        .unwrap();
    let from = sink.offset() as usize;
    assert!(from <= cut, "resumes at {from}, past the {cut} bytes sent");
    let (held, hash) = sink
        .write(Batches::from_reader(std::io::Cursor::new(
            bytes[from..].to_vec(),
        )))
        .await
        .unwrap();
    assert_eq!(held, bytes.len() as u64);
    assert_eq!(hex(&hash), digest);
    sink.seal().await.unwrap();

    assert!(
        read_all(s, doc, 0).await == bytes,
        "the content read back differs"
    );
    let tail = read_all(s, doc, 1_048_581).await;
    assert!(tail == bytes[1_048_581..], "reading from an offset differs");
    s.drop_content(doc).await.unwrap();
    let mut gone = s.read_content(doc, 0).await.unwrap();
    let mut left = 0;
    while let Some(Ok(chunk)) = gone.recv().await {
        left += chunk.len();
    }
    assert_eq!(left, 0, "content left after drop_content");
}

// — two hubs on one database (PostgreSQL only) —

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_claim_each_delivery_and_each_step_once() {
    let Some(b) = Backend::postgres() else {
        return;
    };
    let (a, c) = (b.open().await, b.open().await);
    let u = units();
    let accepts: Vec<Write> = (0..40)
        .map(|n| {
            Write::Accept(Box::new(accept(
                &u,
                100 + n,
                Urgency::Normal,
                &["harbin-gov"],
            )))
        })
        .collect();
    a.commit(accepts).await.unwrap();
    let harbin = id("harbin-gov");

    // Both claim at once, in small bites: every document goes to exactly
    // one of them.
    let claim_all = |s: SharedStore| {
        let harbin = harbin.clone();
        async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim_deliveries(&harbin, 3, &mine).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got);
            }
        }
    };
    let (x, y) = tokio::join!(claim_all(a.clone()), claim_all(c.clone()));
    assert_eq!(x.len() + y.len(), 40, "{} + {}", x.len(), y.len());
    assert!(x.iter().all(|d| !y.contains(d)), "a document claimed twice");

    // What one hub gives back, the other can take.
    a.release_unit(&harbin).await.unwrap();
    let taken = c.claim_deliveries(&harbin, 100, &y).await.unwrap();
    assert_eq!(taken.len(), x.len());

    // Both run the ladder at once: each step runs on one of them.
    let notices: gongwen_hub::store::StepNotices =
        Arc::new(|_, r, _, _| vec![(r.clone(), b"urge".to_vec())]);
    let (r1, r2) = tokio::join!(
        a.run_due(DEADLINE_MS, steps(), notices.clone()),
        c.run_due(DEADLINE_MS, steps(), notices.clone())
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.len() + r2.len(), 40, "{} + {}", r1.len(), r2.len());
    // Each urge notice is queued once.
    let mut pushes = 0;
    loop {
        let p = a.claim_pushes(&harbin, 7).await.unwrap();
        if p.is_empty() {
            break;
        }
        pushes += p.len();
        a.forwarded(&harbin, p.iter().map(|(n, _)| *n).collect(), vec![])
            .await
            .unwrap();
    }
    assert_eq!(pushes, 40);
    a.close().await;
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_hub_is_refused() {
    let Some(Backend::Postgres(c)) = Backend::postgres() else {
        return;
    };
    let first = Postgres::open(&c.conn(), &StoreConfig::default())
        .await
        .unwrap();
    first.close().await;
    c.sql("UPDATE gongwen_meta SET value = '99' WHERE key = 'schema_version'");
    let e = Postgres::open(&c.conn(), &StoreConfig::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("schema version 99") && e.contains("newer"),
        "unexpected error: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let conn = format!(
        "host={} port=5999 dbname=gongwen user=gongwen connect_timeout=2",
        dir.path().display()
    );
    let e = Postgres::open(&conn, &StoreConfig::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&dir.path().display().to_string()),
        "the error does not say which database: {e}"
    );
}

/// Gives `first` bytes, then waits for a go before giving the rest.
struct Paused {
    data: std::io::Cursor<Vec<u8>>,
    first: u64,
    go: Option<std::sync::mpsc::Receiver<()>>,
}

impl std::io::Read for Paused {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let at = self.data.position();
        if at >= self.first
            && let Some(go) = self.go.take()
        {
            let _ = go.recv();
        }
        let limit = if at < self.first {
            ((self.first - at) as usize).min(buf.len())
        } else {
            buf.len()
        };
        self.data.read(&mut buf[..limit])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_upload_takes_over_from_the_connection_it_replaces() {
    let Some(b) = Backend::postgres() else {
        return;
    };
    let (hub_a, hub_b) = (b.open().await, b.open().await);
    let bytes = content(3 * 1024 * 1024 + 5);
    let digest = content_digest(&bytes);
    let doc = DocId::generate();
    let len = bytes.len() as u64;

    // Hub A receives the first 1.5 MiB, then its connection stalls.
    let (go, wait) = std::sync::mpsc::channel();
    let mut old = hub_a
        .open_upload(doc, &digest, len, gongwen_tests::test_suite())
        .await
        .unwrap();
    let first = 1024 * 1024 + 512 * 1024;
    let reader = Paused {
        data: std::io::Cursor::new(bytes.clone()),
        first,
        go: Some(wait),
    };
    let old_writer = tokio::spawn(async move { old.write(Batches::from_reader(reader)).await });
    let Backend::Postgres(cluster) = &b else {
        unreachable!()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while cluster.sql("SELECT coalesce(max(durable), 0) FROM partial") != "1048576" {
        assert!(tokio::time::Instant::now() < deadline, "hub A wrote no row");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The agent resumes at hub B, which takes the upload over; then hub
    // A's stalled connection delivers the rest: refused, not interleaved.
    let mut new = hub_b
        .open_upload(doc, &digest, len, gongwen_tests::test_suite())
        .await
        .unwrap();
    let from = new.offset() as usize;
    assert_eq!(from, 1024 * 1024);
    go.send(()).unwrap();
    let e = old_writer.await.unwrap().unwrap_err().to_string();
    assert!(e.contains("took this upload over"), "{e}");

    let (held, hash) = new
        .write(Batches::from_reader(std::io::Cursor::new(
            bytes[from..].to_vec(),
        )))
        .await
        .unwrap();
    assert_eq!((held, hex(&hash)), (len, digest));
    new.seal().await.unwrap();
    assert!(
        read_all(&*hub_b, doc, 0).await == bytes,
        "the content was mixed"
    );
}
