//! Tool pinning: the definition of every tool is fingerprinted when first seen (or approved by an
//! admin) and watched afterwards. When a server changes a tool's description or schema, on restart
//! or through `tools/list_changed`, `server.tool_changes` decides: `warn` (an event and a log line)
//! or `block` (the tool is hidden and refused until `castellan tools approve SERVER TOOL`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use castellan_actors::{Event, EventBus, Registry};
use castellan_config::ToolChanges;
use castellan_schema::tool_pins::Observation;
use chrono::Utc;
use sea_orm::DatabaseConnection;

/// How often approvals made with the CLI (in another process) are picked up.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// The approved fingerprints, in memory for the request path.
pub struct ToolPins {
    db: DatabaseConnection,
    approved: ArcSwap<HashMap<(String, String), String>>,
    mode: ArcSwap<ToolChanges>,
}

impl ToolPins {
    pub fn new(db: DatabaseConnection, mode: ToolChanges) -> Self {
        ToolPins { db, approved: ArcSwap::from_pointee(HashMap::new()), mode: ArcSwap::from_pointee(mode) }
    }

    pub fn set_mode(&self, mode: ToolChanges) {
        self.mode.store(Arc::new(mode));
    }

    /// Whether the request path must hide and refuse this tool: only in `block` mode (the
    /// snapshot's; `mode` here is only what the change events report), and only for a
    /// tool whose current definition differs from the approved one. A tool not pinned yet (seen for
    /// the first time this instant) is not blocked: it is about to be pinned as it is.
    pub fn is_blocked(&self, mode: ToolChanges, server: &str, tool: &str, definition_hash: &str) -> bool {
        mode == ToolChanges::Block
            && self
                .approved
                .load()
                .get(&(server.to_string(), tool.to_string()))
                .is_some_and(|approved| approved != definition_hash)
    }

    /// Re-reads the approved fingerprints.
    pub async fn reload(&self) -> Result<(), castellan_schema::DbError> {
        let pins = castellan_schema::tool_pins::list(&self.db).await?;
        let approved = pins.into_iter().map(|pin| ((pin.server, pin.tool), pin.approved_hash)).collect();
        self.approved.store(Arc::new(approved));
        Ok(())
    }

    /// Records the current definitions of `server`'s tools; reports changes.
    async fn observe_server(&self, registry: &Registry, bus: &EventBus, server: &str) {
        let Some(live) = registry.get(server) else { return };
        for tool in &live.tools {
            match castellan_schema::tool_pins::observe(&self.db, server, &tool.name, &tool.definition_hash, Utc::now())
                .await
            {
                Ok(Observation::Changed { approved_hash }) => {
                    let mode = **self.mode.load();
                    tracing::warn!(
                        server,
                        tool = %tool.name,
                        approved = %approved_hash,
                        observed = %tool.definition_hash,
                        blocked = mode == ToolChanges::Block,
                        "a tool's definition changed since it was approved"
                    );
                    bus.publish(Event::ToolDefinitionChanged {
                        server: server.to_string(),
                        tool: tool.name.clone(),
                        blocked: mode == ToolChanges::Block,
                    });
                }
                Ok(Observation::New | Observation::Unchanged) => {}
                Err(error) => tracing::warn!(%error, server, "recording a tool pin failed"),
            }
        }
        if let Err(error) = self.reload().await {
            tracing::warn!(%error, "reading tool pins failed");
        }
    }
}

/// Watches servers becoming ready and tool lists changing, and re-reads approvals periodically.
pub fn spawn_observer(pins: Arc<ToolPins>, registry: Registry, bus: EventBus) {
    // Lifecycle events only: this task is not woken for every tool call.
    let mut events = bus.subscribe_server_lifecycle();
    let observer = Arc::clone(&pins);
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let Event::ServerReady { server, .. } | Event::ToolsChanged { server, .. } = event {
                observer.observe_server(&registry, &bus, &server).await;
            }
        }
    });
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(REFRESH_INTERVAL);
        loop {
            interval.tick().await;
            if let Err(error) = pins.reload().await {
                tracing::warn!(%error, "reading tool pins failed");
            }
        }
    });
}
