//! Standard Webhooks signatures: `whsec_` secrets, `v1,<base64 HMAC-SHA256>` of
//! `{webhook-id}.{webhook-timestamp}.{body}`, several signatures separated by spaces (during a
//! rotation both the new and the previous secret sign).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

/// The prefix of a secret as shown to users.
pub const SECRET_PREFIX: &str = "whsec_";

/// How far a `webhook-timestamp` may be from the verifier's clock, in seconds (the
/// specification's recommended tolerance, against replays).
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Why a message does not verify, or a secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The secret is not `whsec_` followed by base64 of at least 24 bytes.
    #[error("the secret is not whsec_ followed by base64 of 24 to 64 bytes")]
    BadSecret,
    /// The timestamp is not whole seconds since the epoch.
    #[error("webhook-timestamp is not a number of seconds")]
    BadTimestamp,
    /// The timestamp is too far from the verifier's clock.
    #[error("webhook-timestamp is outside the tolerance")]
    Expired,
    /// No `v1` signature of the header matches.
    #[error("no signature matches")]
    Mismatch,
}

/// A new secret: `whsec_` and the base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", B64.encode(key))
}

/// The key bytes of `secret` (`whsec_` prefix optional).
fn key_of(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = B64.decode(b64).map_err(|_| SignatureError::BadSecret)?;
    if (24..=64).contains(&key.len()) {
        Ok(key)
    } else {
        Err(SignatureError::BadSecret)
    }
}

/// Checks that `secret` is a usable secret.
pub fn check_secret(secret: &str) -> Result<(), SignatureError> {
    key_of(secret).map(|_| ())
}

fn mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// One signature, `v1,<base64>`, of the message `msg_id` sent at `timestamp` (seconds) with
/// `body`, by `secret`.
pub fn sign(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let key = key_of(secret)?;
    let tag = mac(&key, msg_id, timestamp, body).finalize().into_bytes();
    Ok(format!("v1,{}", B64.encode(tag)))
}

/// The `webhook-signature` header: one signature per secret, separated by spaces.
pub fn signature_header(
    secrets: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let signatures = secrets
        .iter()
        .map(|s| sign(s, msg_id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(signatures.join(" "))
}

/// Verifies a received message as a receiver does: `signature_header` must hold a `v1`
/// signature by `secret` of `msg_id`, `timestamp_header` and `body`, and the timestamp must be
/// within [`TOLERANCE_SECS`] of `now_secs`. The comparison takes constant time.
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: i64,
) -> Result<(), SignatureError> {
    let key = key_of(secret)?;
    let timestamp: i64 = timestamp_header
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now_secs - timestamp).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Expired);
    }
    for sig in signature_header.split_whitespace() {
        let Some(b64) = sig.strip_prefix("v1,") else {
            continue;
        };
        let Ok(tag) = B64.decode(b64) else { continue };
        if mac(&key, msg_id, timestamp, body)
            .verify_slice(&tag)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn matches_the_reference_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(secret, id, 1614265330, body).expect("sign");
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        verify(secret, id, "1614265330", &sig, body, 1614265330).expect("verifies");
    }

    #[test]
    fn rotation_signs_twice_and_each_secret_verifies() {
        let (a, b) = (generate_secret(), generate_secret());
        assert!(a.starts_with("whsec_") && a != b);
        let header = signature_header(&[&a, &b], "msg_1", 100, b"{}").expect("sign");
        assert_eq!(header.split(' ').count(), 2);
        verify(&a, "msg_1", "100", &header, b"{}", 100).expect("a");
        verify(&b, "msg_1", "100", &header, b"{}", 100).expect("b");
        let c = generate_secret();
        assert_eq!(
            verify(&c, "msg_1", "100", &header, b"{}", 100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&a, "msg_1", "100", &header, b"{ }", 100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&a, "msg_1", "100", &header, b"{}", 100 + TOLERANCE_SECS + 1),
            Err(SignatureError::Expired)
        );
        assert_eq!(check_secret("whsec_short"), Err(SignatureError::BadSecret));
    }
}
