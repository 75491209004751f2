//! The signed checkpoint a prune leaves behind: the id and hash of the last row it deleted and how
//! many rows were deleted so far, so that [`super::verify`] can continue the chain from it.
//!
//! It is stored under [`CHECKPOINT_KEY`] in `castellan_meta` as one line,
//! `v1 {last_pruned_id} {last_pruned_hash} {pruned_rows} {pruned_at} {signature}`. The signature is
//! `hex(HMAC-SHA256(key, encoding))` under a [`CheckpointKey`] the daemon derives from its master
//! key; the encoding is the domain tag, then the id (eight big-endian bytes), the hash, the count
//! (eight big-endian bytes) and the time (RFC 3339 UTC, six fractional digits), each string
//! preceded by its byte length (u64, big endian). Whoever can edit the database but does not hold
//! the master key can neither move the checkpoint nor make one up.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sea_orm::ConnectionTrait;
use sha2::Sha256;

use super::verify::{ChainBreak, ChainBreakReason};
use crate::error::DbResult;
use crate::meta;
use crate::time::{rfc3339_micros, truncate_to_micros};

/// The `castellan_meta` key holding the checkpoint line.
pub const CHECKPOINT_KEY: &str = "audit.mcp_tool_executions.checkpoint";

/// Versions both the stored line and the signed encoding.
const VERSION: &str = "v1";

/// Versions the signed encoding; a change of fields gets a new tag.
const DOMAIN_TAG: &[u8] = b"castellan.audit.checkpoint.v1";

/// The key that signs and checks checkpoints: 32 bytes the daemon derives from its master key.
#[derive(Clone)]
pub struct CheckpointKey {
    /// HMAC-SHA256 already keyed, so the key bytes themselves are not kept.
    keyed: Hmac<Sha256>,
}

impl CheckpointKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> CheckpointKey {
        // HMAC pads a key shorter than the hash's 64-byte block with zeros (RFC 2104, section 2),
        // so keying with the padded block is HMAC under the 32 bytes, without a fallible
        // constructor.
        let mut block = [0u8; 64];
        block[..bytes.len()].copy_from_slice(bytes);
        CheckpointKey { keyed: <Hmac<Sha256> as KeyInit>::new(&block.into()) }
    }

    fn signature(&self, fields: &SignedFields<'_>) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        fields.feed(&mut mac);
        mac
    }
}

impl fmt::Debug for CheckpointKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("CheckpointKey(..)")
    }
}

/// Where the pruned part of the trail ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The id of the last row deleted; every row up to it is gone, every row after it is kept.
    pub last_pruned_id: i64,
    /// That row's `row_hash`: the `prev_hash` of the first row kept.
    pub last_pruned_hash: String,
    /// How many rows every prune so far deleted, together.
    pub pruned_rows: u64,
    /// When the last prune ran (microseconds).
    pub pruned_at: DateTime<Utc>,
    /// HMAC-SHA256 of the fields above, hex.
    pub signature: String,
}

impl Checkpoint {
    /// A checkpoint over these fields, signed with `key`.
    pub(crate) fn signed(
        key: &CheckpointKey,
        last_pruned_id: i64,
        last_pruned_hash: String,
        pruned_rows: u64,
        pruned_at: DateTime<Utc>,
    ) -> Checkpoint {
        let pruned_at = truncate_to_micros(pruned_at);
        let pruned_at_text = rfc3339_micros(pruned_at);
        let fields = SignedFields {
            last_pruned_id,
            last_pruned_hash: &last_pruned_hash,
            pruned_rows,
            pruned_at: &pruned_at_text,
        };
        let signature = hex::encode(key.signature(&fields).finalize().into_bytes());
        Checkpoint { last_pruned_id, last_pruned_hash, pruned_rows, pruned_at, signature }
    }

    /// Whether the signature is `key`'s over the fields, compared in constant time.
    pub(crate) fn is_signed_by(&self, key: &CheckpointKey) -> bool {
        let Ok(signature) = hex::decode(&self.signature) else {
            return false;
        };
        let pruned_at = rfc3339_micros(self.pruned_at);
        let fields = SignedFields {
            last_pruned_id: self.last_pruned_id,
            last_pruned_hash: &self.last_pruned_hash,
            pruned_rows: self.pruned_rows,
            pruned_at: &pruned_at,
        };
        key.signature(&fields).verify_slice(&signature).is_ok()
    }

    /// The stored line.
    pub(crate) fn to_record(&self) -> String {
        format!(
            "{VERSION} {} {} {} {} {}",
            self.last_pruned_id,
            self.last_pruned_hash,
            self.pruned_rows,
            rfc3339_micros(self.pruned_at),
            self.signature
        )
    }

    /// Reads a stored line; `None` when it is not one this version writes (a time in another
    /// spelling included, so the signed text is exactly the stored text).
    fn from_record(record: &str) -> Option<Checkpoint> {
        let fields: Vec<&str> = record.split(' ').collect();
        let [version, id, hash, count, pruned_at_text, signature] = fields.as_slice() else {
            return None;
        };
        if *version != VERSION || hash.is_empty() || signature.is_empty() {
            return None;
        }
        let pruned_at = DateTime::parse_from_rfc3339(pruned_at_text).ok()?.with_timezone(&Utc);
        if rfc3339_micros(pruned_at) != *pruned_at_text {
            return None;
        }
        Some(Checkpoint {
            last_pruned_id: id.parse().ok()?,
            last_pruned_hash: (*hash).to_owned(),
            pruned_rows: count.parse().ok()?,
            pruned_at,
            signature: (*signature).to_owned(),
        })
    }
}

/// The fields the signature covers, in their signed order.
struct SignedFields<'a> {
    last_pruned_id: i64,
    last_pruned_hash: &'a str,
    pruned_rows: u64,
    pruned_at: &'a str,
}

impl SignedFields<'_> {
    fn feed(&self, mac: &mut Hmac<Sha256>) {
        put_bytes(mac, DOMAIN_TAG);
        mac.update(&self.last_pruned_id.to_be_bytes());
        put_bytes(mac, self.last_pruned_hash.as_bytes());
        mac.update(&self.pruned_rows.to_be_bytes());
        put_bytes(mac, self.pruned_at.as_bytes());
    }
}

fn put_bytes(mac: &mut Hmac<Sha256>, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

/// Whether a checkpoint is stored at all (whatever its state): a caller decides from it whether it
/// needs the master key to verify the trail.
#[tracing::instrument(skip_all)]
pub async fn has_checkpoint(db: &sea_orm::DatabaseConnection) -> DbResult<bool> {
    Ok(meta::get_with(db, CHECKPOINT_KEY).await?.is_some())
}

/// The stored checkpoint, once its signature checks out: `Ok(None)` when nothing was ever pruned,
/// the break to report when it is unreadable, cannot be checked (no key) or is not signed by `key`.
pub(crate) async fn load_checked<C: ConnectionTrait>(
    db: &C,
    key: Option<&CheckpointKey>,
) -> DbResult<Result<Option<Checkpoint>, ChainBreak>> {
    let Some(record) = meta::get_with(db, CHECKPOINT_KEY).await? else {
        return Ok(Ok(None));
    };
    let Some(checkpoint) = Checkpoint::from_record(&record) else {
        return Ok(Err(ChainBreak { id: 0, reason: ChainBreakReason::CheckpointUnreadable { value: record } }));
    };
    let id = checkpoint.last_pruned_id;
    Ok(match key {
        None => Err(ChainBreak { id, reason: ChainBreakReason::CheckpointKeyMissing }),
        Some(key) if !checkpoint.is_signed_by(key) => {
            Err(ChainBreak { id, reason: ChainBreakReason::CheckpointSignatureInvalid })
        }
        Some(_) => Ok(Some(checkpoint)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample(key: &CheckpointKey) -> Checkpoint {
        let pruned_at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).single().expect("valid date")
            + chrono::TimeDelta::nanoseconds(123_456_789);
        Checkpoint::signed(key, 4800, "ab".repeat(32), 4800, pruned_at)
    }

    #[test]
    fn the_key_is_hmac_under_the_32_bytes() {
        let bytes = [7u8; 32];
        let mut expected = <Hmac<Sha256> as Mac>::new_from_slice(&bytes).expect("any length is a key");
        expected.update(b"message");
        let mut keyed = CheckpointKey::from_bytes(&bytes).keyed;
        keyed.update(b"message");
        assert_eq!(keyed.finalize().into_bytes(), expected.finalize().into_bytes());
    }

    #[test]
    fn a_record_round_trips_and_keeps_its_signature() {
        let key = CheckpointKey::from_bytes(&[1u8; 32]);
        let checkpoint = sample(&key);
        assert_eq!(checkpoint.pruned_at.timestamp_subsec_nanos(), 123_456_000, "microseconds are kept");
        let record = checkpoint.to_record();
        assert!(record.starts_with("v1 4800 "), "{record}");
        let read_back = Checkpoint::from_record(&record).expect("readable");
        assert_eq!(read_back, checkpoint);
        assert!(read_back.is_signed_by(&key), "the signature survives storage");
        assert!(!read_back.is_signed_by(&CheckpointKey::from_bytes(&[2u8; 32])), "another key refuses it");
    }

    #[test]
    fn every_signed_field_changes_the_signature() {
        let key = CheckpointKey::from_bytes(&[1u8; 32]);
        let original = sample(&key);
        type Edit = fn(&mut Checkpoint);
        let edits: Vec<(&str, Edit)> = vec![
            ("id", |checkpoint| checkpoint.last_pruned_id += 1),
            ("hash", |checkpoint| checkpoint.last_pruned_hash = "cd".repeat(32)),
            ("count", |checkpoint| checkpoint.pruned_rows -= 1),
            ("time", |checkpoint| checkpoint.pruned_at += chrono::TimeDelta::microseconds(1)),
            ("signature", |checkpoint| checkpoint.signature = "00".repeat(32)),
            ("signature not hex", |checkpoint| checkpoint.signature = "forged".to_owned()),
        ];
        for (field, edit) in edits {
            let mut edited = original.clone();
            edit(&mut edited);
            assert!(!edited.is_signed_by(&key), "changing the {field} must void the signature");
        }
    }

    #[test]
    fn unreadable_records_are_refused() {
        let key = CheckpointKey::from_bytes(&[1u8; 32]);
        let good = sample(&key).to_record();
        let cases = [
            String::new(),
            "garbage".to_owned(),
            good.replacen("v1", "v2", 1),
            good.replacen("4800", "x", 1),
            good.replace(".123456Z", ".123456789Z"),
            good.replace(".123456Z", ".123456+00:00"),
            format!("{good} extra"),
        ];
        for record in cases {
            assert_eq!(Checkpoint::from_record(&record), None, "{record:?} must be unreadable");
        }
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", CheckpointKey::from_bytes(&[9u8; 32])), "CheckpointKey(..)");
    }
}
