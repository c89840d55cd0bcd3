//! The admitted connection to the hub, while there is one, and asking the
//! hub something over it.

use std::sync::Mutex;

use gongwen_common::stream::READ_TIMEOUT;
use gongwen_common::supervision::Query;
use gongwen_common::wire::Message;

#[derive(Debug, Default)]
pub struct Link {
    conn: Mutex<Option<quinn::Connection>>,
}

impl Link {
    /// The connection to the hub, if admitted now.
    pub fn connection(&self) -> Option<quinn::Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_up(&self) -> bool {
        self.conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    pub fn set_connection(&self, conn: Option<quinn::Connection>) {
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = conn;
    }

    /// Ask the hub for a JSON answer; the answer, or why not in plain words.
    pub async fn request(&self, msg: &Message) -> Result<serde_json::Value, String> {
        let Some(conn) = self.connection() else {
            return Err(
                "the agent is not connected to the hub right now; try again when it is".into(),
            );
        };
        match gongwen_common::stream::request(&conn, msg, READ_TIMEOUT).await {
            Ok(Message::Json { body }) => serde_json::from_slice(&body).map_err(|e| e.to_string()),
            Ok(Message::Error { message, .. }) => Err(format!("the hub refused: {message}")),
            Ok(other) => Err(format!(
                "unexpected answer from the hub: {}",
                other.describe()
            )),
            Err(e) => Err(format!("asking the hub failed: {e}")),
        }
    }

    /// Ask the hub a supervision question; its typed answer, or why not.
    pub async fn query<T: serde::de::DeserializeOwned>(&self, q: &Query) -> Result<T, String> {
        let v = self
            .request(&Message::Supervise {
                query: q.to_bytes(),
            })
            .await?;
        serde_json::from_value(v).map_err(|e| format!("the hub's answer does not read: {e}"))
    }
}
