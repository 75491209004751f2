//! Who may read `GET /metrics`: anyone when `metrics.token` is not set (a loopback listener), else
//! only a request with `Authorization: Bearer <token>`.
//!
//! The scrape shows which servers and tools exist and how busy they are; beyond loopback that is
//! worth a credential. The comparison is over SHA-256 digests in constant time, so neither the
//! token's bytes nor its length leak through timing.

use arc_swap::ArcSwap;
use castellan_config::MetricsToken;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The current `metrics.token`, replaced when the profile changes.
#[derive(Default)]
pub struct MetricsAccess {
    token_digest: ArcSwap<Option<[u8; 32]>>,
}

impl MetricsAccess {
    pub fn new(token: Option<&MetricsToken>) -> Self {
        let access = MetricsAccess::default();
        access.set_token(token);
        access
    }

    pub fn set_token(&self, token: Option<&MetricsToken>) {
        let digest = token.map(|token| Sha256::digest(token.expose().as_bytes()).into());
        self.token_digest.store(std::sync::Arc::new(digest));
    }

    /// Whether a request with this `Authorization` header value may read the metrics.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        let Some(expected) = *self.token_digest.load_full() else { return true };
        // The scheme is case-insensitive (RFC 9110 section 11.1); the token is not.
        let Some(presented) = authorization
            .filter(|value| value.len() > 7 && value[..7].eq_ignore_ascii_case(b"Bearer "))
            .map(|value| &value[7..])
        else {
            return false;
        };
        let presented: [u8; 32] = Sha256::digest(presented).into();
        bool::from(presented.ct_eq(&expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_token_anyone_reads_and_with_one_only_its_bearer() {
        let open = MetricsAccess::new(None);
        assert!(open.allows(None), "no token configured: open");
        let token = MetricsToken::parse("0123456789abcdef0123").expect("valid token");
        let guarded = MetricsAccess::new(Some(&token));
        for (header, allowed) in [
            (None, false),
            (Some(&b"Bearer 0123456789abcdef0123"[..]), true),
            (Some(&b"Bearer 0123456789abcdef012"[..]), false),
            (Some(&b"Bearer 0123456789abcdef01234"[..]), false),
            (Some(&b"bearer 0123456789abcdef0123"[..]), true),
            (Some(&b"Bearer 0123456789ABCDEF0123"[..]), false),
            (Some(&b"Basic 0123456789abcdef0123"[..]), false),
            (Some(&b"0123456789abcdef0123"[..]), false),
            (Some(&b"Bearer "[..]), false),
        ] {
            assert_eq!(guarded.allows(header), allowed, "Authorization {:?}", header.map(String::from_utf8_lossy));
        }
        guarded.set_token(None);
        assert!(guarded.allows(None), "removing the token opens it again");
    }
}
