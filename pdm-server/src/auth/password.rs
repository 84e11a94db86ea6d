//! Passwords: Argon2id with m = 19 MiB, t = 2, p = 1 (OWASP's first recommendation), a random
//! 16-byte salt, kept as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
//!
//! Hashing takes tens of milliseconds of CPU on purpose, so it runs on the blocking pool
//! ([`hash`], [`verify`]), never on the async workers. A sign-in as an unknown user verifies
//! against a fixed dummy hash ([`verify_unknown`]), so both failures take the same time.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

/// Memory cost, in KiB (19 MiB).
pub const M_COST_KIB: u32 = 19 * 1024;
/// Passes.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;

/// Shortest password accepted.
pub const MIN_LEN: usize = 12;
/// Longest password accepted (bytes): longer ones only cost hashing time.
pub const MAX_LEN: usize = 256;

fn hasher() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).expect("fixed valid parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a password cannot be used; the message names the rule.
pub fn check_policy(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LEN {
        return Err(format!("must be at least {MIN_LEN} characters"));
    }
    if password.len() > MAX_LEN {
        return Err(format!("must be at most {MAX_LEN} bytes"));
    }
    if password
        .chars()
        .all(|c| c == password.chars().next().unwrap_or(' '))
    {
        return Err("must not be one character repeated".into());
    }
    Ok(())
}

/// The PHC string of `password` (synchronous: see [`hash`]).
pub fn hash_blocking(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes are a valid salt");
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing with valid parameters cannot fail")
        .to_string()
}

/// Whether `password` matches `phc` (synchronous: see [`verify`]). A stored hash that cannot be
/// parsed matches nothing.
pub fn verify_blocking(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => hasher().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// [`hash_blocking`] on the blocking pool.
pub async fn hash(password: String) -> String {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .unwrap_or_default()
}

/// How long a verification waits for a turn before the sign-in is answered busy.
pub const VERIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Verifications running at once: one per core. Each holds 19 MiB for about 25 ms, so without
/// a bound a flood of sign-ins (no credentials needed) would take the blocking pool's 512
/// threads and gigabytes of memory; with it, the excess waits, then is answered busy.
fn turns() -> &'static tokio::sync::Semaphore {
    static TURNS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    TURNS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores.max(1))
    })
}

/// [`verify_blocking`] on the blocking pool, one per core at most; `None` when no turn came
/// within [`VERIFY_WAIT`] (the caller answers 503).
pub async fn verify(phc: String, password: String) -> Option<bool> {
    let turn = tokio::time::timeout(VERIFY_WAIT, turns().acquire())
        .await
        .ok()?
        .ok()?;
    let ok = tokio::task::spawn_blocking(move || verify_blocking(&phc, &password))
        .await
        .unwrap_or(false);
    drop(turn);
    Some(ok)
}

/// The fixed hash [`verify_unknown`] checks against; made at start ([`warm_up`]) so that the
/// first sign-in of an unknown user costs what the others do.
fn dummy() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("not the password of anyone"))
}

/// Makes the dummy hash (on the blocking pool).
pub async fn warm_up() {
    let _ = tokio::task::spawn_blocking(dummy).await;
}

/// Verifies `password` against a fixed hash: the work of a sign-in as a user who does not
/// exist, so its answer takes as long as a wrong password's. `None` when busy, as [`verify`].
pub async fn verify_unknown(password: String) -> Option<()> {
    verify(dummy().to_owned(), password).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_the_pinned_parameters_and_salted() {
        let a = hash_blocking("correct horse battery");
        let b = hash_blocking("correct horse battery");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_blocking(&a, "correct horse battery"));
        assert!(!verify_blocking(&a, "correct horse batterY"));
        assert!(!verify_blocking("not a hash", "x"));
    }

    #[test]
    fn the_policy_names_its_rule() {
        assert!(check_policy("short").unwrap_err().contains("12"));
        assert!(check_policy(&"a".repeat(20))
            .unwrap_err()
            .contains("repeated"));
        assert!(check_policy(&"ab".repeat(200)).unwrap_err().contains("256"));
        assert!(check_policy("a long enough passphrase").is_ok());
    }
}
