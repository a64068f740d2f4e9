//! How every settings section reads its variables: a value is trimmed and an
//! empty one counts as unset, an unset one takes its default, and a malformed
//! one is a [`ConfigError`] naming the variable in one line.

use std::{fmt, str::FromStr, time::Duration};

use super::ConfigError;

/// The variables, looked up by name.
pub struct Vars<'a>(pub &'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The variable's value, trimmed, with an empty value treated as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// The value exactly as set, for secrets whose spaces are part of them; an
    /// empty value is unset.
    pub fn untrimmed(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty())
    }

    /// The value, or `default` when unset.
    pub fn text(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// The value if set, which `check` must accept; its error is the problem.
    pub fn checked<T, E: Into<String>>(
        &self,
        name: &'static str,
        check: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ConfigError> {
        self.get(name)
            .map(|value| check(&value).map_err(|problem| ConfigError::new(name, problem)))
            .transpose()
    }

    /// The value if set; unset is an error when `needed_by` names a setting that
    /// needs it.
    pub fn needed(&self, name: &'static str, needed_by: Option<&str>) -> Result<Option<String>, ConfigError> {
        match (self.get(name), needed_by) {
            (None, Some(by)) => Err(ConfigError::new(name, format!("is not set but {by} needs it"))),
            (value, _) => Ok(value),
        }
    }

    /// A URL with one of `schemes`; it has no default.
    pub fn url(&self, name: &'static str, schemes: &[&str]) -> Result<String, ConfigError> {
        let value = self.get(name).ok_or_else(|| ConfigError::new(name, "is not set"))?;
        let scheme = value.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some(scheme) if schemes.contains(&scheme) => Ok(value),
            _ => Err(ConfigError::new(
                name,
                format!("must be a URL starting with {}://", schemes.join("://, ")),
            )),
        }
    }

    /// The value (or `default`) parsed with `FromStr`.
    pub fn parsed<T: FromStr>(&self, name: &'static str, default: &str) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        let value = self.text(name, default);
        value
            .parse()
            .map_err(|error| ConfigError::new(name, format!("{value:?} is not valid: {error}")))
    }

    /// One of `choices` by its name; unset is the first.
    pub fn choice<T: Copy>(&self, name: &'static str, choices: &[(&str, T)]) -> Result<T, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(choices[0].1);
        };
        match choices.iter().find(|(choice, _)| *choice == value) {
            Some((_, kind)) => Ok(*kind),
            None => {
                let names: Vec<&str> = choices.iter().map(|(choice, _)| *choice).collect();
                Err(ConfigError::new(name, format!("{value:?} is not one of {}", names.join(", "))))
            }
        }
    }

    /// A number within `min..=max`, or `default` when unset.
    pub fn bounded<T>(&self, name: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        Ok(self.bounded_if_set(name, min, max)?.unwrap_or(default))
    }

    /// A number within `min..=max` if the variable is set, else `None`.
    pub fn bounded_if_set<T>(&self, name: &'static str, min: T, max: T) -> Result<Option<T>, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let parsed: T = value
            .parse()
            .map_err(|error| ConfigError::new(name, format!("{value:?} is not a number: {error}")))?;
        if parsed < min || parsed > max {
            return Err(ConfigError::new(name, format!("{parsed} is outside {min}..={max}")));
        }
        Ok(Some(parsed))
    }

    /// A number of seconds within `min..=max`, or `default` when unset.
    pub fn secs(&self, name: &'static str, default: u64, min: u64, max: u64) -> Result<Duration, ConfigError> {
        self.bounded(name, default, min, max).map(Duration::from_secs)
    }

    /// A number of milliseconds within `min..=max`, or `default` when unset.
    pub fn millis(&self, name: &'static str, default: u64, min: u64, max: u64) -> Result<Duration, ConfigError> {
        self.bounded(name, default, min, max).map(Duration::from_millis)
    }

    pub fn boolean(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.to_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError::new(name, format!("{other:?} is not true or false"))),
        }
    }

    /// A prefix for broker or Redis names: short, and only characters that need
    /// no quoting anywhere (letters, digits, `.`, `_`, `-`, `:`).
    pub fn name_prefix(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.text(name, default);
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':');
        if value.len() > 64 || !value.chars().all(allowed) {
            return Err(ConfigError::new(
                name,
                format!("{value:?} must be at most 64 of A-Z a-z 0-9 . _ - :"),
            ));
        }
        Ok(value)
    }
}
