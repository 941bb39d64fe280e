//! Reading variables: the lookup every reader goes through (values trimmed, empty as
//! unset, secrets as given), the value types (durations, booleans, choices), and the
//! one error that names the variable.

/// A configuration error: which variable, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var} {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong, without the value when it is a secret.
    pub problem: String,
}

pub(super) fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// Parses a duration: plain seconds (`90`) or a humane string (`30m`, `12h`, `7d`,
/// `1h 30m`). Zero is refused: every timeout must be positive.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("is empty; expected seconds or a duration such as 30m, 12h, 7d".into());
    }
    let secs = if t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<u64>().map_err(|_| "is too large".to_string())?
    } else {
        humantime::parse_duration(t)
            .map_err(|_| {
                format!(
                    "is not a duration: {t:?}; expected seconds or a duration such as 30m, 12h, 7d"
                )
            })?
            .as_secs()
    };
    if secs == 0 {
        return Err("must be at least 1 second".into());
    }
    // Ten years: far beyond any sane session, and keeps all arithmetic far from overflow.
    if secs > 10 * 365 * 24 * 3600 {
        return Err("is longer than 10 years".into());
    }
    Ok(secs)
}

pub(super) fn parse_bool(var: &'static str, text: &str) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(err(var, format!("must be true or false, not {other:?}"))),
    }
}

/// The Worker's variables, as [`Config::from_lookup`](super::Config::from_lookup)
/// reads them.
pub(super) struct Vars<F> {
    pub(super) lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// The value of `name`, trimmed; an empty value counts as unset.
    pub(super) fn get(&self, name: &str) -> Option<String> {
        self.secret(name).map(|v| v.trim().to_owned())
    }

    /// The value of `name` as it is (a secret's bytes are its key material); one that
    /// is empty once trimmed counts as unset.
    pub(super) fn secret(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    pub(super) fn duration(&self, var: &'static str, default: u64) -> Result<u64, ConfigError> {
        self.get(var)
            .map_or(Ok(default), |t| parse_duration(&t).map_err(|p| err(var, p)))
    }

    pub(super) fn boolean(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.get(var).map_or(Ok(default), |t| parse_bool(var, &t))
    }

    /// One of `options` (matched without regard to case), or `default` when unset.
    pub(super) fn choice<T: Copy>(
        &self,
        var: &'static str,
        default: T,
        options: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let Some(text) = self.get(var) else {
            return Ok(default);
        };
        if let Some((_, v)) = options.iter().find(|(n, _)| n.eq_ignore_ascii_case(&text)) {
            return Ok(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let (last, rest) = names.split_last().expect("options are never empty");
        Err(err(
            var,
            format!("must be {} or {last}, not {text:?}", rest.join(", ")),
        ))
    }

    /// A duration that is off when unset.
    /// `KEYCARD_DEVICE_BOUND` and `KEYCARD_DEVICE_BOUND_TTL`: the short-lived cookie's
    /// lifetime when on. The lifetime is at least 5 minutes, because Chrome signs at
    /// most a few proofs per site in 9 minutes, and at most an hour, as long as a
    /// stolen cookie works. (Where the binding is kept needs a binding of the Worker,
    /// which the exchange checks: `SESSION_STORE=kv`, or else the users binding.)
    pub(super) fn device_bound(&self) -> Result<Option<u64>, ConfigError> {
        let on = self.choice(
            "KEYCARD_DEVICE_BOUND",
            false,
            &[("on", true), ("off", false)],
        )?;
        let ttl = self.optional_duration("KEYCARD_DEVICE_BOUND_TTL")?;
        match (on, ttl) {
            (false, None) => Ok(None),
            (false, Some(_)) => Err(err(
                "KEYCARD_DEVICE_BOUND_TTL",
                "is set, but KEYCARD_DEVICE_BOUND is not on",
            )),
            (true, Some(t)) if t < 300 => Err(err(
                "KEYCARD_DEVICE_BOUND_TTL",
                "is under 5 minutes: Chrome signs only a few refreshes per site in 9 minutes",
            )),
            (true, Some(t)) if t > 3600 => Err(err(
                "KEYCARD_DEVICE_BOUND_TTL",
                "is over an hour: a stolen cookie would work that long",
            )),
            (true, t) => Ok(Some(t.unwrap_or(600))),
        }
    }

    pub(super) fn optional_duration(&self, var: &'static str) -> Result<Option<u64>, ConfigError> {
        self.get(var)
            .map(|t| parse_duration(&t).map_err(|p| err(var, p)))
            .transpose()
    }
}
