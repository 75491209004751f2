//! Profile reload: the file is re-read when it changes on disk; a valid profile is applied (policy
//! snapshot, then the reconciler), an invalid one is logged with every problem and ignored.

use std::path::PathBuf;
use std::time::Duration;

use castellan_actors::Event;
use castellan_config::Profile;
use sha2::{Digest, Sha256};

use crate::app::{LiveHandles, apply_servers};

const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Watches `path` by content hash (robust to editors that replace the file) until the process ends.
pub fn watch_profile(path: PathBuf, current: Profile, handles: LiveHandles) {
    actix::spawn(async move {
        let mut last_digest = digest_of(&path).await;
        let mut running = current;
        loop {
            tokio::time::sleep(POLL_INTERVAL).await;
            let digest = digest_of(&path).await;
            if digest.is_none() || digest == last_digest {
                continue;
            }
            last_digest = digest;
            let source = path.display().to_string();
            match castellan_config::load_profile_file(&path) {
                Ok(profile) => {
                    if profile.server.listen != running.server.listen || profile.database.url != running.database.url {
                        tracing::warn!(profile = %source, "listen address and database changes take effect at the next restart");
                    }
                    // Secrets set since the last refresh are there for servers this change starts.
                    if let Err(error) = handles.state.secrets.reload().await {
                        tracing::warn!(%error, "re-reading the secret store failed; keeping the values in memory");
                    }
                    apply_servers(&handles, &profile);
                    handles.bus.publish(Event::ProfileApplied { source: source.clone() });
                    tracing::info!(profile = %source, "profile reloaded");
                    running = profile;
                }
                Err(problems) => {
                    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    for problem in &problems {
                        tracing::error!(problem = %problem, "profile change rejected; the running profile stays");
                    }
                    handles.bus.publish(Event::ProfileRejected { source, problems });
                }
            }
        }
    });
}

async fn digest_of(path: &PathBuf) -> Option<Vec<u8>> {
    let bytes = tokio::fs::read(path).await.ok()?;
    Some(Sha256::digest(&bytes).to_vec())
}
