//! Access tokens: JWTs signed with HMAC-SHA256, the one algorithm accepted.
//!
//! A token's header names its key (`kid`); the [`KeyRing`] holds the current signing key and the
//! previous one, so tokens signed before a rotation stay valid until they expire. Verification
//! refuses, each with its own [`TokenError`] code: anything but three base64url parts, a header
//! whose `alg` is not `HS256` (`none` included) or whose `typ` is not `JWT`, an unknown key, a
//! wrong signature (compared in constant time), a wrong issuer or audience, a subject that is
//! not a user id, and a token past `exp` or issued in the future (30 s of clock skew allowed).
//!
//! Hand-written on `hmac` and `sha2` (already the webhook signatures' crates) rather than a JWT
//! crate: the format is small, and pinning one algorithm is then a comparison, not a setting.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use pdm_core::store::{SessionId, UserId};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The one algorithm: HMAC-SHA256.
pub const ALG: &str = "HS256";

/// Clock skew allowed on `exp` and `iat`, in seconds.
pub const LEEWAY_S: i64 = 30;

/// Longest token accepted, in bytes (a real one is about 300).
const MAX_TOKEN_LEN: usize = 4096;

/// A signing key: its id and secret bytes (at least 32).
#[derive(Clone)]
pub struct Key {
    /// Its id, in every token's header.
    pub kid: String,
    /// The secret.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The keys tokens are signed and checked with: the first signs, every one verifies.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<Key>,
    issuer: String,
    audience: String,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer.
    pub iss: String,
    /// The audience.
    pub aud: String,
    /// The user's id, in decimal.
    pub sub: String,
    /// The sign-in session it was issued in.
    pub sid: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

impl Claims {
    /// The user.
    pub fn user(&self) -> Option<UserId> {
        self.sub.parse().ok().map(UserId)
    }

    /// The session.
    pub fn session(&self) -> SessionId {
        SessionId(self.sid)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
}

/// Why a token was refused; [`TokenError::code`] is the reason code a 401 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("the token is malformed")]
    Malformed,
    /// A header with another algorithm (`none` included) or type.
    #[error("the token's algorithm is not accepted (only HS256)")]
    Algorithm,
    /// A key id this server does not have (rotated out, or another server's).
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    /// The signature does not match.
    #[error("the token's signature is wrong")]
    Signature,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// `iat` in the future, another issuer or audience, a subject that is not a user.
    #[error("the token's claims are not this server's")]
    Claims,
}

impl TokenError {
    /// The reason code of the 401.
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Malformed => "token_malformed",
            TokenError::Algorithm => "token_algorithm",
            TokenError::UnknownKey => "token_unknown_key",
            TokenError::Signature => "token_signature",
            TokenError::Expired => "token_expired",
            TokenError::Claims => "token_claims",
        }
    }
}

impl KeyRing {
    /// A ring of `keys`, the first signing; tokens name `issuer` and `audience`.
    ///
    /// # Panics
    /// Never on input from outside: `keys` comes from [`super::keys`], which refuses an empty
    /// ring or a short secret.
    pub fn new(keys: Vec<Key>, issuer: &str, audience: &str) -> Self {
        assert!(!keys.is_empty(), "a key ring has a signing key");
        Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// The signing key's id.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// An access token for `user` in `session`, issued at `now_s`, valid `ttl_s` seconds.
    pub fn issue(&self, user: UserId, session: SessionId, now_s: i64, ttl_s: i64) -> String {
        self.issue_for(&self.audience, user, session, now_s, ttl_s)
    }

    /// A push ticket: a token of the push audience ([`Self::push_audience`]), which only the
    /// push routes take, from their query.
    pub fn issue_ticket(&self, user: UserId, session: SessionId, now_s: i64, ttl_s: i64) -> String {
        self.issue_for(&self.push_audience(), user, session, now_s, ttl_s)
    }

    /// The audience of push tickets: the access tokens' with `:push`, so that neither is taken
    /// for the other.
    pub fn push_audience(&self) -> String {
        format!("{}:push", self.audience)
    }

    fn issue_for(
        &self,
        audience: &str,
        user: UserId,
        session: SessionId,
        now_s: i64,
        ttl_s: i64,
    ) -> String {
        let key = &self.keys[0];
        let header = Header {
            alg: ALG.into(),
            typ: Some("JWT".into()),
            kid: Some(key.kid.clone()),
        };
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: audience.to_owned(),
            sub: user.0.to_string(),
            sid: session.0,
            iat: now_s,
            exp: now_s + ttl_s,
        };
        let signing_input = format!("{}.{}", b64_json(&header), b64_json(&claims));
        let sig = mac(&key.secret, signing_input.as_bytes())
            .finalize()
            .into_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The claims of `token` when it is a valid access token at `now_s`.
    pub fn verify(&self, token: &str, now_s: i64) -> Result<Claims, TokenError> {
        self.verify_for(&self.audience, token, now_s, LEEWAY_S)
    }

    /// The claims of push ticket `token` when it is valid at `now_s`: no leeway on its expiry
    /// (a ticket lives seconds, on the clock of the server that issued it).
    pub fn verify_ticket(&self, token: &str, now_s: i64) -> Result<Claims, TokenError> {
        self.verify_for(&self.push_audience(), token, now_s, 0)
    }

    fn verify_for(
        &self,
        audience: &str,
        token: &str,
        now_s: i64,
        leeway_s: i64,
    ) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = decode_json(h)?;
        if header.alg != ALG || header.typ.as_deref().is_some_and(|t| t != "JWT") {
            return Err(TokenError::Algorithm);
        }
        let key = match header.kid.as_deref() {
            Some(kid) => self.keys.iter().find(|k| k.kid == kid),
            None => None,
        }
        .ok_or(TokenError::UnknownKey)?;
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?;
        let signing_input = &token[..h.len() + 1 + c.len()];
        mac(&key.secret, signing_input.as_bytes())
            .verify_slice(&sig)
            .map_err(|_| TokenError::Signature)?;
        let claims: Claims = decode_json(c)?;
        if claims.iss != self.issuer || claims.aud != audience || claims.user().is_none() {
            return Err(TokenError::Claims);
        }
        if claims.iat > now_s + LEEWAY_S {
            return Err(TokenError::Claims);
        }
        if now_s >= claims.exp + leeway_s {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

fn mac(secret: &[u8], data: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(data);
    m
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// A plain struct as base64url JSON (serializing one cannot fail).
fn b64_json<T: Serialize>(v: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(kids: &[&str]) -> KeyRing {
        KeyRing::new(
            kids.iter()
                .map(|k| Key {
                    kid: (*k).into(),
                    secret: format!("{k}-secret-of-at-least-32-bytes!!").into_bytes(),
                })
                .collect(),
            "pdm",
            "pdm-api",
        )
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_token_verifies_until_it_expires() {
        let r = ring(&["a"]);
        let t = r.issue(UserId(7), SessionId(3), NOW, 900);
        let c = r.verify(&t, NOW + 10).expect("valid");
        assert_eq!((c.user(), c.session()), (Some(UserId(7)), SessionId(3)));
        assert_eq!(r.verify(&t, NOW + 900 + LEEWAY_S), Err(TokenError::Expired));
        assert_eq!(
            r.verify(&t, NOW - LEEWAY_S - 1),
            Err(TokenError::Claims),
            "issued in the future"
        );
    }

    #[test]
    fn a_rotated_ring_still_verifies_the_old_key_and_signs_with_the_new() {
        let old = ring(&["a"]);
        let t = old.issue(UserId(1), SessionId(1), NOW, 900);
        let rotated = ring(&["b", "a"]);
        assert!(rotated.verify(&t, NOW).is_ok());
        let fresh = rotated.issue(UserId(1), SessionId(1), NOW, 900);
        assert_eq!(old.verify(&fresh, NOW), Err(TokenError::UnknownKey));
        assert_eq!(ring(&["c"]).verify(&t, NOW), Err(TokenError::UnknownKey));
    }

    fn forge(header: &str, claims: &Claims, sig: &str) -> String {
        format!(
            "{}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("json"))
        )
    }

    #[test]
    fn other_algorithms_and_tampering_are_refused() {
        let r = ring(&["a"]);
        let t = r.issue(UserId(7), SessionId(3), NOW, 900);
        let claims = r.verify(&t, NOW).expect("valid");
        let none = forge(r#"{"alg":"none","typ":"JWT","kid":"a"}"#, &claims, "");
        assert_eq!(r.verify(&none, NOW), Err(TokenError::Algorithm));
        let hs512 = forge(r#"{"alg":"HS512","kid":"a"}"#, &claims, "AAAA");
        assert_eq!(r.verify(&hs512, NOW), Err(TokenError::Algorithm));
        let no_kid = forge(r#"{"alg":"HS256"}"#, &claims, "AAAA");
        assert_eq!(r.verify(&no_kid, NOW), Err(TokenError::UnknownKey));
        // Another user in the same signature.
        let sig = t.rsplit('.').next().expect("sig");
        let admin = Claims {
            sub: "1".into(),
            ..claims.clone()
        };
        let swapped = forge(r#"{"alg":"HS256","typ":"JWT","kid":"a"}"#, &admin, sig);
        assert_eq!(r.verify(&swapped, NOW), Err(TokenError::Signature));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            "e30.e30.",
            &"x".repeat(5000),
        ] {
            assert_eq!(r.verify(bad, NOW), Err(TokenError::Malformed), "{bad:.20}");
        }
    }

    #[test]
    fn tickets_and_access_tokens_are_not_taken_for_each_other() {
        let r = ring(&["a"]);
        let ticket = r.issue_ticket(UserId(7), SessionId(3), NOW, 30);
        let access = r.issue(UserId(7), SessionId(3), NOW, 900);
        assert!(r.verify_ticket(&ticket, NOW).is_ok());
        assert_eq!(r.verify(&ticket, NOW), Err(TokenError::Claims));
        assert_eq!(r.verify_ticket(&access, NOW), Err(TokenError::Claims));
        assert_eq!(
            r.verify_ticket(&ticket, NOW + 30 + LEEWAY_S),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn another_servers_claims_are_refused() {
        let r = ring(&["a"]);
        let other = KeyRing::new(
            vec![Key {
                kid: "a".into(),
                secret: b"a-secret-of-at-least-32-bytes!!".to_vec(),
            }],
            "elsewhere",
            "pdm-api",
        );
        let t = other.issue(UserId(7), SessionId(3), NOW, 900);
        assert_eq!(r.verify(&t, NOW), Err(TokenError::Claims));
    }
}
