//! Validated identifiers: machine and sensor keys.
//!
//! Keys appear in MQTT topics (`pdm/{machine}/telemetry`) and URL paths, so they are slugs:
//! 1 to 64 characters of lowercase ASCII letters, digits, `-` and `_`, starting with a letter or
//! a digit. Anything else is rejected with a reason naming the offending character.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 64;

/// Why a string is not a valid key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The string is empty.
    #[error("{kind} key is empty")]
    Empty {
        /// `machine` or `sensor`.
        kind: &'static str,
    },
    /// The string is longer than [`MAX_KEY_LEN`].
    #[error("{kind} key is {len} characters long; the limit is {MAX_KEY_LEN}")]
    TooLong {
        /// `machine` or `sensor`.
        kind: &'static str,
        /// Length of the rejected key in bytes.
        len: usize,
    },
    /// The string holds a character outside `[a-z0-9_-]`, or starts with `-` or `_`.
    #[error(
        "{kind} key {key:?} has {found:?} at position {position}; keys use lowercase letters, \
         digits, '-' and '_', and start with a letter or digit"
    )]
    BadCharacter {
        /// `machine` or `sensor`.
        kind: &'static str,
        /// The rejected key (cut to [`MAX_KEY_LEN`] characters).
        key: String,
        /// The offending character.
        found: char,
        /// Its position, counted in characters from 0.
        position: usize,
    },
}

fn validate(kind: &'static str, s: &str) -> Result<(), KeyError> {
    if s.is_empty() {
        return Err(KeyError::Empty { kind });
    }
    for (position, c) in s.chars().enumerate() {
        let ok = c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || (position > 0 && (c == '-' || c == '_'));
        if !ok {
            return Err(KeyError::BadCharacter {
                kind,
                key: s.chars().take(MAX_KEY_LEN).collect(),
                found: c,
                position,
            });
        }
    }
    if s.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong { kind, len: s.len() });
    }
    Ok(())
}

/// The schema of a key: what [`validate`] accepts.
#[cfg(feature = "openapi")]
fn key_schema(kind: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(KEY_PATTERN))
        .min_length(Some(1))
        .max_length(Some(MAX_KEY_LEN))
        .description(Some(format!(
            "A {kind} key: lowercase letters, digits, '-' and '_', starting with a letter or digit"
        )))
        .examples([serde_json::json!(if kind == "machine" {
            "pump-1"
        } else {
            "temp"
        })])
        .into()
}

/// [`validate`]'s rule as a regular expression (for the API description).
pub const KEY_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";

macro_rules! key_type {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates `s` and makes a key of it.
            pub fn new(s: &str) -> Result<Self, KeyError> {
                validate($kind, s)?;
                Ok(Self(Arc::from(s)))
            }

            /// The key as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, KeyError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = KeyError;
            fn try_from(s: &str) -> Result<Self, KeyError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = KeyError;
            fn try_from(s: String) -> Result<Self, KeyError> {
                Self::new(&s)
            }
        }

        /// A key's schema in the API description: the slug rule of [`validate`].
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                key_schema($kind)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `pad` honours width and alignment (`{key:<14}`) in tables.
                f.pad(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

key_type!(
    /// Key of a machine, unique in a deployment (`pump-7`, `line2_compressor`).
    MachineKey,
    "machine"
);
key_type!(
    /// Key of a sensor, unique within its machine (`temperature`, `vibration_rms`).
    SensorKey,
    "sensor"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_slugs() {
        for ok in [
            "a",
            "pump-7",
            "line2_compressor",
            "0",
            &"x".repeat(MAX_KEY_LEN),
        ] {
            assert_eq!(MachineKey::new(ok).expect("valid").as_str(), ok);
        }
    }

    #[test]
    fn rejects_non_slugs_with_reason() {
        assert_eq!(
            MachineKey::new(""),
            Err(KeyError::Empty { kind: "machine" })
        );
        let long = "x".repeat(MAX_KEY_LEN + 1);
        assert!(matches!(
            SensorKey::new(&long),
            Err(KeyError::TooLong { len: 65, .. })
        ));
        for (bad, c, pos) in [
            ("Pump", 'P', 0),
            ("-a", '-', 0),
            ("_a", '_', 0),
            ("a b", ' ', 1),
            ("a/b", '/', 1),
            ("a+", '+', 1),
            ("a#", '#', 1),
            ("ä", 'ä', 0),
        ] {
            match SensorKey::new(bad) {
                Err(KeyError::BadCharacter {
                    found, position, ..
                }) => {
                    assert_eq!((found, position), (c, pos), "{bad}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        let msg = SensorKey::new("a b").expect_err("invalid").to_string();
        assert!(msg.contains("sensor key \"a b\""), "{msg}");
    }

    #[test]
    fn serde_validates() {
        let k: MachineKey = serde_json::from_str("\"pump-1\"").expect("valid");
        assert_eq!(k.as_str(), "pump-1");
        assert!(serde_json::from_str::<MachineKey>("\"Pump 1\"").is_err());
        assert_eq!(serde_json::to_string(&k).expect("ser"), "\"pump-1\"");
    }
}
