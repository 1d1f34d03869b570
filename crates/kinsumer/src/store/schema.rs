//! Table, key and attribute names shared by reads and writes. They are the Go
//! library's, so that an application migrating from it keeps its checkpoints.

/// Suffix of the clients table: `<app>_clients`.
pub const CLIENTS_SUFFIX: &str = "_clients";
/// Suffix of the checkpoints (leases) table: `<app>_checkpoints`.
pub const CHECKPOINTS_SUFFIX: &str = "_checkpoints";
/// Suffix of the metadata table: `<app>_metadata`.
pub const METADATA_SUFFIX: &str = "_metadata";

/// Hash key of the clients table.
pub const CLIENT_ID: &str = "ID";
/// Hash key of the checkpoints table. A DynamoDB reserved word: always use a `#name` placeholder.
pub const SHARD: &str = "Shard";
/// Hash key of the metadata table.
pub const KEY: &str = "Key";

/// Last processed sequence number of a shard (string).
pub const SEQUENCE_NUMBER: &str = "SequenceNumber";
/// Last processed user record inside the aggregate at `SequenceNumber` (number; ours, additive).
pub const SUB_SEQUENCE_NUMBER: &str = "SubSequenceNumber";
/// Time of the last change, Unix nanoseconds (number).
pub const LAST_UPDATE: &str = "LastUpdate";
/// `LastUpdate` in RFC 1123 form, for people.
pub const LAST_UPDATE_RFC: &str = "LastUpdateRFC";
/// The id of the client holding a lease.
pub const OWNER_ID: &str = "OwnerID";
/// The name of the client holding a lease.
pub const OWNER_NAME: &str = "OwnerName";
/// When a closed shard was fully processed, Unix nanoseconds.
pub const FINISHED: &str = "Finished";
/// `Finished` in RFC 1123 form, for people.
pub const FINISHED_RFC: &str = "FinishedRFC";
/// A client's (or the leader's) name.
pub const NAME: &str = "Name";
/// How a client reads the stream (ours, additive): `polling` or `fan-out <consumer ARN>`.
pub const READ_MODE: &str = "ReadMode";
/// The leader's client id in the `Leader` item.
pub const LEADER_ID: &str = "ID";

/// Metadata item naming the leader.
pub const LEADER_KEY: &str = "Leader";
/// Metadata item caching the shard list.
pub const SHARD_CACHE_KEY: &str = "ShardCache";
/// Shard ids of the cache (list of strings, as the Go library writes them).
pub const SHARD_IDS: &str = "ShardIDs";
/// Shards of the cache with their parents (list of maps; ours, additive).
pub const SHARDS: &str = "Shards";
/// In a `Shards` entry: the shard id.
pub const SHARD_ENTRY_ID: &str = "ID";
/// In a `Shards` entry: the parent shard id.
pub const SHARD_ENTRY_PARENT: &str = "Parent";
/// In a `Shards` entry: the adjacent parent shard id.
pub const SHARD_ENTRY_ADJACENT_PARENT: &str = "AdjacentParent";
/// In a `Shards` entry: the ending sequence number of a closed shard.
pub const SHARD_ENTRY_ENDING: &str = "EndingSequenceNumber";

/// The three table names of an application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableNames {
    /// `<app>_clients`.
    pub clients: String,
    /// `<app>_checkpoints`.
    pub checkpoints: String,
    /// `<app>_metadata`.
    pub metadata: String,
}

impl TableNames {
    /// The table names of application `app`.
    pub fn for_app(app: &str) -> Self {
        TableNames {
            clients: format!("{app}{CLIENTS_SUFFIX}"),
            checkpoints: format!("{app}{CHECKPOINTS_SUFFIX}"),
            metadata: format!("{app}{METADATA_SUFFIX}"),
        }
    }

    /// All three, in creation order.
    pub fn all(&self) -> [&str; 3] {
        [&self.clients, &self.checkpoints, &self.metadata]
    }
}

/// A time as `LastUpdateRFC` shows it (RFC 1123 with numeric zone, UTC).
pub fn rfc1123(unix_nanos: i64) -> String {
    let secs = unix_nanos.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month_name = MONTHS[(month - 1) as usize];
    format!("{weekday}, {d:02} {month_name} {year} {h:02}:{m:02}:{s:02} +0000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_follow_the_go_library() {
        let t = TableNames::for_app("orders");
        assert_eq!(
            t.all(),
            ["orders_clients", "orders_checkpoints", "orders_metadata"]
        );
    }

    #[test]
    fn rfc1123_formats_utc() {
        assert_eq!(rfc1123(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        // 2026-11-25T21:32:22Z
        assert_eq!(
            rfc1123(1_795_642_342 * 1_000_000_000),
            "Wed, 25 Nov 2026 21:32:22 +0000"
        );
    }
}
