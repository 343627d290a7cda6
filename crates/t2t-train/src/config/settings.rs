//! One concern's settings, written once: the resolved struct, and its layer
//! of the same fields, all optional, that is at once command-line flags
//! (clap) and a config file's table (serde).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::TrainError;

/// Where each setting came from, by its key: `preset NAME`, `file PATH` or `flag`.
pub type Sources = BTreeMap<String, String>;

/// The flag of setting `key`.
pub fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// A config file's value of `key` that is not of the setting's type.
pub fn bad_value(key: &str, value: &Value, error: serde_json::Error) -> TrainError {
    let flag = flag(key);
    let error = error.to_string();
    // A setting's own parser may name the flag already.
    let reason = error.strip_prefix(&format!("{flag}: ")).unwrap_or(&error);
    TrainError::Config(format!("{flag} {value}: {reason}"))
}

/// A setting that no layer (not even the preset) gave a value.
pub fn missing(key: &str) -> TrainError {
    TrainError::Config(format!("{}: no value given", flag(key)))
}

/// Writes a concern's resolved struct `$name` and its layer `$layer`.
/// Each field is `required` (every resolved run has it) or `optional`.
macro_rules! settings {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident / $layer:ident ($heading:literal) {
            $(
                $(#[doc = $field_doc:literal])*
                #[arg($($arg:tt)*)]
                $kind:ident $field:ident: $ty:ty,
            )*
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            $(
                $(#[doc = $field_doc])*
                pub $field: settings!(@type $kind $ty),
            )*
        }

        #[doc = concat!("Some of [`", stringify!($name), "`]: one layer of a run's configuration.")]
        #[derive(Clone, Debug, Default, PartialEq, clap::Args, serde::Serialize)]
        #[command(next_help_heading = $heading)]
        pub struct $layer {
            $(
                $(#[doc = $field_doc])*
                #[arg($($arg)*)]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        impl $layer {
            /// The keys of the settings, as config files and `config.toml` name them.
            pub const KEYS: &[&str] = &[$(stringify!($field)),*];

            /// `self` over `base`: each setting `self` holds replaces base's.
            pub fn over(self, base: Self) -> Self {
                Self {
                    $($field: self.$field.or(base.$field),)*
                }
            }

            /// The keys of the settings this layer holds.
            pub fn keys_given(&self) -> Vec<&'static str> {
                let mut keys = Vec::new();
                $(if self.$field.is_some() {
                    keys.push(stringify!($field));
                })*
                keys
            }

            /// The settings of a config file's table that belong to this concern.
            pub fn from_map(
                map: &serde_json::Map<String, serde_json::Value>,
            ) -> Result<Self, $crate::TrainError> {
                Ok(Self {
                    $($field: match map.get(stringify!($field)) {
                        Some(value) => Some(serde_json::from_value(value.clone()).map_err(
                            |e| $crate::config::settings::bad_value(stringify!($field), value, e),
                        )?),
                        None => None,
                    },)*
                })
            }

            /// The resolved settings; an error names a required one no layer gave.
            pub fn resolve(self) -> Result<$name, $crate::TrainError> {
                Ok($name {
                    $($field: settings!(@resolve $kind self.$field, $field),)*
                })
            }
        }
    };
    (@type required $ty:ty) => { $ty };
    (@type optional $ty:ty) => { Option<$ty> };
    (@resolve required $value:expr, $field:ident) => {
        $value.ok_or_else(|| $crate::config::settings::missing(stringify!($field)))?
    };
    (@resolve optional $value:expr, $field:ident) => { $value };
}

pub(crate) use settings;
