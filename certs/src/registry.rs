//! The record of every certificate the CA issued, kept as `registry.json`.

use std::collections::HashMap;
use std::path::Path;

use gongwen_common::fsutil::write_atomic;
use gongwen_common::timefmt::rfc3339;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::CaError;

/// One issued certificate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub name: Option<String>,
    pub role: String,
    /// Lower-case hex of the serial's content octets.
    pub serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// True when the key was made on the node and only its CSR came here.
    pub from_csr: bool,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub revocation_reason: Option<String>,
    /// Groups the unit is listed in (units.csv's `groups` column), carried
    /// into the unit directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// The whole registry file, with an index by unit: enrolling 10,000 units
/// asks "has this unit a valid certificate?" 10,000 times.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Number of the last CRL written; each new CRL takes the next.
    pub crl_number: u64,
    certificates: Vec<Entry>,
    /// Unit id → its entries' places in `certificates`, in issue order.
    #[serde(skip)]
    by_id: HashMap<String, Vec<usize>>,
}

/// Where a certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Valid,
    Expired,
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }
}

/// One row of `gongwen-certs list`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ListRow {
    pub id: String,
    pub name: Option<String>,
    pub role: String,
    pub serial: String,
    pub not_after: String,
    pub status: Status,
    /// Days left, for a valid certificate that expires within 30 days
    /// (`gongwen-certs list` marks it): renew it before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<i64>,
}

impl Entry {
    pub fn status(&self, now: OffsetDateTime) -> Status {
        if self.revoked_at.is_some() {
            Status::Revoked
        } else if now > self.not_after || now < self.not_before {
            // A certificate not yet valid is as unusable as an expired one;
            // only clock trouble produces one.
            Status::Expired
        } else {
            Status::Valid
        }
    }

    pub fn row(&self, now: OffsetDateTime) -> ListRow {
        ListRow {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role.clone(),
            serial: self.serial.clone(),
            not_after: rfc3339(self.not_after),
            status: self.status(now),
            expires_in_days: (self.status(now) == Status::Valid
                && self.not_after - now < gongwen_common::material::CERT_WARNING)
                .then(|| (self.not_after - now).whole_days()),
        }
    }
}

impl Registry {
    pub fn load(path: &Path) -> Result<Self, CaError> {
        let text = std::fs::read_to_string(path).map_err(CaError::io(path))?;
        let mut r: Registry = serde_json::from_str(&text).map_err(|e| CaError::Corrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        for (i, e) in r.certificates.iter().enumerate() {
            r.by_id.entry(e.id.clone()).or_default().push(i);
        }
        Ok(r)
    }

    /// Every certificate, in issue order.
    pub fn all(&self) -> &[Entry] {
        &self.certificates
    }

    /// Every certificate, to mark revocations (none added or removed).
    pub fn all_mut(&mut self) -> &mut [Entry] {
        &mut self.certificates
    }

    /// Record a certificate issued.
    pub fn push(&mut self, e: Entry) {
        self.by_id
            .entry(e.id.clone())
            .or_default()
            .push(self.certificates.len());
        self.certificates.push(e);
    }

    /// The certificates of `id`, in issue order.
    pub fn of<'a>(&'a self, id: &str) -> impl DoubleEndedIterator<Item = &'a Entry> + 'a {
        self.by_id
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|&i| self.certificates.get(i))
    }

    /// The last certificate issued to `id`.
    pub fn last_of_mut(&mut self, id: &str) -> Option<&mut Entry> {
        let i = *self.by_id.get(id)?.last()?;
        self.certificates.get_mut(i)
    }

    pub fn save(&self, path: &Path) -> Result<(), CaError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| CaError::Corrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        text.push('\n');
        write_atomic(path, text.as_bytes(), 0o644).map_err(CaError::io(path))
    }
}
