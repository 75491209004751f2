//! MCP sessions of the 2025 revisions: created by `initialize`, named by `Mcp-Session-Id`, bound to
//! the principal that created them, ended by DELETE or idleness.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use castellan_actors::upstream::Connection;
use rand::RngCore;
use serde_json::Value;
use tokio::sync::mpsc;

/// Which endpoint the session was opened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Aggregated,
    Server(String),
}

pub struct Session {
    pub id: String,
    pub subject: String,
    /// The tier of the principal that opened it (for the hooks of its end).
    pub tier: castellan_config::Tier,
    pub scope: Scope,
    pub protocol_version: String,
    pub client_capabilities: Value,
    last_seen: Mutex<Instant>,
    /// The GET stream, when the client has one open: where unsolicited notifications go.
    stream: Mutex<Option<mpsc::Sender<Value>>>,
    /// Requests that servers sent to this client (sampling, elicitation, roots), by the id the
    /// client saw, waiting for the client's answer.
    client_requests: Mutex<HashMap<String, PendingClientRequest>>,
    next_client_request: AtomicU64,
}

/// A server-to-client request relayed to the client: where its answer must go.
pub struct PendingClientRequest {
    pub connection: Arc<Connection>,
    pub upstream_id: Value,
}

/// Most relayed requests one session may leave unanswered; past it the oldest are dropped.
const MAX_PENDING_CLIENT_REQUESTS: usize = 256;

impl Session {
    pub fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }

    pub fn attach_stream(&self, sender: mpsc::Sender<Value>) {
        *lock(&self.stream) = Some(sender);
    }

    /// Records a relayed server-to-client request and returns the id the client will see. Ids
    /// are ours, so requests from several servers never collide in the client's id space.
    pub fn register_client_request(&self, connection: Arc<Connection>, upstream_id: Value) -> String {
        let number = self.next_client_request.fetch_add(1, Ordering::Relaxed);
        let id = format!("castellan-{number}");
        let mut pending = lock(&self.client_requests);
        if pending.len() >= MAX_PENDING_CLIENT_REQUESTS {
            pending.clear();
        }
        pending.insert(id.clone(), PendingClientRequest { connection, upstream_id });
        id
    }

    /// The pending request the client is answering, if `id` names one; it is answered once.
    pub fn take_client_request(&self, id: &Value) -> Option<PendingClientRequest> {
        lock(&self.client_requests).remove(id.as_str()?)
    }

    /// Sends a notification on the GET stream if one is open; never waits.
    pub fn notify(&self, message: Value) {
        if let Some(stream) = lock(&self.stream).as_ref() {
            let _ = stream.try_send(message);
        }
    }
}

/// The most sessions kept at once; past it the least recently used is dropped.
const MAX_SESSIONS: usize = 10_000;
pub const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<String, std::sync::Arc<Session>>>,
}

impl SessionStore {
    pub fn create(
        &self,
        subject: &str,
        tier: castellan_config::Tier,
        scope: Scope,
        protocol_version: &str,
        client_capabilities: Value,
    ) -> std::sync::Arc<Session> {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let session = std::sync::Arc::new(Session {
            id: hex::encode(bytes),
            subject: subject.to_string(),
            tier,
            scope,
            protocol_version: protocol_version.to_string(),
            client_capabilities,
            last_seen: Mutex::new(Instant::now()),
            stream: Mutex::new(None),
            client_requests: Mutex::new(HashMap::new()),
            next_client_request: AtomicU64::new(1),
        });
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, existing| lock(&existing.last_seen).elapsed() < SESSION_IDLE_TIMEOUT);
            if sessions.len() >= MAX_SESSIONS
                && let Some(oldest) =
                    sessions.iter().min_by_key(|(_, existing)| *lock(&existing.last_seen)).map(|(id, _)| id.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(session.id.clone(), std::sync::Arc::clone(&session));
        session
    }

    /// The session, if it exists, is not idle-expired, and belongs to `subject` and `scope`. An
    /// expired session stays in the store until [`SessionStore::take_idle`] ends it.
    pub fn find(&self, id: &str, subject: &str, scope: &Scope) -> Option<std::sync::Arc<Session>> {
        let sessions = lock(&self.sessions);
        let session = sessions.get(id)?;
        if lock(&session.last_seen).elapsed() >= SESSION_IDLE_TIMEOUT {
            return None;
        }
        (session.subject == subject && &session.scope == scope).then(|| std::sync::Arc::clone(session))
    }

    /// Removes and returns every session idle for `idle` or longer (their end is an event).
    pub fn take_idle(&self, idle: Duration) -> Vec<std::sync::Arc<Session>> {
        let mut sessions = lock(&self.sessions);
        let expired: Vec<String> = sessions
            .iter()
            .filter(|(_, session)| lock(&session.last_seen).elapsed() >= idle)
            .map(|(id, _)| id.clone())
            .collect();
        expired.iter().filter_map(|id| sessions.remove(id)).collect()
    }

    pub fn remove(&self, id: &str) -> bool {
        lock(&self.sessions).remove(id).is_some()
    }

    /// Every session, for broadcasting list-changed notifications.
    pub fn all(&self) -> Vec<std::sync::Arc<Session>> {
        lock(&self.sessions).values().cloned().collect()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_only_by_its_owner_on_its_endpoint() {
        let store = SessionStore::default();
        let session = store.create("alice", castellan_config::Tier::User, Scope::Aggregated, "2025-06-18", Value::Null);
        assert!(store.find(&session.id, "alice", &Scope::Aggregated).is_some(), "owner finds it");
        assert!(store.find(&session.id, "mallory", &Scope::Aggregated).is_none(), "another principal does not");
        assert!(
            store.find(&session.id, "alice", &Scope::Server("customers".into())).is_none(),
            "another endpoint does not"
        );
        assert!(store.remove(&session.id), "DELETE ends it");
        assert!(store.find(&session.id, "alice", &Scope::Aggregated).is_none(), "ended sessions are gone");
    }

    #[test]
    fn idle_sessions_are_taken_once() {
        let store = SessionStore::default();
        let session = store.create("alice", castellan_config::Tier::User, Scope::Aggregated, "2025-06-18", Value::Null);
        assert!(store.take_idle(Duration::from_secs(3600)).is_empty(), "a fresh session is not idle");
        let taken = store.take_idle(Duration::ZERO);
        assert_eq!(taken.iter().map(|taken| taken.id.as_str()).collect::<Vec<_>>(), [session.id.as_str()]);
        assert!(store.take_idle(Duration::ZERO).is_empty(), "and ended once");
        assert!(!store.remove(&session.id), "it is gone from the store");
    }
}
