//! Value parsers shared by the subcommands: durations, application names, start positions,
//! timestamps and listen addresses.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, SystemTime};

use kinsumer::InitialPosition;

/// A duration such as `250ms`, `1s`, `1m` or `1m30s`.
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e} (expected a duration such as 250ms, 1s or 1m)"))
}

/// An application name: it prefixes the DynamoDB table names `<app>_clients`,
/// `<app>_checkpoints` and `<app>_metadata`, so it takes DynamoDB's table-name characters.
pub fn application(text: &str) -> Result<String, String> {
    const MAX: usize = 255 - "_checkpoints".len();
    if text.is_empty() {
        return Err("the application name cannot be empty".into());
    }
    if text.len() > MAX {
        return Err(format!(
            "the application name is too long for DynamoDB table names (at most {MAX} characters)"
        ));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "{c:?} cannot be part of a DynamoDB table name; use letters, digits, '_', '-' and '.'"
        ));
    }
    Ok(text.to_string())
}

/// Where shards without a checkpoint start: `trim-horizon`, `latest` or `at-timestamp=<RFC 3339>`.
pub fn initial_position(text: &str) -> Result<InitialPosition, String> {
    match text.trim() {
        "trim-horizon" => Ok(InitialPosition::TrimHorizon),
        "latest" => Ok(InitialPosition::Latest),
        other => match other.strip_prefix("at-timestamp=") {
            Some(ts) => rfc3339(ts).map(InitialPosition::AtTimestamp),
            None => Err(format!(
                "unknown position {other:?}; use trim-horizon, latest or \
                 at-timestamp=2024-05-01T12:00:00Z"
            )),
        },
    }
}

/// An RFC 3339 timestamp: `2024-05-01T12:00:00Z`, with optional fractional seconds and a
/// `Z` or `±HH:MM` offset.
pub fn rfc3339(text: &str) -> Result<SystemTime, String> {
    let bad = || {
        format!("{text:?} is not an RFC 3339 timestamp (e.g. 2024-05-01T12:00:00Z or 2024-05-01T14:00:00+02:00)")
    };
    let text = text.trim();
    // Split off the offset: `Z`, or `+HH:MM` / `-HH:MM` after the time of day.
    let (local, offset_secs) = if let Some(local) = text.strip_suffix(['Z', 'z']) {
        (local, 0i64)
    } else {
        let at = text.len().checked_sub(6).ok_or_else(bad)?;
        let (local, offset) = text.split_at(at);
        let sign = match offset.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(bad()),
        };
        let (hours, minutes) = offset[1..].split_once(':').ok_or_else(bad)?;
        let hours: i64 = hours.parse().map_err(|_| bad())?;
        let minutes: i64 = minutes.parse().map_err(|_| bad())?;
        if hours > 23 || minutes > 59 {
            return Err(bad());
        }
        (local, sign * (hours * 3600 + minutes * 60))
    };
    let local = local.replacen('t', "T", 1);
    let at = humantime::parse_rfc3339_weak(&local).map_err(|_| bad())?;
    let shift = Duration::from_secs(offset_secs.unsigned_abs());
    // Local time = UTC + offset, so UTC = local time - offset.
    let utc = if offset_secs >= 0 {
        at.checked_sub(shift)
    } else {
        at.checked_add(shift)
    };
    utc.ok_or_else(bad)
}

/// A listen address `HOST:PORT` (e.g. `127.0.0.1:9898`, `[::]:9898`, `localhost:9898`).
pub fn listen_address(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("{text:?} is not a HOST:PORT address: {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn durations_in_the_usual_units() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
        assert!(duration("soon").is_err());
    }

    #[test]
    fn application_names_follow_dynamodb_rules() {
        assert!(application("orders-v2.prod_1").is_ok());
        assert!(application("").is_err());
        assert!(application("bad name").is_err());
        assert!(application(&"a".repeat(244)).is_err());
    }

    #[test]
    fn positions() {
        assert_eq!(
            initial_position("trim-horizon"),
            Ok(InitialPosition::TrimHorizon)
        );
        assert_eq!(initial_position("latest"), Ok(InitialPosition::Latest));
        assert_eq!(
            initial_position("at-timestamp=1970-01-01T00:01:00Z"),
            Ok(InitialPosition::AtTimestamp(
                UNIX_EPOCH + Duration::from_secs(60)
            ))
        );
        assert!(initial_position("oldest").is_err());
    }

    #[test]
    fn timestamps_with_offsets_and_fractions() {
        let noon = UNIX_EPOCH + Duration::from_secs(1_714_564_800); // 2024-05-01T12:00:00Z
        assert_eq!(rfc3339("2024-05-01T12:00:00Z"), Ok(noon));
        assert_eq!(rfc3339("2024-05-01T14:00:00+02:00"), Ok(noon));
        assert_eq!(rfc3339("2024-05-01T07:30:00-04:30"), Ok(noon));
        assert_eq!(
            rfc3339("2024-05-01T12:00:00.250Z"),
            Ok(noon + Duration::from_millis(250))
        );
        assert!(rfc3339("2024-05-01").is_err());
        assert!(rfc3339("2024-05-01T12:00:00+25:00").is_err());
        assert!(rfc3339("yesterday").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(listen_address("127.0.0.1:9898").map(|a| a.port()), Ok(9898));
        assert!(listen_address("9898").is_err());
    }
}
