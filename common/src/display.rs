//! Tables for people: the supervision answers (`overdue`, `report`) as the
//! hub's and a supervisor agent's command lines print them.

use std::fmt::Write;

/// A count from JSON (serde_json's Display ignores width and alignment).
fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// `overdue` as a table, or pretty JSON.
pub fn overdue(v: &serde_json::Value, json: bool) -> String {
    if json {
        return serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    }
    let mut out = String::new();
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        out.push_str("nothing is overdue\n");
    }
    for r in rows {
        let late = r["late_seconds"].as_i64().unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<20} late {:>3}h{:02}m  level {}  urged {}x  {}  {}  {}",
            r["recipient"].as_str().unwrap_or(""),
            late / 3600,
            late % 3600 / 60,
            n(&r["escalation_level"]),
            n(&r["urge_count"]),
            r["doc_number"].as_str().unwrap_or(""),
            r["title"].as_str().unwrap_or(""),
            r["doc_id"].as_str().unwrap_or("")
        );
    }
    out
}

/// `report` as two tables, or pretty JSON.
pub fn report(v: &serde_json::Value, json: bool) -> String {
    if json {
        return serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>8} {:>8} {:>6} {:>8} {:>7} {:>8} {:>12}",
        "UNIT", "RECEIVED", "ON TIME", "LATE", "RETURNED", "PENDING", "OVERDUE", "MEDIAN SIGN"
    );
    for u in v["units"].as_array().into_iter().flatten() {
        let median = u["median_sign_seconds"]
            .as_f64()
            .map(|s| format!("{:.1}h", s / 3600.0))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<20} {:>8} {:>8} {:>6} {:>8} {:>7} {:>8} {:>12}",
            u["unit"].as_str().unwrap_or(""),
            n(&u["received"]),
            n(&u["acknowledged_on_time"]),
            n(&u["acknowledged_late"]),
            n(&u["rejected"]),
            n(&u["pending"]),
            n(&u["overdue_now"]),
            median
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<20} {:>6} {:>18}",
        "SENDER", "SENT", "FULLY SIGNED FOR"
    );
    for s in v["senders"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<20} {:>6} {:>18}",
            s["sender"].as_str().unwrap_or(""),
            n(&s["sent"]),
            n(&s["fully_acknowledged"])
        );
    }
    out
}

/// A document's `status` as the hub knows it, or pretty JSON.
pub fn doc_status(v: &serde_json::Value, json: bool) -> String {
    if json {
        return serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    }
    let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
    let mut out = String::new();
    let _ = writeln!(out, "{}  {}", s("doc_id"), s("title"));
    let _ = writeln!(
        out,
        "  from {}  {}  {}  {}  accepted {}",
        s("sender"),
        s("doc_number"),
        s("doc_type"),
        s("urgency"),
        s("accepted_at")
    );
    if let Some(kind) = v["reply"].as_str() {
        let _ = writeln!(
            out,
            "  asks each recipient for an answer ({kind}){}",
            v["reply_by"]
                .as_str()
                .map(|by| format!(" by {by}"))
                .unwrap_or_default()
        );
    }
    if let Some(original) = v["forwards"].as_str() {
        let _ = writeln!(out, "  forwards {original}");
    }
    for r in v["recipients"].as_array().into_iter().flatten() {
        let detail = r["acknowledged_by"]
            .as_str()
            .map(|b| format!("by {b}"))
            .or_else(|| {
                r["rejected_reason"]
                    .as_str()
                    .map(|x| format!("returned: {x}"))
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    {:<20} {:<3} {:<13} {:<21} deadline {:<21} {}{}{}",
            r["recipient"].as_str().unwrap_or(""),
            r["copy"].as_str().unwrap_or(""),
            r["state"].as_str().unwrap_or(""),
            r["acknowledged_at"]
                .as_str()
                .or(r["delivered_at"].as_str())
                .unwrap_or("-"),
            r["deadline"].as_str().unwrap_or("-"),
            if r["overdue"].as_bool() == Some(true) {
                "OVERDUE "
            } else {
                ""
            },
            if r["late"].as_bool() == Some(true) {
                "late "
            } else {
                ""
            },
            detail
        );
        if let Some(state) = r["reply_state"].as_str() {
            let _ = writeln!(
                out,
                "      answer: {state}{}{}",
                r["decision"]
                    .as_str()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default(),
                r["answered_at"]
                    .as_str()
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default()
            );
        }
        // The cascade: what this recipient passed on (转发), and where
        // each copy stands.
        for f in r["forwarded"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "      forwarded as {} to {}",
                f["doc_id"].as_str().unwrap_or(""),
                forwarded_copies(f)
            );
        }
    }
    // Forwards further down, by units it did not go to directly.
    for f in v["forwarded_further"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {} forwarded as {} to {}",
            f["by"].as_str().unwrap_or(""),
            f["doc_id"].as_str().unwrap_or(""),
            forwarded_copies(f)
        );
    }
    for why in v["cascade_unknown"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  forwards not known from {}",
            why.as_str().unwrap_or("")
        );
    }
    out
}

/// A forward's copies: "unit state, unit state".
fn forwarded_copies(f: &serde_json::Value) -> String {
    let copies: Vec<String> = f["recipients"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{} {}",
                c["recipient"].as_str().unwrap_or(""),
                c["state"].as_str().unwrap_or("")
            )
        })
        .collect();
    copies.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_shows_answers_and_the_cascade() {
        let v = serde_json::json!({
            "doc_id": "01a2", "title": "通知", "sender": "prov-gov", "reply": "report",
            "reply_by": "2026-12-10T09:00:00Z",
            "recipients": [{
                "recipient": "harbin-gov", "copy": "to", "state": "acknowledged",
                "reply_state": "late", "answered_at": "2026-12-11T09:00:00Z",
                "forwarded": [{ "doc_id": "01a3", "recipients": [
                    { "recipient": "hulan-gov", "state": "delivered" },
                    { "recipient": "acheng-gov", "state": "acknowledged" }
                ]}]
            }],
            "forwarded_further": [{ "by": "hulan-gov", "doc_id": "01a4", "recipients": [
                { "recipient": "kangjin-town", "state": "queued" }
            ]}],
            "cascade_unknown": ["jilin: not linked now"]
        });
        let text = doc_status(&v, false);
        assert!(
            text.contains("asks each recipient for an answer (report) by 2026-12-10T09:00:00Z"),
            "{text}"
        );
        assert!(
            text.contains("answer: late at 2026-12-11T09:00:00Z"),
            "{text}"
        );
        assert!(
            text.contains("forwarded as 01a3 to hulan-gov delivered, acheng-gov acknowledged"),
            "{text}"
        );
        assert!(
            text.contains("forwards not known from jilin: not linked now"),
            "{text}"
        );
        assert!(
            text.contains("hulan-gov forwarded as 01a4 to kangjin-town queued"),
            "{text}"
        );
    }

    #[test]
    fn report_columns_line_up() {
        let v = serde_json::json!({
            "units": [{"unit": "harbin-gov", "received": 12, "acknowledged_on_time": 10,
                       "acknowledged_late": 1, "rejected": 0, "pending": 1, "overdue_now": 1,
                       "median_sign_seconds": 5400.0}],
            "senders": [{"sender": "prov-gov", "sent": 12, "fully_acknowledged": 11}]
        });
        let text = report(&v, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].len(), lines[1].len(), "{text}");
        assert!(lines[1].ends_with("1.5h"), "{text}");
    }
}
