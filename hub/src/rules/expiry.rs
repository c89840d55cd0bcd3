//! Nothing expires by surprise: warnings, at most once a day each, for
//! certificates (the hub's own, every connected unit's) that expire within
//! 30 days and for a CRL whose next update is within 7 days. The decisions
//! are plain functions over values; the hub's loop feeds them.

use std::collections::HashMap;

use gongwen_common::material::{CERT_WARNING, CRL_WARNING};
use gongwen_common::timefmt::rfc3339;
use time::{Duration, OffsetDateTime};

/// How often the same warning may be logged.
pub const ONCE_A_DAY: Duration = Duration::days(1);

/// The warnings due at `now`: (what it is about, the text).
pub fn due(
    now: OffsetDateTime,
    certificates: &[(String, OffsetDateTime)],
    crl_next_update: Option<OffsetDateTime>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (who, not_after) in certificates {
        if *not_after > now && *not_after - now < CERT_WARNING {
            out.push((
                format!("cert {who}"),
                format!(
                    "the certificate of {who} expires at {}, in {} days: issue a new one before then (gongwen-certs issue --renew)",
                    rfc3339(*not_after),
                    (*not_after - now).whole_days()
                ),
            ));
        }
    }
    if let Some(next) = crl_next_update
        && next > now
        && next - now < CRL_WARNING
    {
        out.push((
            "crl".to_owned(),
            format!(
                "the revocation list must be renewed by {} (gongwen-certs crl); after that every unit is refused",
                rfc3339(next)
            ),
        ));
    }
    out
}

/// When each warning was last given.
#[derive(Debug, Default)]
pub struct Warned {
    last: HashMap<String, OffsetDateTime>,
}

impl Warned {
    /// The texts of `due` not given within the last day; noted as given.
    pub fn fresh(&mut self, now: OffsetDateTime, due: Vec<(String, String)>) -> Vec<String> {
        let mut out = Vec::new();
        for (key, text) in due {
            let recent = self.last.get(&key).is_some_and(|t| now - *t < ONCE_A_DAY);
            if !recent {
                self.last.insert(key, now);
                out.push(text);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_within_30_days_and_a_crl_within_7_are_warned_of_once_a_day() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let certs = vec![
            ("harbin-gov".to_string(), now + Duration::days(10)),
            ("daqing-gov".to_string(), now + Duration::days(300)),
            ("old-gov".to_string(), now - Duration::days(1)),
        ];
        let d = due(now, &certs, Some(now + Duration::days(3)));
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].1.contains("harbin-gov") && d[0].1.contains("in 10 days"));
        assert!(d[1].1.contains("revocation list"));
        assert!(due(now, &certs[1..], Some(now + Duration::days(20))).is_empty());

        let mut w = Warned::default();
        assert_eq!(w.fresh(now, d.clone()).len(), 2);
        assert!(w.fresh(now + Duration::hours(23), d.clone()).is_empty());
        assert_eq!(w.fresh(now + Duration::hours(25), d).len(), 2);
    }
}
