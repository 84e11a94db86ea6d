//! Mail: the password-reset token sent over SMTP (lettre), when `[smtp]` is configured.
//!
//! Without `[smtp]` the token goes to the server's log for the operator to pass on (the one
//! secret that is logged, by design). With it, the token goes only to the user's address. The
//! mail is sent in the background, after the request has been answered: the answer and its
//! timing are the same whether the address is a user's or not, and a slow mail server does not
//! hold the request. A failure to send is logged without the token.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// How the connection to the mail server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: only for a relay on the same host or a test server.
    None,
}

/// `[smtp]`: the mail server for password resets. Its `Debug` hides the password.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name of the mail server.
    pub host: String,
    /// Its port: 587 for `starttls`, 465 for `tls`, 25 for `none` when left out.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (the default), `tls` or `none`.
    #[serde(default = "default_security")]
    pub security: Security,
    /// The account to sign in with, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Its password: better from `PDM_SMTP_PASSWORD` than from the file.
    #[serde(default)]
    pub password: Option<String>,
    /// The sender: `pdm <pdm@example.com>` or an address.
    pub from: String,
    /// How long a connection or a command may take, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_security() -> Security {
    Security::Starttls
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl SmtpConfig {
    /// Refuses settings that cannot work, naming them.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.host.trim().is_empty() {
            return Err(ConfigError::new("smtp.host", "must name the mail server"));
        }
        if let Err(e) = self.from.parse::<Mailbox>() {
            return Err(ConfigError::new(
                "smtp.from",
                format!("{:?} is not a sender address ({e})", self.from),
            ));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(ConfigError::new(
                "smtp.username",
                "give both smtp.username and the password (PDM_SMTP_PASSWORD), or neither",
            ));
        }
        let local = matches!(
            self.host
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']'),
            "localhost" | "127.0.0.1" | "::1"
        );
        if self.security == Security::None && self.username.is_some() && !local {
            return Err(ConfigError::new(
                "smtp.security",
                format!(
                    "none would send the password to {} in clear: use starttls or tls, or \
                     security none only for a relay on this host without a password",
                    self.host.trim()
                ),
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 300_000 {
            return Err(ConfigError::new(
                "smtp.timeout_ms",
                "must be 1 to 300000 milliseconds",
            ));
        }
        Ok(())
    }
}

/// Sends mail through the configured server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `config` (checked first); no connection is made until a mail is sent.
    pub fn new(config: &SmtpConfig) -> Result<Mailer, ConfigError> {
        config.check()?;
        let host = config.host.trim();
        let tls_error = |e: lettre::transport::smtp::Error| {
            ConfigError::new("smtp.host", format!("cannot set up TLS for {host:?}: {e}"))
        };
        let (builder, port) = match config.security {
            Security::Starttls => (
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(tls_error)?,
                587,
            ),
            Security::Tls => (
                AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(tls_error)?,
                465,
            ),
            Security::None => (
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
                25,
            ),
        };
        let mut builder = builder
            .port(config.port.unwrap_or(port))
            .timeout(Some(Duration::from_millis(config.timeout_ms)));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let from = config
            .from
            .parse()
            .map_err(|e| ConfigError::new("smtp.from", format!("not a sender address ({e})")))?;
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }

    /// Sends `message`; the error says what went wrong (never the message's content).
    pub async fn send(&self, message: Message) -> Result<(), String> {
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The password-reset mail to `to` (`name` greets them), carrying `token`.
    pub fn reset_message(
        &self,
        to: &str,
        name: &str,
        token: &str,
        ttl_minutes: i64,
    ) -> Result<Message, String> {
        let to: Mailbox = format!("{} <{to}>", quoted(name))
            .parse()
            .or_else(|_| to.parse())
            .map_err(|e| format!("the user's address cannot be mailed to ({e})"))?;
        let body = format!(
            "Hello {name},\n\n\
             someone (we hope you) asked to reset the password of your pdm account.\n\n\
             Your reset token, valid for {ttl_minutes} minutes and for one use:\n\n\
             {token}\n\n\
             Set a new password with it:\n\n\
             POST /api/v1/auth/password-reset/confirm\n\
             {{\"token\": \"<the token>\", \"new_password\": \"<at least 12 characters>\"}}\n\n\
             Every session of your account ends when the new password is set.\n\
             If you did not ask for this, ignore this mail: your password stays as it is.\n"
        );
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject("Reset your pdm password")
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("cannot build the mail ({e})"))
    }
}

/// `name` as an RFC 5322 quoted display name (quotes and backslashes escaped, controls dropped).
fn quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(2525),
            security: Security::None,
            username: None,
            password: None,
            from: "pdm <pdm@plant.example>".into(),
            timeout_ms: 1_000,
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(config().check().is_ok());
        let bad = SmtpConfig {
            from: "not an address".into(),
            ..config()
        };
        assert!(bad.check().unwrap_err().to_string().contains("smtp.from"));
        let half = SmtpConfig {
            username: Some("pdm".into()),
            ..config()
        };
        assert!(half
            .check()
            .unwrap_err()
            .to_string()
            .contains("smtp.username"));
        let shown = format!(
            "{:?}",
            SmtpConfig {
                username: Some("pdm".into()),
                password: Some("hunter2-secret".into()),
                ..config()
            }
        );
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        let clear = |host: &str| SmtpConfig {
            host: host.into(),
            security: Security::None,
            username: Some("pdm".into()),
            password: Some("hunter2-secret".into()),
            ..config()
        };
        let err = clear("mail.example").check().unwrap_err().to_string();
        assert!(
            err.contains("smtp.security") && !err.contains("hunter2"),
            "{err}"
        );
        assert!(clear("127.0.0.1").check().is_ok(), "a relay on this host");
    }

    #[test]
    fn the_reset_mail_carries_the_token_to_the_user() {
        let mailer = Mailer::new(&config()).expect("mailer");
        let m = mailer
            .reset_message("ana@plant.example", "Ana \"the\" Boss", "pdm_pr_abc123", 30)
            .expect("message");
        let text = String::from_utf8(m.formatted()).expect("utf-8");
        assert!(text.contains("pdm_pr_abc123"), "{text}");
        assert!(text.contains("ana@plant.example"), "{text}");
        assert!(text.contains("Subject: Reset your pdm password"), "{text}");
        assert!(text.contains("From: pdm <pdm@plant.example>"), "{text}");
        // A display name that is not a valid phrase still reaches the address.
        let m = mailer
            .reset_message("ana@plant.example", "\u{7}<>", "t", 30)
            .expect("message");
        assert!(String::from_utf8_lossy(&m.formatted()).contains("ana@plant.example"));
    }
}
