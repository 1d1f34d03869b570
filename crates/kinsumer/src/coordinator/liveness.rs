//! Deciding that a client is dead, robustly against clock skew between hosts.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::record::ClientId;
use crate::store::ClientRow;

/// Tracks each client's heartbeat value and when this client first saw it.
///
/// A client is dead when its heartbeat is at least one lease duration old by
/// the wall clock *and* has not changed for half a lease duration by this
/// client's monotonic clock — or has not changed for two lease durations. Skew
/// between hosts thus delays a takeover by at most one lease duration and never
/// causes one. Observations must be continuous: after this client could not
/// read the table (its own outage), [`Liveness::forget`] starts them afresh, so
/// that others, who could not write meanwhile either, get half a lease to
/// heartbeat again.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    seen: HashMap<ClientId, (i64, Instant)>,
}

/// The verdict on the client rows at one moment.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// Live clients, sorted by id.
    pub(crate) alive: Vec<ClientId>,
    /// Clients judged dead.
    pub(crate) dead: Vec<ClientId>,
    /// When the first live client would be judged dead if it does not heartbeat again.
    pub(crate) next_expiry: Option<Instant>,
}

impl Liveness {
    /// Drops every observation (after this client failed to read the clients table).
    pub(crate) fn forget(&mut self) {
        self.seen.clear();
    }

    pub(crate) fn judge(
        &mut self,
        rows: &[ClientRow],
        wall_now: i64,
        now: Instant,
        lease: Duration,
    ) -> Verdict {
        let lease_nanos = i64::try_from(lease.as_nanos()).unwrap_or(i64::MAX);
        let mut verdict = Verdict::default();
        let mut seen = HashMap::with_capacity(rows.len());
        for row in rows {
            let first_seen = match self.seen.get(&row.id) {
                Some(&(value, at)) if value == row.last_update => at,
                _ => now,
            };
            seen.insert(row.id.clone(), (row.last_update, first_seen));
            let age = wall_now.saturating_sub(row.last_update);
            let unchanged = now.saturating_duration_since(first_seen);
            let dead = (age >= lease_nanos && unchanged >= lease / 2) || unchanged >= lease * 2;
            if dead {
                verdict.dead.push(row.id.clone());
            } else {
                verdict.alive.push(row.id.clone());
                let by_wall =
                    now + Duration::from_nanos(u64::try_from(lease_nanos - age).unwrap_or(0));
                let expiry = by_wall
                    .max(first_seen + lease / 2)
                    .min(first_seen + lease * 2);
                verdict.next_expiry = Some(verdict.next_expiry.map_or(expiry, |e| e.min(expiry)));
            }
        }
        self.seen = seen;
        verdict.alive.sort();
        verdict.dead.sort();
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    fn row(id: &str, last_update: i64) -> ClientRow {
        ClientRow {
            id: ClientId::new(id),
            name: id.into(),
            last_update,
            read_mode: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_dies_after_one_lease() {
        let lease = Duration::from_secs(2);
        let mut l = Liveness::default();
        let t0 = Instant::now();
        let wall0 = 1_000 * SEC;
        let v = l.judge(&[row("a", wall0), row("b", wall0)], wall0, t0, lease);
        assert_eq!(v.alive.len(), 2);
        // b keeps heartbeating, a stops.
        let t1 = t0 + Duration::from_millis(1900);
        let v = l.judge(
            &[row("a", wall0), row("b", wall0 + SEC)],
            wall0 + 19 * SEC / 10,
            t1,
            lease,
        );
        assert_eq!(v.alive.len(), 2);
        assert_eq!(v.next_expiry, Some(t0 + lease));
        let t2 = t0 + lease;
        let v = l.judge(
            &[row("a", wall0), row("b", wall0 + 2 * SEC)],
            wall0 + 2 * SEC,
            t2,
            lease,
        );
        assert_eq!(v.dead, vec![ClientId::new("a")]);
        assert_eq!(v.alive, vec![ClientId::new("b")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_skewed_clock_delays_but_never_causes_a_takeover() {
        let lease = Duration::from_secs(2);
        let mut l = Liveness::default();
        let t0 = Instant::now();
        // The writer's clock is 5 s behind ours, but it heartbeats every 600 ms.
        let mut writer = 100 * SEC;
        for i in 0..10u32 {
            writer += 6 * SEC / 10;
            let ours = writer + 5 * SEC;
            let v = l.judge(
                &[row("w", writer)],
                ours,
                t0 + Duration::from_millis(600) * i,
                lease,
            );
            assert_eq!(v.alive.len(), 1, "step {i}");
        }
        // A writer whose clock is far ahead stops: dead after two leases unchanged.
        let mut l = Liveness::default();
        let ahead = 500 * SEC;
        assert_eq!(
            l.judge(&[row("w", ahead)], 100 * SEC, t0, lease)
                .alive
                .len(),
            1
        );
        let v = l.judge(&[row("w", ahead)], 102 * SEC, t0 + lease, lease);
        assert_eq!(v.alive.len(), 1);
        let v = l.judge(&[row("w", ahead)], 104 * SEC, t0 + lease * 2, lease);
        assert_eq!(v.dead.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn rows_from_long_ago_are_dead_after_half_a_lease_of_watching() {
        let lease = Duration::from_secs(2);
        let mut l = Liveness::default();
        let t0 = Instant::now();
        let v = l.judge(&[row("old", 0)], 1_000 * SEC, t0, lease);
        assert_eq!(
            v.alive,
            vec![ClientId::new("old")],
            "not judged on one look"
        );
        let v = l.judge(&[row("old", 0)], 1_001 * SEC, t0 + lease / 2, lease);
        assert_eq!(v.dead, vec![ClientId::new("old")]);
    }

    #[tokio::test(start_paused = true)]
    async fn forgetting_gives_everyone_half_a_lease_again() {
        let lease = Duration::from_secs(2);
        let mut l = Liveness::default();
        let t0 = Instant::now();
        l.judge(&[row("a", 0)], 0, t0, lease);
        // Our own outage: 10 s without reading. a could not write either.
        l.forget();
        let t1 = t0 + Duration::from_secs(10);
        let v = l.judge(&[row("a", 0)], 10 * SEC, t1, lease);
        assert_eq!(v.alive.len(), 1);
        // a heartbeats again within half a lease: alive.
        let v = l.judge(
            &[row("a", 10 * SEC)],
            10 * SEC + SEC / 2,
            t1 + lease / 4,
            lease,
        );
        assert_eq!(v.alive.len(), 1);
    }
}
