//! The registry of ready servers: a snapshot the request path reads without locks or mailboxes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::upstream::Connection;

/// One tool as the server defined it, with a fingerprint of the definition.
#[derive(Debug, Clone)]
pub struct ToolEntry {
    pub name: String,
    pub definition: Value,
    /// Hex SHA-256 of the definition's JSON: a changed definition (a "rug pull") changes it.
    pub definition_hash: String,
}

impl ToolEntry {
    pub fn new(definition: Value) -> Option<Self> {
        let name = definition.get("name")?.as_str()?.to_string();
        let definition_hash = hex::encode(Sha256::digest(definition.to_string().as_bytes()));
        Some(Self { name, definition, definition_hash })
    }
}

/// What the upstream server said about itself in the handshake.
#[derive(Debug, Clone, Default)]
pub struct ServerIdentity {
    pub protocol_version: String,
    pub capabilities: Value,
    pub server_info: Value,
    pub instructions: Option<String>,
}

/// A server that is connected and has answered the handshake.
pub struct LiveServer {
    pub name: String,
    pub connection: Arc<Connection>,
    pub identity: ServerIdentity,
    pub tools: Vec<ToolEntry>,
    tool_index: HashMap<String, usize>,
    pub pid: Option<u32>,
}

impl LiveServer {
    pub fn new(
        name: String,
        connection: Arc<Connection>,
        identity: ServerIdentity,
        tools: Vec<ToolEntry>,
        pid: Option<u32>,
    ) -> Self {
        let tool_index = tools.iter().enumerate().map(|(index, tool)| (tool.name.clone(), index)).collect();
        Self { name, connection, identity, tools, tool_index, pid }
    }

    /// The tool of exactly this name (case-sensitive), if the server has it.
    pub fn tool(&self, name: &str) -> Option<&ToolEntry> {
        self.tool_index.get(name).and_then(|&index| self.tools.get(index))
    }

    pub fn with_tools(&self, tools: Vec<ToolEntry>) -> Self {
        Self::new(self.name.clone(), Arc::clone(&self.connection), self.identity.clone(), tools, self.pid)
    }
}

/// Name -> ready server. Writers replace the whole map (copy on write); readers `load()` it.
#[derive(Clone, Default)]
pub struct Registry {
    servers: Arc<ArcSwap<BTreeMap<String, Arc<LiveServer>>>>,
}

impl Registry {
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Arc<LiveServer>>> {
        self.servers.load_full()
    }

    pub fn get(&self, name: &str) -> Option<Arc<LiveServer>> {
        self.servers.load().get(name).cloned()
    }

    pub fn insert(&self, server: LiveServer) {
        let server = Arc::new(server);
        self.servers.rcu(|current| {
            let mut next = BTreeMap::clone(current);
            next.insert(server.name.clone(), Arc::clone(&server));
            next
        });
    }

    /// Removes `name`, but only while it is still backed by `connection` (a newer one stays).
    pub fn remove_if(&self, name: &str, connection: &Arc<Connection>) {
        self.servers.rcu(|current| {
            let mut next = BTreeMap::clone(current);
            if next.get(name).is_some_and(|live| Arc::ptr_eq(&live.connection, connection)) {
                next.remove(name);
            }
            next
        });
    }

    pub fn remove(&self, name: &str) {
        self.servers.rcu(|current| {
            let mut next = BTreeMap::clone(current);
            next.remove(name);
            next
        });
    }
}
