//! Opaque tokens: refresh, API, ingest and reset tokens are 32 random bytes, base64url, behind
//! a prefix that says what they are (`pdm_rt_`, `pdm_at_`, `pdm_it_`, `pdm_pr_`), so a leaked one
//! is recognisable by secret scanners. The store keeps only their SHA-256 ([`TokenHash`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use pdm_core::store::TokenHash;
use rand::RngCore;
use sha2::{Digest as _, Sha256};

use super::keys::hex;

/// What an opaque token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A refresh token.
    Refresh,
    /// An API token of a script or integration.
    Api,
    /// A device's ingest token.
    Ingest,
    /// A password-reset token.
    Reset,
}

impl Kind {
    /// The prefix of tokens of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Refresh => "pdm_rt_",
            Kind::Api => "pdm_at_",
            Kind::Ingest => "pdm_it_",
            Kind::Reset => "pdm_pr_",
        }
    }

    /// The kind of `token`, by its prefix.
    pub fn of(token: &str) -> Option<Kind> {
        [Kind::Refresh, Kind::Api, Kind::Ingest, Kind::Reset]
            .into_iter()
            .find(|k| token.starts_with(k.prefix()))
    }
}

/// A new token of `kind`: the secret to hand out once, and its hash to store.
pub fn generate(kind: Kind) -> (String, TokenHash) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&token);
    (token, hash)
}

/// The hash the store keeps of `token`.
pub fn hash(token: &str) -> TokenHash {
    TokenHash(hex(&Sha256::digest(token.as_bytes())))
}

/// The part of `token` shown in lists: its prefix and four characters.
pub fn display_prefix(token: &str) -> String {
    token.chars().take(11).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let (a, ha) = generate(Kind::Api);
        let (b, hb) = generate(Kind::Api);
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert!(a.starts_with("pdm_at_") && a.len() == 7 + 43, "{a}");
        assert_eq!(Kind::of(&a), Some(Kind::Api));
        assert_eq!(hash(&a), ha);
        assert_eq!(ha.0.len(), 64);
        assert_eq!(Kind::of("eyJhbGciOi"), None);
        assert_eq!(display_prefix(&a).len(), 11);
    }
}
