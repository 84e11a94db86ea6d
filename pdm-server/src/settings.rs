//! System settings: the part of the configuration an admin may change through the API
//! (`GET`/`PATCH /api/v1/settings`), stored in the database, audited, and applied without a
//! restart where the setting allows.
//!
//! A setting has the same name as in the configuration file (`uploads.max_bytes`,
//! `auth.max_failures_per_account`, ...), so that one vocabulary serves both. The file gives the
//! defaults; the database keeps only what an admin overrode, as a JSON merge patch (RFC 7396) of
//! the file's values (`null` gives a setting back to the file). At start the overrides are laid
//! over the file before anything is built from it, so every setting holds after a restart; the
//! ones in [`LIVE`] also take effect at once, because their readers ask [`SettingsHandle`] each
//! time. Other workers on the same database pick a change up within [`REFRESH`].
//!
//! Secrets (the SMTP password, the signing key) are not settings: they stay in the environment
//! or the file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pdm_core::store::StoredSettings;
use pdm_core::{Store, StoreError, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::watch;
use utoipa::ToSchema;

use crate::config::ServerConfig;
use crate::mail::Security;

/// How often a worker looks for settings changed through another one.
pub const REFRESH: Duration = Duration::from_secs(30);

/// The settings that take effect without a restart (dotted names; a section covers its keys).
pub const LIVE: &[&str] = &[
    "uploads.max_bytes",
    "auth.access_ttl_s",
    "auth.refresh_ttl_s",
    "auth.session_max_s",
    "auth.max_failures_per_account",
    "auth.max_failures_per_address",
    "audit.retention_days",
    "webhooks.allow_private_destinations",
];

/// Every setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Attachments.
    pub uploads: UploadSettings,
    /// Sign-in policy.
    pub auth: SignInSettings,
    /// The audit log.
    pub audit: AuditSettings,
    /// Webhook policy.
    pub webhooks: WebhookSettings,
    /// Alarm defaults.
    pub live: AlarmSettings,
    /// The mail server for password resets (`null` when the file has none: reset tokens go to
    /// the log).
    pub smtp: Option<SmtpSettings>,
}

/// `uploads`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadSettings {
    /// Largest attachment, in bytes (1 KiB to 1 GiB; 20 MiB by default).
    #[schema(minimum = 1024, maximum = 1073741824)]
    pub max_bytes: u64,
}

/// `auth` (the sign-in policy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInSettings {
    /// Seconds an access token lives (1 to 86400).
    #[schema(minimum = 1, maximum = 86400)]
    pub access_ttl_s: u64,
    /// Seconds a refresh token lives unused (at least `access_ttl_s`, at most 90 days).
    #[schema(minimum = 1, maximum = 7776000)]
    pub refresh_ttl_s: u64,
    /// Seconds a session lives at most (at least `refresh_ttl_s`, at most 366 days).
    #[schema(minimum = 1, maximum = 31622400)]
    pub session_max_s: u64,
    /// Failed sign-ins an account may have in an hour.
    #[schema(minimum = 1)]
    pub max_failures_per_account: u64,
    /// Failed sign-ins a client address may have in an hour.
    #[schema(minimum = 1)]
    pub max_failures_per_address: u64,
}

/// `audit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Days an entry is kept (1 to 36500).
    #[schema(minimum = 1, maximum = 36500)]
    pub retention_days: u32,
}

/// `webhooks` (the policy of destinations and deliveries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Whether endpoints may be on loopback, private or link-local addresses.
    pub allow_private_destinations: bool,
    /// Milliseconds a delivery may take.
    #[schema(minimum = 1)]
    pub timeout_ms: u64,
    /// Days a delivery record is kept.
    #[schema(minimum = 1)]
    pub retention_days: u32,
}

/// `live` (alarm defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlarmSettings {
    /// Whether the default fleet-wide alarm rules are written at start where none exist.
    pub seed_alarm_defaults: bool,
    /// Milliseconds before an alarm that its work order's label also covers.
    pub label_lead_ms: u64,
}

/// `smtp` (without its password, which is no setting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// Host name of the mail server.
    pub host: String,
    /// Its port (`null`: 587 for starttls, 465 for tls, 25 for none).
    pub port: Option<u16>,
    /// `starttls`, `tls` or `none`.
    #[schema(value_type = String, pattern = "^(starttls|tls|none)$")]
    pub security: Security,
    /// The account to sign in with.
    pub username: Option<String>,
    /// The sender.
    pub from: String,
    /// Milliseconds a connection or command may take.
    pub timeout_ms: u64,
}

impl Settings {
    /// The settings of `c`.
    pub fn of(c: &ServerConfig) -> Settings {
        Settings {
            uploads: UploadSettings {
                max_bytes: c.uploads.max_bytes,
            },
            auth: SignInSettings {
                access_ttl_s: c.auth.access_ttl_s,
                refresh_ttl_s: c.auth.refresh_ttl_s,
                session_max_s: c.auth.session_max_s,
                max_failures_per_account: c.auth.max_failures_per_account,
                max_failures_per_address: c.auth.max_failures_per_address,
            },
            audit: AuditSettings {
                retention_days: c.audit.retention_days,
            },
            webhooks: WebhookSettings {
                allow_private_destinations: c.webhooks.allow_private_destinations,
                timeout_ms: c.webhooks.timeout_ms,
                retention_days: c.webhooks.retention_days,
            },
            live: AlarmSettings {
                seed_alarm_defaults: c.live.seed_alarm_defaults,
                label_lead_ms: c.live.label_lead_ms,
            },
            smtp: c.smtp.as_ref().map(|s| SmtpSettings {
                host: s.host.clone(),
                port: s.port,
                security: s.security,
                username: s.username.clone(),
                from: s.from.clone(),
                timeout_ms: s.timeout_ms,
            }),
        }
    }

    /// Writes these settings into `c` (the SMTP password stays as it was).
    pub fn apply(&self, c: &mut ServerConfig) {
        c.uploads.max_bytes = self.uploads.max_bytes;
        c.auth.access_ttl_s = self.auth.access_ttl_s;
        c.auth.refresh_ttl_s = self.auth.refresh_ttl_s;
        c.auth.session_max_s = self.auth.session_max_s;
        c.auth.max_failures_per_account = self.auth.max_failures_per_account;
        c.auth.max_failures_per_address = self.auth.max_failures_per_address;
        c.audit.retention_days = self.audit.retention_days;
        c.webhooks.allow_private_destinations = self.webhooks.allow_private_destinations;
        c.webhooks.timeout_ms = self.webhooks.timeout_ms;
        c.webhooks.retention_days = self.webhooks.retention_days;
        c.live.seed_alarm_defaults = self.live.seed_alarm_defaults;
        c.live.label_lead_ms = self.live.label_lead_ms;
        // The password (from the environment or the file) goes only to the host and account it
        // was configured for.
        let password = match (&c.smtp, &self.smtp) {
            (Some(was), Some(now)) if was.host == now.host && was.username == now.username => {
                was.password.clone()
            }
            _ => None,
        };
        c.smtp = self.smtp.as_ref().map(|s| crate::mail::SmtpConfig {
            host: s.host.clone(),
            port: s.port,
            security: s.security,
            username: s.username.clone(),
            password: password.clone(),
            from: s.from.clone(),
            timeout_ms: s.timeout_ms,
        });
    }
}

/// JSON merge patch (RFC 7396): `patch` laid over `target`, `null` removing a key.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The dotted names of the leaves of `v` (`uploads.max_bytes`); a non-object is a leaf.
fn leaves(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(v, &name, out);
            }
        }
        _ if !prefix.is_empty() => out.push(prefix.to_owned()),
        _ => {}
    }
}

/// The value at a dotted name.
fn value_at(v: &Value, name: &str) -> Option<Value> {
    name.split('.').try_fold(v, |v, k| v.get(k)).cloned()
}

fn is_live(name: &str) -> bool {
    LIVE.iter()
        .any(|l| name == *l || name.starts_with(&format!("{l}.")))
}

/// Why settings cannot be changed.
#[derive(Debug)]
pub enum SettingsError {
    /// The patch does not give valid settings: the sentence names the setting.
    Invalid(String),
    /// The settings changed since the version the caller read.
    Stale(String),
    /// Other changes kept winning the race (no `If-Match` was sent): try again.
    Busy(String),
    /// The store failed.
    Store(StoreError),
}

/// What `GET /settings` answers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SettingsView {
    /// The settings in force.
    pub settings: Settings,
    /// Settings whose value differs from the configuration file's (dotted names).
    pub overridden: Vec<String>,
    /// Settings changed since start that take effect only at the next restart.
    pub restart_required: Vec<String>,
    /// Settings that apply at once (the others, at the next start).
    pub live: Vec<String>,
    /// The version of the stored overrides (0: none stored); send it as `If-Match`.
    pub version: i64,
    /// Who last changed them.
    pub updated_by: Option<String>,
    /// When (epoch milliseconds).
    pub updated_at: Option<i64>,
}

struct Stored {
    overrides: Value,
    version: i64,
    updated_by: Option<String>,
    updated_at: Option<Timestamp>,
}

struct Inner {
    /// The file's settings (what `null` gives back).
    file: Settings,
    /// The configuration the server started with, overrides applied (to check a change with
    /// the configuration's own rules, and to tell what needs a restart).
    started: ServerConfig,
    stored: Mutex<Stored>,
    tx: watch::Sender<Arc<Settings>>,
    /// One change at a time on this worker (so that stores and their application keep order).
    updating: tokio::sync::Mutex<()>,
}

/// The settings in force, shared by everything that reads them live.
#[derive(Clone)]
pub struct SettingsHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SettingsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsHandle")
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

impl Default for SettingsHandle {
    /// The default configuration's settings, nothing stored.
    fn default() -> Self {
        Self::fixed(&ServerConfig::default())
    }
}

/// The settings of `file` with `overrides` laid over them, checked.
fn effective(
    file: &Settings,
    overrides: &Value,
    started: &ServerConfig,
) -> Result<Settings, String> {
    let mut doc = serde_json::to_value(file).map_err(|e| e.to_string())?;
    merge_patch(&mut doc, overrides);
    let s: Settings = serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        format!("{path}: {}", e.into_inner())
    })?;
    check(&s, started)?;
    Ok(s)
}

/// The checks of the configuration itself, and the limits of settings.
fn check(s: &Settings, started: &ServerConfig) -> Result<(), String> {
    if s.auth.max_failures_per_account == 0 || s.auth.max_failures_per_address == 0 {
        return Err(
            "auth.max_failures_per_account, auth.max_failures_per_address: at least 1".into(),
        );
    }
    if let Some(m) = &s.smtp {
        if m.host.trim().is_empty() {
            return Err("smtp.host: must not be empty".into());
        }
        if !m.from.contains('@') {
            return Err(format!("smtp.from: '{}' holds no email address", m.from));
        }
    }
    if let (Some(was), Some(now)) = (&started.smtp, &s.smtp) {
        let moved = was.host != now.host || was.username != now.username;
        if moved && was.password.is_some() && now.username.is_some() {
            return Err(format!(
                "smtp.host, smtp.username: the mail password (PDM_SMTP_PASSWORD) goes only to \
                 {} as {}: change the host or account in the configuration file with the \
                 password, or set smtp.username to null for a server without sign-in",
                was.host,
                was.username.as_deref().unwrap_or("(no account)")
            ));
        }
    }
    let mut c = started.clone();
    s.apply(&mut c);
    c.check().map_err(|e| e.0.to_string())?;
    if let Some(smtp) = &c.smtp {
        crate::mail::Mailer::new(smtp).map_err(|e| format!("smtp: {e}"))?;
    }
    Ok(())
}

impl SettingsHandle {
    /// Settings that are `config`'s and nothing else (no store: for an app built without one).
    pub fn fixed(config: &ServerConfig) -> Self {
        let file = Settings::of(config);
        let (tx, _) = watch::channel(Arc::new(file.clone()));
        Self {
            inner: Arc::new(Inner {
                file,
                started: config.clone(),
                stored: Mutex::new(Stored {
                    overrides: Value::Object(Map::new()),
                    version: 0,
                    updated_by: None,
                    updated_at: None,
                }),
                tx,
                updating: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Reads the stored overrides and lays them over `config`, so that everything built from it
    /// afterwards sees them. Overrides the file no longer allows are left out, with a warning
    /// (an admin fixes them through the API).
    pub async fn load(store: &dyn Store, config: &mut ServerConfig) -> Result<Self, StoreError> {
        let file = Settings::of(config);
        let stored = store.settings().await?;
        let (overrides, version, updated_by, updated_at) = match stored {
            Some(StoredSettings {
                doc,
                version,
                updated_by,
                updated_at,
            }) => (doc, version, Some(updated_by), Some(updated_at)),
            None => (Value::Object(Map::new()), 0, None, None),
        };
        let now = match effective(&file, &overrides, config) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "the stored settings do not hold with this configuration file: the file's are used until an admin changes them");
                file.clone()
            }
        };
        now.apply(config);
        let (tx, _) = watch::channel(Arc::new(now));
        Ok(Self {
            inner: Arc::new(Inner {
                file,
                started: config.clone(),
                stored: Mutex::new(Stored {
                    overrides,
                    version,
                    updated_by,
                    updated_at,
                }),
                tx,
                updating: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The settings in force.
    pub fn current(&self) -> Arc<Settings> {
        self.inner.tx.borrow().clone()
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Settings>> {
        self.inner.tx.subscribe()
    }

    /// The settings with what is overridden and what waits for a restart.
    pub fn view(&self) -> SettingsView {
        let now = self.current();
        let stored = self.inner.stored.lock().unwrap_or_else(|e| e.into_inner());
        let mut overridden = Vec::new();
        let now_v = serde_json::to_value(&*now).unwrap_or_default();
        let file_v = serde_json::to_value(&self.inner.file).unwrap_or_default();
        let started_v = serde_json::to_value(Settings::of(&self.inner.started)).unwrap_or_default();
        let mut names = Vec::new();
        leaves(&now_v, "", &mut names);
        leaves(&file_v, "", &mut names);
        names.sort();
        names.dedup();
        let at = value_at;
        let mut restart = Vec::new();
        for n in &names {
            if at(&now_v, n) != at(&file_v, n) {
                overridden.push(n.clone());
            }
            if !is_live(n) && at(&now_v, n) != at(&started_v, n) {
                restart.push(n.clone());
            }
        }
        SettingsView {
            settings: (*now).clone(),
            overridden,
            restart_required: restart,
            live: LIVE.iter().map(|s| (*s).to_owned()).collect(),
            version: stored.version,
            updated_by: stored.updated_by.clone(),
            updated_at: stored.updated_at.map(|t| t.as_millis()),
        }
    }

    /// Lays `patch` (a JSON merge patch of [`Settings`]) over the stored overrides, checks the
    /// result, stores it (when `if_version` is given, only over that version) and puts it in
    /// force. Returns the new view and what changed (`name`, before, after).
    pub async fn update(
        &self,
        store: &dyn Store,
        patch: &Value,
        if_version: Option<i64>,
        by: &str,
    ) -> Result<(SettingsView, Vec<(String, Value, Value)>), SettingsError> {
        if !patch.is_object() {
            return Err(SettingsError::Invalid(
                "the body must be a JSON object of settings (a merge patch)".into(),
            ));
        }
        let _one = self.inner.updating.lock().await;
        // Without If-Match, a write that lost a race with another is laid over the winner's.
        let mut attempts = 0;
        loop {
            attempts += 1;
            // What another worker stored counts: the version and the overrides are the store's.
            self.refresh(store).await.map_err(SettingsError::Store)?;
            let (mut overrides, version) = {
                let s = self.inner.stored.lock().unwrap_or_else(|e| e.into_inner());
                (s.overrides.clone(), s.version)
            };
            let unchanged = overrides.clone();
            if let Some(v) = if_version {
                if v != version {
                    return Err(SettingsError::Stale(format!(
                        "the settings are at version {version}, not {v}: read them again"
                    )));
                }
            }
            merge_patch(&mut overrides, patch);
            let before = self.current();
            let after = effective(&self.inner.file, &overrides, &self.inner.started)
                .map_err(SettingsError::Invalid)?;
            // Only what differs from the file is kept, so that a later change of the file shows.
            let overrides = diff(
                &serde_json::to_value(&self.inner.file).unwrap_or_default(),
                &serde_json::to_value(&after).unwrap_or_default(),
            );
            if overrides == unchanged {
                // Nothing to store: the version stays.
                return Ok((self.view(), Vec::new()));
            }
            let stored = match store
                .put_settings(&overrides, version, by, Timestamp::now())
                .await
            {
                Ok(s) => s,
                Err(StoreError::Stale(_)) if if_version.is_none() && attempts < 3 => continue,
                Err(StoreError::Stale(m)) if if_version.is_some() => {
                    return Err(SettingsError::Stale(m))
                }
                Err(StoreError::Stale(m)) => return Err(SettingsError::Busy(m)),
                Err(e) => return Err(SettingsError::Store(e)),
            };
            let changed = changes(&before, &after);
            *self.inner.stored.lock().unwrap_or_else(|e| e.into_inner()) = Stored {
                overrides,
                version: stored.version,
                updated_by: Some(stored.updated_by),
                updated_at: Some(stored.updated_at),
            };
            self.inner.tx.send_replace(Arc::new(after));
            return Ok((self.view(), changed));
        }
    }

    /// Reads the stored overrides again when another worker changed them.
    pub async fn refresh(&self, store: &dyn Store) -> Result<bool, StoreError> {
        let Some(stored) = store.settings().await? else {
            return Ok(false);
        };
        let version = self
            .inner
            .stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .version;
        if stored.version <= version {
            return Ok(false);
        }
        // The version is taken either way, so that a change here is laid over it; settings
        // that do not hold on this worker (its file differs) leave the ones in force.
        let now = match effective(&self.inner.file, &stored.doc, &self.inner.started) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "settings changed by another worker do not hold here: the ones in force stay");
                None
            }
        };
        *self.inner.stored.lock().unwrap_or_else(|e| e.into_inner()) = Stored {
            overrides: stored.doc,
            version: stored.version,
            updated_by: Some(stored.updated_by),
            updated_at: Some(stored.updated_at),
        };
        match now {
            Some(now) => {
                self.inner.tx.send_replace(Arc::new(now));
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// The merge patch that turns `from` into `to` (objects compared key by key).
fn diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut out = Map::new();
            for (k, tv) in t {
                match f.get(k) {
                    Some(fv) if fv == tv => {}
                    Some(fv) if fv.is_object() && tv.is_object() => {
                        out.insert(k.clone(), diff(fv, tv));
                    }
                    _ => {
                        out.insert(k.clone(), tv.clone());
                    }
                }
            }
            for k in f.keys() {
                if !t.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(out)
        }
        _ => to.clone(),
    }
}

/// Each setting that differs between `a` and `b`: name, before, after.
pub fn changes(a: &Settings, b: &Settings) -> Vec<(String, Value, Value)> {
    let (Ok(av), Ok(bv)) = (serde_json::to_value(a), serde_json::to_value(b)) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    leaves(&av, "", &mut names);
    leaves(&bv, "", &mut names);
    names.sort();
    names.dedup();
    let at = |v: &Value, n: &str| value_at(v, n).unwrap_or(Value::Null);
    names
        .into_iter()
        .filter_map(|n| {
            let (x, y) = (at(&av, &n), at(&bv, &n));
            (x != y).then_some((n, x, y))
        })
        .collect()
}

/// Looks for settings changed by other workers every [`REFRESH`] until `stop`.
pub async fn follow(handle: SettingsHandle, store: Arc<dyn Store>, mut stop: pdm_core::Shutdown) {
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
        match handle.refresh(&*store).await {
            Ok(true) => tracing::info!("settings changed by another worker applied"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the stored settings"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_merge_patch_sets_and_removes() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "d": 3});
        merge_patch(&mut t, &json!({"a": {"b": null, "e": 4}, "d": null}));
        assert_eq!(t, json!({"a": {"c": 2, "e": 4}}));
        let d = diff(
            &json!({"a": {"b": 1, "c": 2}}),
            &json!({"a": {"b": 1, "c": 5}}),
        );
        assert_eq!(d, json!({"a": {"c": 5}}));
    }

    #[test]
    fn overrides_are_checked_by_the_configuration_rules() {
        let c = ServerConfig::default();
        let file = Settings::of(&c);
        let ok = effective(&file, &json!({"uploads": {"max_bytes": 4096}}), &c).expect("valid");
        assert_eq!(ok.uploads.max_bytes, 4096);
        let err = effective(&file, &json!({"uploads": {"max_bytes": 10}}), &c).unwrap_err();
        assert!(err.starts_with("uploads.max_bytes"), "{err}");
        let err = effective(&file, &json!({"uploads": {"max_size": 10}}), &c).unwrap_err();
        assert!(err.contains("max_size"), "{err}");
        let err = effective(&file, &json!({"auth": {"access_ttl_s": "soon"}}), &c).unwrap_err();
        assert!(err.starts_with("auth.access_ttl_s"), "{err}");
        let err = effective(&file, &json!({"auth": {"refresh_ttl_s": 1}}), &c).unwrap_err();
        assert!(err.contains("auth.refresh_ttl_s"), "{err}");
        let ch = changes(&file, &ok);
        assert_eq!(
            ch,
            vec![(
                "uploads.max_bytes".to_owned(),
                json!(20 * 1024 * 1024),
                json!(4096)
            )]
        );
        assert!(is_live("uploads.max_bytes") && !is_live("smtp.host"));
    }
}
