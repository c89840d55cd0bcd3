//! The directory every agent asks for now and again, made once and kept:
//! at 10,000 units it is a megabyte of JSON and a pass over every key
//! binding, which each agent's minute-by-minute refresh used to cost the
//! hub anew (20 ms of CPU a query at 3,000 units).
//!
//! The book is made again when what it is made from changed — the unit
//! directory, the CRL, a key a unit published (each says so with
//! [`AddressBooks::changed`]) — or when it is older than [`MAX_AGE`] (a
//! hub sharing a PostgreSQL store with another does not hear of the keys
//! published there). Its version is the digest of its JSON, so an agent
//! that already holds it is answered "unchanged" in a few bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest a made book is used without being made again.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// One made book: its JSON and version.
#[derive(Debug, Clone)]
pub struct Book {
    pub json: Arc<serde_json::Value>,
    pub version: String,
}

impl Book {
    /// A book of `json`, its version the SHA-256 of its text.
    pub fn of(json: serde_json::Value) -> Book {
        let text = json.to_string();
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        let version = digest
            .as_ref()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        Book {
            json: Arc::new(json),
            version,
        }
    }
}

#[derive(Debug)]
struct Made {
    book: Book,
    epoch: u64,
    at: Instant,
}

/// The current book, and a count of the changes to what it is made from.
#[derive(Debug, Default)]
pub struct AddressBooks {
    epoch: AtomicU64,
    /// Held while a book is made: of a thousand agents asking after a
    /// change, one makes it and the others wait for it.
    made: tokio::sync::Mutex<Option<Made>>,
}

impl AddressBooks {
    /// Something the book is made from changed.
    pub fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The current book, made by `make` if there is none, something
    /// changed since, or it is older than [`MAX_AGE`].
    pub async fn get<F, Fut>(&self, now: Instant, make: F) -> Result<Book, String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<serde_json::Value, String>>,
    {
        let mut made = self.made.lock().await;
        let epoch = self.epoch.load(Ordering::SeqCst);
        if let Some(m) = made.as_ref()
            && m.epoch == epoch
            && now.saturating_duration_since(m.at) < MAX_AGE
        {
            return Ok(m.book.clone());
        }
        let book = Book::of(make().await?);
        *made = Some(Made {
            book: book.clone(),
            epoch,
            at: now,
        });
        Ok(book)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn a_book_is_made_again_only_after_a_change_or_when_old() {
        let books = AddressBooks::default();
        let makes = AtomicUsize::new(0);
        let make = || async {
            let n = makes.fetch_add(1, Ordering::SeqCst);
            Ok(serde_json::json!({ "n": n }))
        };
        let t0 = Instant::now();
        let first = books.get(t0, make).await.unwrap();
        let again = books.get(t0 + Duration::from_secs(1), make).await.unwrap();
        assert_eq!(makes.load(Ordering::SeqCst), 1);
        assert_eq!(first.version, again.version);
        books.changed();
        let after = books.get(t0 + Duration::from_secs(2), make).await.unwrap();
        assert_eq!(makes.load(Ordering::SeqCst), 2);
        assert_ne!(after.version, first.version);
        books
            .get(t0 + MAX_AGE + Duration::from_secs(3), make)
            .await
            .unwrap();
        assert_eq!(makes.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn the_version_follows_the_content() {
        let a = Book::of(serde_json::json!({"units": ["a"]}));
        let b = Book::of(serde_json::json!({"units": ["a"]}));
        let c = Book::of(serde_json::json!({"units": ["a", "b"]}));
        assert_eq!(a.version, b.version);
        assert_ne!(a.version, c.version);
        assert_eq!(a.version.len(), 32);
    }
}
