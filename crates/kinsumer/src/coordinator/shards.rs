//! Shard-list logic: which shards may be read (parents before children) and
//! what the leader caches.

use std::collections::HashSet;

use crate::kinesis::ShardDescription;
use crate::record::ShardId;

/// Shards that may be read now, sorted by id: not finished, and every parent
/// still in the list is finished. A shard's records are thus read only after
/// all records of its parents, which keeps per-key order across splits and merges.
pub fn eligible_shards(shards: &[ShardDescription], finished: &HashSet<ShardId>) -> Vec<ShardId> {
    let present: HashSet<&ShardId> = shards.iter().map(|s| &s.id).collect();
    let mut eligible: Vec<ShardId> = shards
        .iter()
        .filter(|s| !finished.contains(&s.id))
        .filter(|s| {
            s.parents()
                .all(|p| !present.contains(p) || finished.contains(p))
        })
        .map(|s| s.id.clone())
        .collect();
    eligible.sort();
    eligible.dedup();
    eligible
}

/// The shard list the leader caches: every listed shard not yet finished, sorted by id.
pub fn cached_shards(
    listed: &[ShardDescription],
    finished: &HashSet<ShardId>,
) -> Vec<ShardDescription> {
    let mut shards: Vec<ShardDescription> = listed
        .iter()
        .filter(|s| !finished.contains(&s.id))
        .cloned()
        .collect();
    shards.sort_by(|a, b| a.id.cmp(&b.id));
    shards.dedup_by(|a, b| a.id == b.id);
    shards
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: &[&str]) -> ShardDescription {
        ShardDescription {
            id: ShardId::new(id),
            parent: parents.first().map(|p| ShardId::new(*p)),
            adjacent_parent: parents.get(1).map(|p| ShardId::new(*p)),
            hash_range: None,
            ending_sequence: None,
        }
    }

    fn set(ids: &[&str]) -> HashSet<ShardId> {
        ids.iter().map(|s| ShardId::new(*s)).collect()
    }

    fn names(v: Vec<ShardId>) -> Vec<String> {
        v.into_iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn children_of_a_split_wait_for_their_parent() {
        let list = vec![shard("p", &[]), shard("a", &["p"]), shard("b", &["p"])];
        assert_eq!(names(eligible_shards(&list, &set(&[]))), vec!["p"]);
        assert_eq!(names(eligible_shards(&list, &set(&["p"]))), vec!["a", "b"]);
    }

    #[test]
    fn merge_child_waits_for_both_parents() {
        let list = vec![shard("x", &[]), shard("y", &[]), shard("m", &["x", "y"])];
        assert_eq!(names(eligible_shards(&list, &set(&["x"]))), vec!["y"]);
        assert_eq!(names(eligible_shards(&list, &set(&["x", "y"]))), vec!["m"]);
    }

    #[test]
    fn parents_gone_from_the_stream_do_not_block() {
        let list = vec![shard("a", &["trimmed"])];
        assert_eq!(names(eligible_shards(&list, &set(&[]))), vec!["a"]);
    }

    #[test]
    fn cache_drops_finished_and_sorts() {
        let list = vec![shard("b", &[]), shard("a", &[]), shard("c", &["a"])];
        let cached = cached_shards(&list, &set(&["a"]));
        let ids: Vec<&str> = cached.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, vec!["b", "c"]);
    }
}
