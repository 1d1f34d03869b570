//! Sticky, balanced assignment of shards to clients: a pure function every
//! client computes identically from the same inputs.

use std::collections::{BTreeMap, HashMap};

use crate::record::{ClientId, ShardId};

/// Assigns every shard of `shards` to one of `clients`.
///
/// - Balanced: owned-shard counts differ by at most one.
/// - Sticky: a shard stays with its current owner (from `owners`) unless that
///   owner must give shards up to reach balance; then it keeps its first ones
///   in shard order and gives up the rest.
/// - Deterministic: the result depends only on the inputs (clients and shards
///   in any order; duplicates ignored).
///
/// Owners not in `clients` (dead or unknown) and shards not in `shards` are ignored.
pub fn assign(
    clients: &[ClientId],
    shards: &[ShardId],
    owners: &HashMap<ShardId, ClientId>,
) -> BTreeMap<ShardId, ClientId> {
    let mut clients: Vec<&ClientId> = clients.iter().collect();
    clients.sort();
    clients.dedup();
    let mut shards: Vec<&ShardId> = shards.iter().collect();
    shards.sort();
    shards.dedup();
    let mut result = BTreeMap::new();
    if clients.is_empty() {
        return result;
    }

    // Shards each live client holds now, in shard order.
    let mut held: BTreeMap<&ClientId, Vec<&ShardId>> =
        clients.iter().map(|c| (*c, Vec::new())).collect();
    for shard in &shards {
        if let Some(owner) = owners.get(*shard) {
            if let Some(list) = held.get_mut(owner) {
                list.push(*shard);
            }
        }
    }

    // Quotas: `base` each, one more for `extra` clients — those holding the
    // most now (ties by id), so that reaching balance moves as little as possible.
    let base = shards.len() / clients.len();
    let extra = shards.len() % clients.len();
    let mut by_load: Vec<&ClientId> = clients.clone();
    by_load.sort_by(|a, b| held[b].len().cmp(&held[a].len()).then_with(|| a.cmp(b)));
    let quota: HashMap<&ClientId, usize> = by_load
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, base + usize::from(i < extra)))
        .collect();

    // Keep what fits the quota.
    let mut load: HashMap<&ClientId, usize> = HashMap::new();
    for (client, list) in &held {
        for shard in list.iter().take(quota[client]) {
            result.insert((*shard).clone(), (*client).clone());
        }
        load.insert(*client, list.len().min(quota[client]));
    }

    // Deal the rest, in shard order, to clients with room, in id order.
    let mut room = clients
        .iter()
        .flat_map(|c| std::iter::repeat_n(*c, quota[c] - load[c]));
    for shard in shards {
        if !result.contains_key(shard) {
            if let Some(client) = room.next() {
                result.insert(shard.clone(), client.clone());
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(n: usize) -> Vec<ClientId> {
        (0..n).map(|i| ClientId::new(format!("c{i:02}"))).collect()
    }

    fn shard_ids(n: usize) -> Vec<ShardId> {
        (0..n)
            .map(|i| ShardId::new(format!("shardId-{i:012}")))
            .collect()
    }

    fn counts(a: &BTreeMap<ShardId, ClientId>, clients: &[ClientId]) -> Vec<usize> {
        clients
            .iter()
            .map(|c| a.values().filter(|o| *o == c).count())
            .collect()
    }

    fn owners_of(a: &BTreeMap<ShardId, ClientId>) -> HashMap<ShardId, ClientId> {
        a.iter().map(|(s, c)| (s.clone(), c.clone())).collect()
    }

    fn moved(before: &BTreeMap<ShardId, ClientId>, after: &BTreeMap<ShardId, ClientId>) -> usize {
        after
            .iter()
            .filter(|(s, c)| before.get(*s).is_some_and(|b| b != *c))
            .count()
    }

    #[test]
    fn no_clients_no_assignment() {
        assert!(assign(&[], &shard_ids(3), &HashMap::new()).is_empty());
    }

    #[test]
    fn fresh_assignment_is_balanced_and_complete() {
        let clients = ids(3);
        let a = assign(&clients, &shard_ids(10), &HashMap::new());
        assert_eq!(a.len(), 10);
        assert_eq!(counts(&a, &clients), vec![4, 3, 3]);
    }

    #[test]
    fn join_moves_only_what_it_must() {
        let shards = shard_ids(12);
        let before = assign(&ids(3), &shards, &HashMap::new());
        let after = assign(&ids(4), &shards, &owners_of(&before));
        assert_eq!(counts(&after, &ids(4)), vec![3, 3, 3, 3]);
        assert_eq!(moved(&before, &after), 3);
    }

    #[test]
    fn leave_moves_only_the_leavers_shards() {
        let shards = shard_ids(12);
        let before = assign(&ids(4), &shards, &HashMap::new());
        let survivors: Vec<ClientId> = ids(4).into_iter().filter(|c| c.as_str() != "c01").collect();
        let after = assign(&survivors, &shards, &owners_of(&before));
        for (shard, owner) in &before {
            if owner.as_str() != "c01" {
                assert_eq!(after.get(shard), Some(owner), "{shard} moved needlessly");
            }
        }
        assert_eq!(counts(&after, &survivors), vec![4, 4, 4]);
    }

    proptest! {
        #[test]
        fn balanced_complete_deterministic_and_sticky(
            n_clients in 1usize..8,
            n_shards in 0usize..40,
            owner_picks in proptest::collection::vec(0usize..10, 40),
            joiner in any::<bool>(),
        ) {
            let clients = ids(n_clients);
            let shards = shard_ids(n_shards);
            // Arbitrary current owners, some dead (index beyond the live clients).
            let owners: HashMap<ShardId, ClientId> = shards.iter().zip(&owner_picks)
                .map(|(s, &i)| (s.clone(), ClientId::new(format!("c{i:02}"))))
                .collect();
            let a = assign(&clients, &shards, &owners);
            prop_assert_eq!(a.len(), n_shards);
            let c = counts(&a, &clients);
            prop_assert!(c.iter().max().unwrap_or(&0) - c.iter().min().unwrap_or(&0) <= 1);
            let mut reversed = clients.clone();
            reversed.reverse();
            prop_assert_eq!(&assign(&reversed, &shards, &owners), &a);

            // From a balanced state, one join or one leave moves at most ceil(S/N') shards
            // and never moves a shard between two clients that both stay.
            let changed = if joiner { ids(n_clients + 1) } else { ids(n_clients.max(2) - 1) };
            let b = assign(&changed, &shards, &owners_of(&a));
            let bound = n_shards.div_ceil(changed.len().max(1)) + 1;
            prop_assert!(moved(&a, &b) <= bound, "moved {} > {}", moved(&a, &b), bound);
            // Stable: recomputing from its own result changes nothing.
            prop_assert_eq!(&assign(&changed, &shards, &owners_of(&b)), &b);
        }
    }
}
