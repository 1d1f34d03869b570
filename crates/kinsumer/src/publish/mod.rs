//! Writing records: PutRecords in batches, retrying only what failed, and
//! optionally packed into KPL aggregates ([`aggregate`]).

pub mod aggregate;

use std::time::Duration;

use crate::error::{Error, FailedPut, Result, ServiceErrorKind};
use crate::kinesis::{KinesisTransport, PutEntry, PutOutcome};
use crate::reader::backoff::Backoff;
use crate::record::{Position, SequenceNumber, ShardId};

/// Packs `entries` into KPL aggregates of at most `max_bytes` per shard (see
/// [`aggregate::pack`]) and writes them with [`publish_batch`]. Returns, for each
/// input record in order, its shard and position: the aggregate's sequence
/// number with the record's sub-sequence number, or the record's own sequence
/// number when it was written alone.
///
/// Readers that de-aggregate (this crate by default, KCL) get the records back
/// one by one with their own partition keys. [`Error::PublishIncomplete`] names
/// the input records (every member of an aggregate that could not be written).
pub async fn publish_aggregated(
    transport: &dyn KinesisTransport,
    stream: &str,
    entries: Vec<PutEntry>,
    max_bytes: usize,
) -> Result<Vec<(ShardId, Position)>> {
    let shards = transport.list_shards(stream).await.map_err(|source| {
        if source.kind == ServiceErrorKind::NotFound {
            Error::NoSuchStream {
                stream: stream.to_string(),
            }
        } else {
            Error::Kinesis {
                operation: "ListShards",
                stream: stream.to_string(),
                shard: None,
                source,
            }
        }
    })?;
    let packed = aggregate::pack(&entries, &shards, max_bytes);
    let written = match publish_batch(
        transport,
        stream,
        packed.iter().map(|p| p.entry.clone()).collect(),
    )
    .await
    {
        Ok(written) => written,
        // Name the input records that were not written, not the aggregates.
        Err(Error::PublishIncomplete { stream, failed, .. }) => {
            let failed = failed
                .into_iter()
                .flat_map(|f| {
                    packed[f.index]
                        .members
                        .iter()
                        .map(move |&member| FailedPut {
                            index: member,
                            code: f.code.clone(),
                            message: f.message.clone(),
                        })
                })
                .collect();
            return Err(Error::PublishIncomplete {
                stream,
                total: entries.len(),
                failed,
            });
        }
        Err(e) => return Err(e),
    };
    let mut positions: Vec<Option<(ShardId, Position)>> = vec![None; entries.len()];
    for (p, (shard, sequence)) in packed.iter().zip(written) {
        for (sub, &member) in p.members.iter().enumerate() {
            let position = Position {
                sequence: sequence.clone(),
                sub_sequence: p.aggregated.then_some(sub as u64),
            };
            positions[member] = Some((shard.clone(), position));
        }
    }
    Ok(positions.into_iter().flatten().collect())
}

/// Writes `entries` to `stream` with PutRecords, 500 per call, retrying only
/// the entries that failed (capped exponential backoff, 8 attempts). Returns
/// each record's shard and sequence number in input order, or
/// [`Error::PublishIncomplete`] naming the records that could not be written.
pub async fn publish_batch(
    transport: &dyn KinesisTransport,
    stream: &str,
    entries: Vec<PutEntry>,
) -> Result<Vec<(ShardId, SequenceNumber)>> {
    const MAX_PER_CALL: usize = 500;
    const ATTEMPTS: u32 = 8;
    let total = entries.len();
    let mut results: Vec<Option<(ShardId, SequenceNumber)>> = vec![None; total];
    let mut failures: Vec<Option<FailedPut>> = vec![None; total];
    let mut pending: Vec<usize> = (0..total).collect();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    for attempt in 0..ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(backoff.next_delay()).await;
        }
        let mut still = Vec::new();
        for chunk in pending.chunks(MAX_PER_CALL) {
            let batch: Vec<PutEntry> = chunk.iter().map(|&i| entries[i].clone()).collect();
            match transport.put_records(stream, batch).await {
                Ok(outcomes) => {
                    for (&i, outcome) in chunk.iter().zip(outcomes) {
                        match outcome {
                            PutOutcome::Written {
                                shard_id,
                                sequence_number,
                            } => results[i] = Some((shard_id, sequence_number)),
                            PutOutcome::Failed { code, message } => {
                                failures[i] = Some(FailedPut {
                                    index: i,
                                    code,
                                    message,
                                });
                                still.push(i);
                            }
                        }
                    }
                }
                Err(e) if e.is_retryable() => {
                    for &i in chunk {
                        failures[i] = Some(FailedPut {
                            index: i,
                            code: format!("{:?}", e.kind),
                            message: e.message.clone(),
                        });
                        still.push(i);
                    }
                }
                Err(e) if e.kind == ServiceErrorKind::NotFound => {
                    return Err(Error::NoSuchStream {
                        stream: stream.to_string(),
                    })
                }
                Err(source) => {
                    return Err(Error::Kinesis {
                        operation: "PutRecords",
                        stream: stream.to_string(),
                        shard: None,
                        source,
                    })
                }
            }
        }
        pending = still;
    }
    if !pending.is_empty() {
        return Err(Error::PublishIncomplete {
            stream: stream.to_string(),
            total,
            failed: pending
                .iter()
                .filter_map(|&i| failures[i].clone())
                .collect(),
        });
    }
    Ok(results.into_iter().flatten().collect())
}
