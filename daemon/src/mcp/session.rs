//! MCP sessions of the 2025 revisions: created by `initialize`, named by `Mcp-Session-Id`, bound to
//! the principal that created them, ended by DELETE or idleness.

use std::collections::{HashMap, HashSet};
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

    /// Makes the session look last used `ago` ago.
    #[cfg(test)]
    fn seen_ago(&self, ago: Duration) {
        *lock(&self.last_seen) = Instant::now() - ago;
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

/// The most sessions kept at once; past it idle sessions go first, then the least recently used.
pub const MAX_SESSIONS: usize = 10_000;
pub const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// How many sessions the store keeps: in all, and for one subject. One subject at its cap ends its
/// own least recently used session to open another, so it cannot push anyone else's out; only a
/// store full of many subjects' sessions ends the least recently used of all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub total: usize,
    pub per_principal: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits { total: MAX_SESSIONS, per_principal: castellan_config::DEFAULT_MAX_SESSIONS_PER_PRINCIPAL }
    }
}

/// A new session and the sessions its creation ended (their end is an event, as for idle ones).
pub struct Created {
    pub session: Arc<Session>,
    pub evicted: Vec<Arc<Session>>,
}

#[derive(Default)]
pub struct SessionStore {
    limits: SessionLimits,
    sessions: Mutex<Sessions>,
}

/// The sessions by id, and the ids each subject holds (so its cap is checked without a scan).
#[derive(Default)]
struct Sessions {
    by_id: HashMap<String, Arc<Session>>,
    by_subject: HashMap<String, HashSet<String>>,
}

impl Sessions {
    fn insert(&mut self, session: Arc<Session>) {
        self.by_subject.entry(session.subject.clone()).or_default().insert(session.id.clone());
        self.by_id.insert(session.id.clone(), session);
    }

    fn remove(&mut self, id: &str) -> Option<Arc<Session>> {
        let session = self.by_id.remove(id)?;
        if let Some(ids) = self.by_subject.get_mut(&session.subject) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_subject.remove(&session.subject);
            }
        }
        Some(session)
    }

    fn held_by(&self, subject: &str) -> usize {
        self.by_subject.get(subject).map_or(0, HashSet::len)
    }

    /// The least recently used of `ids`.
    fn least_recent<'a>(&self, ids: impl Iterator<Item = &'a String>) -> Option<String> {
        ids.filter_map(|id| Some((id, *lock(&self.by_id.get(id)?.last_seen))))
            .min_by_key(|(_, seen)| *seen)
            .map(|(id, _)| id.clone())
    }

    fn remove_idle(&mut self, idle: Duration) -> Vec<Arc<Session>> {
        let expired: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, session)| lock(&session.last_seen).elapsed() >= idle)
            .map(|(id, _)| id.clone())
            .collect();
        expired.iter().filter_map(|id| self.remove(id)).collect()
    }
}

impl SessionStore {
    pub fn new(limits: SessionLimits) -> Self {
        SessionStore { limits, sessions: Mutex::default() }
    }

    /// Opens a session, first ending what the limits require: the subject's own least recently
    /// used sessions when it is at its cap, then, when the store is full, idle sessions and then
    /// the least recently used of all.
    pub fn create(
        &self,
        subject: &str,
        tier: castellan_config::Tier,
        scope: Scope,
        protocol_version: &str,
        client_capabilities: Value,
    ) -> Created {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let session = Arc::new(Session {
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
        let mut evicted = Vec::new();
        while sessions.held_by(subject) >= self.limits.per_principal.max(1) {
            let own = sessions.by_subject.get(subject).into_iter().flatten();
            let Some(oldest) = sessions.least_recent(own) else { break };
            evicted.extend(sessions.remove(&oldest));
        }
        if sessions.by_id.len() >= self.limits.total.max(1) {
            evicted.extend(sessions.remove_idle(SESSION_IDLE_TIMEOUT));
        }
        while sessions.by_id.len() >= self.limits.total.max(1) {
            let Some(oldest) = sessions.least_recent(sessions.by_id.keys()) else { break };
            evicted.extend(sessions.remove(&oldest));
        }
        sessions.insert(Arc::clone(&session));
        Created { session, evicted }
    }

    /// The session, if it exists, is not idle-expired, and belongs to `subject` and `scope`. An
    /// expired session stays in the store until [`SessionStore::take_idle`] ends it.
    pub fn find(&self, id: &str, subject: &str, scope: &Scope) -> Option<Arc<Session>> {
        let sessions = lock(&self.sessions);
        let session = sessions.by_id.get(id)?;
        if lock(&session.last_seen).elapsed() >= SESSION_IDLE_TIMEOUT {
            return None;
        }
        (session.subject == subject && &session.scope == scope).then(|| Arc::clone(session))
    }

    /// Removes and returns every session idle for `idle` or longer (their end is an event).
    pub fn take_idle(&self, idle: Duration) -> Vec<Arc<Session>> {
        lock(&self.sessions).remove_idle(idle)
    }

    pub fn remove(&self, id: &str) -> bool {
        lock(&self.sessions).remove(id).is_some()
    }

    /// Every session, for broadcasting list-changed notifications.
    pub fn all(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).by_id.values().cloned().collect()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use castellan_config::Tier;

    fn open(store: &SessionStore, subject: &str) -> Created {
        store.create(subject, Tier::User, Scope::Aggregated, "2025-06-18", Value::Null)
    }

    fn ids(sessions: &[Arc<Session>]) -> Vec<&str> {
        sessions.iter().map(|session| session.id.as_str()).collect()
    }

    #[test]
    fn a_session_is_found_only_by_its_owner_on_its_endpoint() {
        let store = SessionStore::default();
        let session = open(&store, "alice").session;
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
        let session = open(&store, "alice").session;
        assert!(store.take_idle(Duration::from_secs(3600)).is_empty(), "a fresh session is not idle");
        let taken = store.take_idle(Duration::ZERO);
        assert_eq!(ids(&taken), [session.id.as_str()]);
        assert!(store.take_idle(Duration::ZERO).is_empty(), "and ended once");
        assert!(!store.remove(&session.id), "it is gone from the store");
    }

    #[test]
    fn a_principal_at_its_cap_ends_its_own_least_recently_used_session() {
        let store = SessionStore::new(SessionLimits { total: 1000, per_principal: 3 });
        let bob = open(&store, "bob").session;
        bob.seen_ago(Duration::from_secs(600));
        let alice: Vec<Arc<Session>> = (0..3).map(|_| open(&store, "alice").session).collect();
        alice[0].seen_ago(Duration::from_secs(30));
        alice[1].seen_ago(Duration::from_secs(60));
        alice[2].seen_ago(Duration::from_secs(10));
        let fourth = open(&store, "alice");
        assert_eq!(ids(&fourth.evicted), [alice[1].id.as_str()], "alice's least recently used, not bob's older one");
        assert!(store.find(&bob.id, "bob", &Scope::Aggregated).is_some(), "bob keeps his session");
        assert!(store.find(&alice[1].id, "alice", &Scope::Aggregated).is_none(), "the evicted one is gone");
        for kept in [&alice[0], &alice[2], &fourth.session] {
            assert!(store.find(&kept.id, "alice", &Scope::Aggregated).is_some(), "alice keeps three");
        }
        // Ending a session frees a place: the next one evicts nothing.
        assert!(store.remove(&alice[0].id));
        assert!(open(&store, "alice").evicted.is_empty(), "below the cap nothing is ended");
    }

    #[test]
    fn one_principal_opening_twenty_thousand_sessions_evicts_only_its_own() {
        let store = SessionStore::new(SessionLimits::default());
        let others: Vec<(String, Arc<Session>)> = (0..50)
            .map(|index| {
                let subject = format!("user-{index}");
                let session = open(&store, &subject).session;
                (subject, session)
            })
            .collect();
        let mut evicted = 0;
        for _ in 0..20_000 {
            let created = open(&store, "mallory");
            assert!(created.evicted.iter().all(|session| session.subject == "mallory"), "only mallory's are ended");
            evicted += created.evicted.len();
        }
        assert_eq!(evicted, 20_000 - 100, "every session past the cap of 100 ended one of mallory's");
        assert_eq!(store.all().iter().filter(|session| session.subject == "mallory").count(), 100);
        for (subject, session) in &others {
            assert!(store.find(&session.id, subject, &Scope::Aggregated).is_some(), "{subject} keeps its session");
        }
    }

    #[test]
    fn a_full_store_ends_idle_sessions_first_then_the_least_recently_used() {
        let store = SessionStore::new(SessionLimits { total: 3, per_principal: 10 });
        let idle = open(&store, "alice").session;
        idle.seen_ago(SESSION_IDLE_TIMEOUT + Duration::from_secs(1));
        let older = open(&store, "bob").session;
        older.seen_ago(Duration::from_secs(120));
        let newer = open(&store, "carol").session;
        newer.seen_ago(Duration::from_secs(60));
        assert_eq!(ids(&open(&store, "dave").evicted), [idle.id.as_str()], "the idle session goes first");
        assert_eq!(ids(&open(&store, "erin").evicted), [older.id.as_str()], "then the least recently used");
        assert_eq!(store.all().len(), 3, "the store stays at its bound");
    }
}
