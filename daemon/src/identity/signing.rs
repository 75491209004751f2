//! Token signing keys: Ed25519, generated here, sealed under the master key in `signing_keys`, rotated
//! on a schedule. A retired key stays published in the JWKS (and trusted for verification) until every
//! token it signed has expired. Every replica reads the same table, so a key made by one is trusted by
//! all; the ring is reloaded periodically and on an unknown `kid`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use castellan_schema::oauth::SigningKeyRow;
use chrono::{DateTime, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey};
use rand::RngCore;
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::master_key::MasterKey;

pub const ALGORITHM: &str = "EdDSA";
/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410): what `EncodingKey::from_ed_der` expects.
const PKCS8_ED25519_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("database: {0}")]
    Database(#[from] castellan_schema::DbError),
    #[error("signing key {kid} cannot be opened with this master key; start with the master key it was sealed with")]
    Sealed { kid: String },
    #[error("signing key {kid} is malformed")]
    Malformed { kid: String },
}

/// The key new tokens are signed with.
pub struct ActiveKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub created_at: DateTime<Utc>,
}

/// What every replica holds in memory: the signing key and the keys trusted for verification.
#[derive(Default)]
struct Ring {
    active: Option<Arc<ActiveKey>>,
    verifying: HashMap<String, DecodingKey>,
    jwks: Value,
}

/// The key ring, shared by the token endpoint and the MCP endpoints.
pub struct SigningKeys {
    db: DatabaseConnection,
    master: Arc<MasterKey>,
    ring: ArcSwap<Ring>,
    /// Age at which the active key is replaced.
    rotation: Duration,
    /// How long a retired key keeps verifying: the longest access-token lifetime plus clock leeway.
    retain_after_retire: Duration,
}

impl SigningKeys {
    /// Loads the ring, creating the first key (or a fresh one when the newest is due) as needed.
    pub async fn start(
        db: DatabaseConnection,
        master: Arc<MasterKey>,
        rotation: Duration,
        access_token_ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Self, SigningKeyError> {
        let keys = SigningKeys {
            db,
            master,
            ring: ArcSwap::from_pointee(Ring::default()),
            rotation,
            retain_after_retire: access_token_ttl + Duration::from_secs(120),
        };
        keys.maintain(now).await?;
        Ok(keys)
    }

    /// Rotates when due, forgets keys past their retention, and reloads the ring from the database.
    pub async fn maintain(&self, now: DateTime<Utc>) -> Result<(), SigningKeyError> {
        let rows = castellan_schema::oauth::list_signing_keys(&self.db, now).await?;
        let newest = rows.iter().filter(|row| row.retired_at.is_none()).max_by_key(|row| row.created_at);
        let due = newest
            .is_none_or(|row| now.signed_duration_since(row.created_at).to_std().is_ok_and(|age| age >= self.rotation));
        if due {
            let row = self.generate(now);
            castellan_schema::oauth::insert_signing_key(&self.db, &row).await?;
            let forget_at =
                now + chrono::Duration::from_std(self.retain_after_retire).unwrap_or(chrono::Duration::hours(1));
            castellan_schema::oauth::retire_signing_keys_except(&self.db, &row.kid, forget_at, now).await?;
            tracing::info!(kid = %row.kid, "token signing key rotated");
        }
        castellan_schema::oauth::purge_signing_keys(&self.db, now).await?;
        self.reload(now).await
    }

    /// Reads the table again (new keys from other replicas, retirements).
    pub async fn reload(&self, now: DateTime<Utc>) -> Result<(), SigningKeyError> {
        let rows = castellan_schema::oauth::list_signing_keys(&self.db, now).await?;
        let mut ring = Ring::default();
        let mut published = Vec::new();
        for row in &rows {
            let jwk: Value = serde_json::from_str(&row.public_jwk)
                .map_err(|_| SigningKeyError::Malformed { kid: row.kid.clone() })?;
            let x = jwk.get("x").and_then(Value::as_str).ok_or(SigningKeyError::Malformed { kid: row.kid.clone() })?;
            let decoding =
                DecodingKey::from_ed_components(x).map_err(|_| SigningKeyError::Malformed { kid: row.kid.clone() })?;
            ring.verifying.insert(row.kid.clone(), decoding);
            published.push(jwk);
            let is_newest_active = row.retired_at.is_none()
                && ring.active.as_ref().is_none_or(|active| active.created_at < row.created_at);
            if is_newest_active {
                let seed = self
                    .master
                    .open(&purpose(&row.kid), &row.sealed_private_key)
                    .map_err(|_| SigningKeyError::Sealed { kid: row.kid.clone() })?;
                let der = pkcs8_from_seed(&seed).ok_or(SigningKeyError::Malformed { kid: row.kid.clone() })?;
                ring.active = Some(Arc::new(ActiveKey {
                    kid: row.kid.clone(),
                    encoding: EncodingKey::from_ed_der(&der),
                    created_at: row.created_at,
                }));
            }
        }
        ring.jwks = json!({ "keys": published });
        self.ring.store(Arc::new(ring));
        Ok(())
    }

    fn generate(&self, now: DateTime<Utc>) -> SigningKeyRow {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let x = URL_SAFE_NO_PAD.encode(public);
        let kid = thumbprint(&x);
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": ALGORITHM, "use": "sig"});
        SigningKeyRow {
            sealed_private_key: self.master.seal(&purpose(&kid), &seed),
            kid,
            alg: ALGORITHM.to_string(),
            public_jwk: jwk.to_string(),
            created_at: now,
            retired_at: None,
            delete_after: None,
        }
    }

    pub fn active(&self) -> Option<Arc<ActiveKey>> {
        self.ring.load().active.clone()
    }

    /// The verification key for `kid`, if it is ours and still trusted.
    pub fn verifying_key(&self, kid: &str) -> Option<DecodingKey> {
        self.ring.load().verifying.get(kid).cloned()
    }

    /// The published JWK Set.
    pub fn jwks(&self) -> Value {
        self.ring.load().jwks.clone()
    }
}

fn purpose(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// RFC 7638 thumbprint of an Ed25519 public key: a `kid` anyone can recompute from the JWK.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn pkcs8_from_seed(seed: &[u8]) -> Option<Vec<u8>> {
    (seed.len() == 32).then(|| [PKCS8_ED25519_PREFIX.as_slice(), seed].concat())
}

/// The periodic upkeep task: rotation, retention and picking up other replicas' keys.
pub fn spawn_maintenance(keys: Arc<SigningKeys>, every: Duration) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            if let Err(error) = keys.maintain(Utc::now()).await {
                tracing::error!(%error, "signing key maintenance failed; the current keys stay in use");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_thumbprint_matches_rfc_8037_appendix_a3() {
        // RFC 8037 A.3: the thumbprint of the example Ed25519 public key.
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        assert_eq!(thumbprint(x), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", "RFC 7638 thumbprint");
    }

    #[test]
    fn a_seed_becomes_a_key_the_jwt_library_accepts_and_verifies() {
        let seed = [9u8; 32];
        let der = pkcs8_from_seed(&seed).unwrap();
        let encoding = EncodingKey::from_ed_der(&der);
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let decoding = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public)).unwrap();
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        let token = jsonwebtoken::encode(&header, &json!({"sub": "x", "exp": 4_000_000_000u64}), &encoding).unwrap();
        let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        assert!(jsonwebtoken::decode::<Value>(&token, &decoding, &validation).is_ok(), "round trip verifies");
        assert!(pkcs8_from_seed(&[1u8; 31]).is_none(), "a short seed is refused");
    }

    async fn database() -> (DatabaseConnection, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("castellan-signing-{}", crate::identity::credentials::generate_id("")));
        std::fs::create_dir_all(&dir).unwrap();
        let db = castellan_schema::connect(&format!("sqlite://{}/keys.db", dir.display())).await.unwrap();
        castellan_schema::migrate(&db).await.unwrap();
        (db, dir)
    }

    fn claims(kid_time: DateTime<Utc>) -> crate::identity::tokens::AccessClaims {
        crate::identity::tokens::AccessClaims {
            iss: "http://localhost:1".into(),
            sub: "s".into(),
            aud: "http://localhost:1/mcp".into(),
            exp: kid_time.timestamp() + 600,
            iat: kid_time.timestamp(),
            jti: "j".into(),
            client_id: "c".into(),
            scope: "mcp:tools".into(),
            tier: "user".into(),
            gid: None,
            auth_time: None,
        }
    }

    #[tokio::test]
    async fn keys_rotate_on_schedule_and_retired_keys_verify_until_their_tokens_expire() {
        let (db, dir) = database().await;
        let master = Arc::new(MasterKey::from_bytes(&[3u8; 32]));
        let rotation = Duration::from_secs(86_400);
        let ttl = Duration::from_secs(600);
        let start = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let keys = SigningKeys::start(db.clone(), Arc::clone(&master), rotation, ttl, start).await.unwrap();
        let first = keys.active().unwrap().kid.clone();

        keys.maintain(start + chrono::Duration::hours(23)).await.unwrap();
        assert_eq!(keys.active().unwrap().kid, first, "not due yet: the same key signs");

        let rotated_at = start + chrono::Duration::hours(24);
        let just_before = rotated_at - chrono::Duration::seconds(60);
        let old_token = crate::identity::tokens::mint(&keys.active().unwrap(), &claims(just_before)).unwrap();
        keys.maintain(rotated_at).await.unwrap();
        let second = keys.active().unwrap().kid.clone();
        assert_ne!(second, first, "due: a new key signs");
        let published: Vec<String> = keys.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap().to_string())
            .collect();
        assert!(published.contains(&first) && published.contains(&second), "both keys are published: {published:?}");
        let verified = crate::identity::tokens::verify(
            &keys,
            &old_token,
            "http://localhost:1",
            &["http://localhost:1/mcp"],
            rotated_at,
        );
        assert!(verified.is_ok(), "a token signed by the retired key still verifies: {verified:?}");

        // The retired key is kept for the token lifetime plus two minutes, then forgotten.
        keys.maintain(rotated_at + chrono::Duration::seconds(600 + 119)).await.unwrap();
        assert!(keys.verifying_key(&first).is_some(), "still within the retention");
        keys.maintain(rotated_at + chrono::Duration::seconds(600 + 121)).await.unwrap();
        assert!(keys.verifying_key(&first).is_none(), "forgotten after the retention");
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 1, "only the current key is published");

        let stored = castellan_schema::oauth::list_signing_keys(&db, rotated_at).await.unwrap();
        assert!(stored.iter().all(|row| row.sealed_private_key.starts_with("v1.")), "private keys are stored sealed");

        let wrong = Arc::new(MasterKey::from_bytes(&[4u8; 32]));
        let refused = SigningKeys::start(db.clone(), wrong, rotation, ttl, rotated_at).await;
        assert!(matches!(refused, Err(SigningKeyError::Sealed { .. })), "another master key cannot start");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
