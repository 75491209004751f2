//! Profile reload: the file is re-read when it changes on disk; a valid profile is applied (policy
//! snapshot, then the reconciler), an invalid one is logged with every problem and ignored. Settings
//! read only at start ([`restart_only_changes`]) are not applied: each changed one is logged as
//! "needs a restart: KEY" and listed in the `profile_applied` event.

use std::path::PathBuf;
use std::time::Duration;

use castellan_actors::Event;
use castellan_config::Profile;
use sha2::{Digest, Sha256};

use crate::app::{LiveHandles, apply_servers};

const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Watches `path` by content hash (robust to editors that replace the file) until the process ends.
/// `as_started` is the profile as the file (and the environment) gave it at start, before command-line
/// overrides: what the restart-only settings of a changed file are compared with.
pub fn watch_profile(path: PathBuf, as_started: Profile, handles: LiveHandles) {
    actix::spawn(async move {
        let mut last_digest = digest_of(&path).await;
        loop {
            tokio::time::sleep(POLL_INTERVAL).await;
            let digest = digest_of(&path).await;
            if digest.is_none() || digest == last_digest {
                continue;
            }
            last_digest = digest;
            let source = path.display().to_string();
            match castellan_config::load_profile_file(&path) {
                Ok(mut profile) => {
                    crate::cli::apply_environment(&mut profile);
                    let restart_needed: Vec<String> =
                        restart_only_changes(&as_started, &profile).into_iter().map(str::to_string).collect();
                    for key in &restart_needed {
                        tracing::warn!(profile = %source, key = %key, "needs a restart: {key}");
                    }
                    // Secrets set since the last refresh are there for servers this change starts.
                    if let Err(error) = handles.state.secrets.reload().await {
                        tracing::warn!(%error, "re-reading the secret store failed; keeping the values in memory");
                    }
                    apply_servers(&handles, &profile);
                    handles.bus.publish(Event::ProfileApplied { source: source.clone(), restart_needed });
                    tracing::info!(profile = %source, "profile reloaded");
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

/// The settings that differ between `running` and `changed` but are read only at start, by profile
/// key, in profile order. Everything else is applied live by `apply_servers` and the policy engine:
/// `mcp_servers`, `rbac`, `hooks`, `rate_limits`, `secrets.validation`, and `server.allowed_origins`,
/// `allow_anonymous`, `trusted_proxies` and `tool_changes`.
pub fn restart_only_changes(running: &Profile, changed: &Profile) -> Vec<&'static str> {
    let (old, new) = (&running.server, &changed.server);
    let (old_identity, new_identity) = (&running.identity, &changed.identity);
    let checks = [
        ("server.listen", old.listen != new.listen),
        ("server.public_url", old.public_url != new.public_url),
        ("server.max_body_bytes", old.max_body_bytes != new.max_body_bytes),
        ("server.call_timeout", old.call_timeout != new.call_timeout),
        ("server.drain_timeout", old.drain_timeout != new.drain_timeout),
        ("server.health_interval", old.health_interval != new.health_interval),
        ("database.url", running.database.url != changed.database.url),
        ("identity.access_token_ttl", old_identity.access_token_ttl != new_identity.access_token_ttl),
        ("identity.refresh_token_ttl", old_identity.refresh_token_ttl != new_identity.refresh_token_ttl),
        ("identity.grant_ttl", old_identity.grant_ttl != new_identity.grant_ttl),
        ("identity.session_ttl", old_identity.session_ttl != new_identity.session_ttl),
        ("identity.signing_key_rotation", old_identity.signing_key_rotation != new_identity.signing_key_rotation),
        ("identity.key_refetch_interval", old_identity.key_refetch_interval != new_identity.key_refetch_interval),
        ("identity.dynamic_registration", old_identity.dynamic_registration != new_identity.dynamic_registration),
        ("identity.max_dynamic_clients", old_identity.max_dynamic_clients != new_identity.max_dynamic_clients),
        (
            "identity.unused_dynamic_client_ttl",
            old_identity.unused_dynamic_client_ttl != new_identity.unused_dynamic_client_ttl,
        ),
        (
            "identity.client_metadata_documents",
            old_identity.client_metadata_documents != new_identity.client_metadata_documents,
        ),
        (
            "identity.allow_private_addresses",
            old_identity.allow_private_addresses != new_identity.allow_private_addresses,
        ),
        ("identity.extra_ca_file", old_identity.extra_ca_file != new_identity.extra_ca_file),
        ("identity.issuers", old_identity.issuers != new_identity.issuers),
        ("secrets.master_key_file", running.secrets.master_key_file != changed.secrets.master_key_file),
        ("jobs", running.jobs != changed.jobs),
    ];
    checks.into_iter().filter_map(|(key, differs)| differs.then_some(key)).collect()
}

async fn digest_of(path: &PathBuf) -> Option<Vec<u8>> {
    let bytes = tokio::fs::read(path).await.ok()?;
    Some(Sha256::digest(&bytes).to_vec())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(text: &str) -> Profile {
        castellan_config::parse_profile(text, "p.yaml", &|_| None).unwrap()
    }

    #[test]
    fn settings_read_at_start_are_named_and_live_ones_are_not() {
        let base = "server:\n  listen: 127.0.0.1:8080\n";
        let running = parse(base);
        let cases: &[(&str, &str, &[&str])] = &[
            ("nothing changed", base, &[]),
            (
                "live settings only",
                "server:\n  listen: 127.0.0.1:8080\n  allow_anonymous: true\n  allowed_origins: [\"https://a.example\"]\nrbac:\n  default: allow\nrate_limits:\n  per_second: { mcp_tool_call: 1 }\n",
                &[],
            ),
            // The public URL defaults to one derived from listen, so both change.
            ("listen", "server:\n  listen: 127.0.0.1:9090\n", &["server.listen", "server.public_url"]),
            (
                "public_url",
                "server:\n  listen: 127.0.0.1:8080\n  public_url: https://c.example\n",
                &["server.public_url"],
            ),
            ("database", "server:\n  listen: 127.0.0.1:8080\ndatabase:\n  url: sqlite://other.db\n", &["database.url"]),
            (
                "identity",
                "server:\n  listen: 127.0.0.1:8080\nidentity:\n  access_token_ttl: 5m\n  max_dynamic_clients: 5\n",
                &["identity.access_token_ttl", "identity.max_dynamic_clients"],
            ),
            (
                "server timings",
                "server:\n  listen: 127.0.0.1:8080\n  call_timeout: 7s\n  health_interval: 3s\n",
                &["server.call_timeout", "server.health_interval"],
            ),
        ];
        for (what, text, expected) in cases {
            assert_eq!(restart_only_changes(&running, &parse(text)), *expected, "{what}");
        }
        let mut longer = running.clone();
        longer.identity.unused_dynamic_client_ttl = Duration::from_secs(60);
        assert_eq!(restart_only_changes(&running, &longer), ["identity.unused_dynamic_client_ttl"]);
    }
}
