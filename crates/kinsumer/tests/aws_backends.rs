//! The AWS backends (`AwsKinesis`, `DynamoStore`) against the emulators (kinesalite, dynalite).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use kinsumer::kinesis::aws::AwsKinesis;
use kinsumer::kinesis::{
    KinesisTransport, PutEntry, PutOutcome, ShardDescription, StartingPosition,
};
use kinsumer::store::dynamo::DynamoStore;
use kinsumer::store::schema;
use kinsumer::store::{ClientRow, CoordinationStore, LeaseWrite, ShardCache};
use kinsumer::{
    Billing, ClientId, Error, InitialPosition, Position, SequenceNumber, ServiceErrorKind, ShardId,
};

/// Poll often: dynalite creates and deletes tables in a millisecond.
const WAITER_DELAY: Duration = Duration::from_millis(10);
const BILLING: Billing = Billing::Provisioned { read: 5, write: 5 };

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .expect("the clock is after 1970")
}

fn entry(key: &str, data: &str) -> PutEntry {
    PutEntry {
        partition_key: key.to_string(),
        data: Bytes::from(data.to_string()),
        explicit_hash_key: None,
    }
}

fn written(outcome: &PutOutcome) -> (ShardId, SequenceNumber) {
    match outcome {
        PutOutcome::Written {
            shard_id,
            sequence_number,
        } => (shard_id.clone(), sequence_number.clone()),
        PutOutcome::Failed { code, message } => panic!("put failed: {code}: {message}"),
    }
}

/// Reads a shard from `from` until caught up (open shard) or its end (closed shard).
async fn read_from(
    kinesis: &AwsKinesis,
    stream: &str,
    shard: &ShardId,
    from: StartingPosition,
) -> (Vec<(String, String, SequenceNumber)>, bool) {
    let mut iterator = Some(
        kinesis
            .shard_iterator(stream, shard, &from)
            .await
            .expect("GetShardIterator"),
    );
    let mut records = Vec::new();
    for _ in 0..100 {
        let Some(current) = iterator else {
            return (records, true);
        };
        let page = kinesis
            .get_records(&current, 1000)
            .await
            .expect("GetRecords");
        let caught_up = page.records.is_empty() && page.millis_behind_latest == Some(0);
        for r in page.records {
            assert!(r.approximate_arrival.is_some(), "arrival time is mapped");
            records.push((
                r.partition_key,
                String::from_utf8(r.data.to_vec()).expect("utf-8 payload"),
                r.sequence_number,
            ));
        }
        iterator = page.next_iterator;
        if caught_up && iterator.is_some() {
            return (records, false);
        }
    }
    panic!("reading {stream}/{shard} did not end");
}

fn data_of(records: &[(String, String, SequenceNumber)]) -> Vec<&str> {
    records.iter().map(|(_, d, _)| d.as_str()).collect()
}

// --- Kinesis ---------------------------------------------------------------------------------

#[tokio::test]
async fn list_shards_of_a_fresh_stream_and_after_a_split() {
    let emu = common::emulators().await;
    let stream = emu.unique_name("aws-split");
    emu.create_stream(&stream, 2).await;
    let kinesis = AwsKinesis::from_conf(&emu.sdk_config());

    let shards = kinesis.list_shards(&stream).await.expect("ListShards");
    assert_eq!(shards.len(), 2);
    for shard in &shards {
        assert_eq!(shard.parents().count(), 0, "{shard:?}");
        assert_eq!(shard.ending_sequence, None, "{shard:?}");
    }
    let parent = shards[0].id.clone();

    // Records into the parent (hash key 0 is in the first shard's range).
    let outcomes = kinesis
        .put_records(
            &stream,
            (0..3)
                .map(|i| PutEntry {
                    explicit_hash_key: Some("0".to_string()),
                    ..entry("k", &format!("before-split-{i}"))
                })
                .collect(),
        )
        .await
        .expect("PutRecords");
    let landed: Vec<_> = outcomes.iter().map(written).collect();
    for (shard, _) in &landed {
        assert_eq!(
            shard, &parent,
            "explicit hash key 0 lands in the first shard"
        );
    }
    let last_in_parent = landed.last().expect("three outcomes").1.clone();

    let (lower, upper) = emu.split_shard(&stream, parent.as_str()).await;
    let shards = kinesis.list_shards(&stream).await.expect("ListShards");
    assert_eq!(shards.len(), 4, "{shards:?}");
    let find = |id: &str| -> &ShardDescription {
        shards
            .iter()
            .find(|s| s.id.as_str() == id)
            .unwrap_or_else(|| panic!("{id} is listed"))
    };
    let closed = find(parent.as_str());
    let ending = closed
        .ending_sequence
        .clone()
        .expect("the split parent has an ending sequence number");
    assert!(ending >= last_in_parent, "{ending:?} < {last_in_parent:?}");
    for child in [&lower, &upper] {
        let child = find(child);
        assert_eq!(child.parent.as_ref(), Some(&parent));
        assert_eq!(child.adjacent_parent, None);
        assert_eq!(child.ending_sequence, None);
    }
    assert_eq!(find(shards[1].id.as_str()).parents().count(), 0);

    // The closed parent reads to its end: every record, then no next iterator.
    let (records, ended) = read_from(
        &kinesis,
        &stream,
        &parent,
        StartingPosition::Initial(InitialPosition::TrimHorizon),
    )
    .await;
    assert!(ended, "a closed shard ends");
    assert_eq!(
        data_of(&records),
        ["before-split-0", "before-split-1", "before-split-2"]
    );

    emu.delete_stream(&stream).await;
}

#[tokio::test]
async fn every_starting_position_starts_where_it_says() {
    let emu = common::emulators().await;
    let stream = emu.unique_name("aws-positions");
    emu.create_stream(&stream, 1).await;
    let kinesis = AwsKinesis::from_conf(&emu.sdk_config());
    let shard = kinesis.list_shards(&stream).await.expect("ListShards")[0]
        .id
        .clone();

    let first = kinesis
        .put_records(
            &stream,
            (0..5).map(|i| entry("k", &format!("r{i}"))).collect(),
        )
        .await
        .expect("PutRecords");
    let sequences: Vec<SequenceNumber> = first.iter().map(|o| written(o).1).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");

    let (all, _) = read_from(
        &kinesis,
        &stream,
        &shard,
        StartingPosition::Initial(InitialPosition::TrimHorizon),
    )
    .await;
    assert_eq!(data_of(&all), ["r0", "r1", "r2", "r3", "r4"]);
    assert!(all.iter().all(|(k, _, _)| k == "k"));
    assert_eq!(
        all.iter().map(|(_, _, s)| s.clone()).collect::<Vec<_>>(),
        sequences
    );

    let (after, _) = read_from(
        &kinesis,
        &stream,
        &shard,
        StartingPosition::After(sequences[1].clone()),
    )
    .await;
    assert_eq!(
        data_of(&after),
        ["r2", "r3", "r4"],
        "After skips exactly the named record"
    );

    let (at, _) = read_from(
        &kinesis,
        &stream,
        &shard,
        StartingPosition::At(sequences[1].clone()),
    )
    .await;
    assert_eq!(
        data_of(&at),
        ["r1", "r2", "r3", "r4"],
        "At includes the named record"
    );

    // Latest: an iterator taken now sees only what is put after it.
    let latest = kinesis
        .shard_iterator(
            &stream,
            &shard,
            &StartingPosition::Initial(InitialPosition::Latest),
        )
        .await
        .expect("GetShardIterator LATEST");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let boundary = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    kinesis
        .put_records(&stream, vec![entry("k", "late-0"), entry("k", "late-1")])
        .await
        .expect("PutRecords");
    let page = kinesis
        .get_records(&latest, 100)
        .await
        .expect("GetRecords LATEST");
    let late: Vec<_> = page
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect();
    assert_eq!(late, ["late-0", "late-1"]);
    assert!(page.next_iterator.is_some());
    assert!(page.millis_behind_latest.is_some());

    // A limit bounds the page.
    let limited = kinesis
        .shard_iterator(
            &stream,
            &shard,
            &StartingPosition::Initial(InitialPosition::TrimHorizon),
        )
        .await
        .expect("GetShardIterator");
    let page = kinesis.get_records(&limited, 2).await.expect("GetRecords");
    assert_eq!(page.records.len(), 2);

    // AtTimestamp: from the first record put at or after the time.
    let (since, _) = read_from(
        &kinesis,
        &stream,
        &shard,
        StartingPosition::Initial(InitialPosition::AtTimestamp(boundary)),
    )
    .await;
    assert_eq!(data_of(&since), ["late-0", "late-1"]);

    emu.delete_stream(&stream).await;
}

#[tokio::test]
async fn put_records_reports_one_outcome_per_entry() {
    let emu = common::emulators().await;
    let stream = emu.unique_name("aws-put");
    emu.create_stream(&stream, 2).await;
    let kinesis = AwsKinesis::from_conf(&emu.sdk_config());
    let shards = kinesis.list_shards(&stream).await.expect("ListShards");

    assert_eq!(
        kinesis.put_records(&stream, Vec::new()).await,
        Ok(Vec::new()),
        "nothing to put is no call"
    );

    let top = (u128::MAX).to_string();
    let outcomes = kinesis
        .put_records(
            &stream,
            vec![
                PutEntry {
                    explicit_hash_key: Some("0".to_string()),
                    ..entry("a", "low")
                },
                PutEntry {
                    explicit_hash_key: Some(top),
                    ..entry("a", "high")
                },
                entry("b", "by key"),
            ],
        )
        .await
        .expect("PutRecords");
    assert_eq!(outcomes.len(), 3);
    let landed: Vec<_> = outcomes.iter().map(written).collect();
    assert_eq!(
        landed[0].0, shards[0].id,
        "hash key 0 is in the first shard"
    );
    assert_eq!(
        landed[1].0, shards[1].id,
        "the top hash key is in the last shard"
    );
    assert!(shards.iter().any(|s| s.id == landed[2].0));

    let missing = kinesis
        .put_records(&emu.unique_name("aws-put-missing"), vec![entry("a", "x")])
        .await
        .expect_err("a missing stream");
    assert_eq!(missing.kind, ServiceErrorKind::NotFound, "{missing}");

    emu.delete_stream(&stream).await;
}

#[tokio::test]
async fn a_missing_stream_is_not_found() {
    let emu = common::emulators().await;
    let kinesis = AwsKinesis::from_conf(&emu.sdk_config());
    let stream = emu.unique_name("aws-missing");

    let err = kinesis
        .describe_stream(&stream)
        .await
        .expect_err("no such stream");
    assert_eq!(err.kind, ServiceErrorKind::NotFound, "{err}");
    assert!(err.message.contains("ResourceNotFoundException"), "{err}");

    let err = kinesis
        .list_shards(&stream)
        .await
        .expect_err("no such stream");
    assert_eq!(err.kind, ServiceErrorKind::NotFound, "{err}");

    let existing = emu.unique_name("aws-exists");
    emu.create_stream(&existing, 1).await;
    assert_eq!(kinesis.describe_stream(&existing).await, Ok(()));
    emu.delete_stream(&existing).await;
}

#[tokio::test]
async fn an_unreachable_endpoint_is_transient() {
    // A port nothing listens on: bind one, then close it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        listener.local_addr().expect("local address").port()
    };
    let emu = common::emulators().await;
    let client = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::config::Builder::from(&emu.sdk_config())
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
            .build(),
    );
    let kinesis = AwsKinesis::new(client);
    let err = kinesis
        .describe_stream("anything")
        .await
        .expect_err("nothing listens");
    assert_eq!(err.kind, ServiceErrorKind::Transient, "{err}");
}

// --- DynamoDB: tables ------------------------------------------------------------------------

async fn store_with_tables(prefix: &str) -> DynamoStore {
    let emu = common::emulators().await;
    let store = DynamoStore::from_conf(&emu.sdk_config(), &emu.unique_name(prefix));
    store
        .create_tables(BILLING, WAITER_DELAY)
        .await
        .expect("CreateTable");
    store
}

#[tokio::test]
async fn tables_are_created_by_racing_processes_checked_and_deleted() {
    let emu = common::emulators().await;
    let app = emu.unique_name("aws-tables");
    let a = DynamoStore::from_conf(&emu.sdk_config(), &app);
    let b = DynamoStore::from_conf(&emu.sdk_config(), &app);

    let missing = a.check_tables().await.expect_err("no tables yet");
    match &missing {
        Error::TablesMissing { tables } => assert_eq!(tables.len(), 3, "{missing}"),
        other => panic!("expected TablesMissing, got {other}"),
    }

    let (ra, rb) = tokio::join!(
        tokio::spawn(async move { a.create_tables(BILLING, WAITER_DELAY).await.map(|()| a) }),
        tokio::spawn(async move { b.create_tables(BILLING, WAITER_DELAY).await.map(|()| b) }),
    );
    let a = ra.expect("task a").expect("create_tables a");
    let b = rb.expect("task b").expect("create_tables b");
    a.check_tables().await.expect("all three tables exist");
    b.create_tables(BILLING, WAITER_DELAY)
        .await
        .expect("creating existing tables is fine");

    a.delete_tables(WAITER_DELAY).await.expect("DeleteTable");
    match a.check_tables().await {
        Err(Error::TablesMissing { tables }) => {
            let expected: Vec<String> = a.tables().all().iter().map(|t| t.to_string()).collect();
            assert_eq!(tables, expected);
        }
        other => panic!("expected TablesMissing, got {other:?}"),
    }
    b.delete_tables(WAITER_DELAY)
        .await
        .expect("deleting missing tables is fine");

    // A call on a missing table says which table is missing.
    match a.list_clients().await {
        Err(Error::TablesMissing { tables }) => assert_eq!(tables, [a.tables().clients.clone()]),
        other => panic!("expected TablesMissing, got {other:?}"),
    }
}

#[tokio::test]
async fn on_demand_tables_work() {
    let emu = common::emulators().await;
    let store = DynamoStore::from_conf(&emu.sdk_config(), &emu.unique_name("aws-ondemand"));
    store
        .create_tables(Billing::OnDemand, WAITER_DELAY)
        .await
        .expect("CreateTable PAY_PER_REQUEST");
    store.check_tables().await.expect("tables exist");
    store
        .delete_tables(WAITER_DELAY)
        .await
        .expect("DeleteTable");
}

// --- DynamoDB: clients -----------------------------------------------------------------------

#[tokio::test]
async fn clients_are_listed_sorted_and_reaped_when_stale() {
    let store = store_with_tables("aws-clients").await;
    let now = now_nanos();
    for (id, age) in [("c", 0), ("a", 10), ("b", 0)] {
        store
            .put_client(&ClientRow {
                id: ClientId::new(id),
                name: format!("client {id}"),
                last_update: now - age,
                read_mode: Some("polling".into()),
            })
            .await
            .expect("PutItem");
    }
    let ids: Vec<_> = store
        .list_clients()
        .await
        .expect("Scan")
        .into_iter()
        .map(|c| c.id.as_str().to_string())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);

    assert!(!store
        .reap_client(&ClientId::new("b"), now - 5)
        .await
        .expect("reap"));
    assert!(store
        .reap_client(&ClientId::new("a"), now - 5)
        .await
        .expect("reap"));
    assert!(!store
        .reap_client(&ClientId::new("nobody"), now)
        .await
        .expect("reap of a missing row"));
    store
        .delete_client(&ClientId::new("c"))
        .await
        .expect("DeleteItem");
    let rows = store.list_clients().await.expect("Scan");
    assert_eq!(
        rows,
        [ClientRow {
            id: ClientId::new("b"),
            name: "client b".to_string(),
            last_update: now,
            read_mode: Some("polling".into()),
        }]
    );
    store
        .delete_tables(WAITER_DELAY)
        .await
        .expect("DeleteTable");
}

#[tokio::test]
async fn a_scan_follows_pages() {
    let store = store_with_tables("aws-pages").await;
    // 60 rows of ~20 KiB: over the 1 MB limit of one Scan page.
    let name = "x".repeat(20 * 1024);
    for i in 0..60 {
        store
            .put_client(&ClientRow {
                id: ClientId::new(format!("client-{i:03}")),
                name: name.clone(),
                last_update: i,
                read_mode: None,
            })
            .await
            .expect("PutItem");
    }
    let first_page = common::emulators()
        .await
        .dynamodb_client()
        .scan()
        .table_name(&store.tables().clients)
        .send()
        .await
        .expect("raw Scan");
    assert!(
        first_page.last_evaluated_key.is_some() && first_page.count < 60,
        "the rows fill more than one Scan page ({} in the first)",
        first_page.count
    );
    let rows = store.list_clients().await.expect("Scan");
    assert_eq!(rows.len(), 60);
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id));
    store
        .delete_tables(WAITER_DELAY)
        .await
        .expect("DeleteTable");
}

// --- DynamoDB: leases ------------------------------------------------------------------------

fn lease<'a>(shard: &'a ShardId, owner: &'a ClientId, now: i64) -> LeaseWrite<'a> {
    LeaseWrite {
        shard,
        owner,
        owner_name: owner.as_str(),
        now,
    }
}

#[tokio::test]
async fn the_lease_protocol_holds() {
    let store = store_with_tables("aws-leases").await;
    let shard = ShardId::new("shardId-000000000000");
    let (a, b) = (ClientId::new("client-a"), ClientId::new("client-b"));
    let t0 = now_nanos();

    assert_eq!(store.get_checkpoint(&shard).await.expect("GetItem"), None);

    // A free (missing) lease is captured.
    let row = store
        .capture_lease(lease(&shard, &a, t0), None)
        .await
        .expect("capture")
        .expect("a free lease is captured");
    assert_eq!(row.owner_id, Some(a.clone()));
    assert_eq!(row.owner_name.as_deref(), Some("client-a"));
    assert_eq!(row.last_update, t0);
    assert_eq!(row.position, None);
    assert_eq!(row.finished, None);

    // Held by a: b cannot capture it; a can again.
    assert_eq!(
        store
            .capture_lease(lease(&shard, &b, t0 + 1), None)
            .await
            .expect("capture"),
        None
    );
    assert!(store
        .capture_lease(lease(&shard, &a, t0 + 2), None)
        .await
        .expect("capture")
        .is_some());

    // Commits by the owner only.
    let p1 = Position::after(SequenceNumber::new("100"));
    assert!(store
        .commit_lease(lease(&shard, &a, t0 + 3), Some(&p1), false)
        .await
        .expect("commit"));
    assert!(!store
        .commit_lease(
            lease(&shard, &b, t0 + 4),
            Some(&Position::after(SequenceNumber::new("999"))),
            false
        )
        .await
        .expect("commit"));
    let row = store
        .get_checkpoint(&shard)
        .await
        .expect("GetItem")
        .expect("row");
    assert_eq!(row.position, Some(p1.clone()));
    assert_eq!(row.last_update, t0 + 3);

    // A sub-sequence number is written, then removed by a whole-record position; None keeps all.
    let p2 = Position {
        sequence: SequenceNumber::new("200"),
        sub_sequence: Some(3),
    };
    assert!(store
        .commit_lease(lease(&shard, &a, t0 + 5), Some(&p2), false)
        .await
        .expect("commit"));
    assert_eq!(
        store
            .get_checkpoint(&shard)
            .await
            .expect("GetItem")
            .expect("row")
            .position,
        Some(p2.clone())
    );
    assert!(store
        .commit_lease(lease(&shard, &a, t0 + 6), None, false)
        .await
        .expect("commit"));
    let row = store
        .get_checkpoint(&shard)
        .await
        .expect("GetItem")
        .expect("row");
    assert_eq!(row.position, Some(p2));
    assert_eq!(row.last_update, t0 + 6);
    let p3 = Position::after(SequenceNumber::new("200"));
    assert!(store
        .commit_lease(lease(&shard, &a, t0 + 7), Some(&p3), false)
        .await
        .expect("commit"));
    assert_eq!(
        store
            .get_checkpoint(&shard)
            .await
            .expect("GetItem")
            .expect("row")
            .position,
        Some(p3.clone())
    );

    // Released: only by the owner; then b captures it, keeping the checkpoint.
    assert!(!store
        .release_lease(lease(&shard, &b, t0 + 8), None)
        .await
        .expect("release"));
    assert!(store
        .release_lease(lease(&shard, &a, t0 + 8), None)
        .await
        .expect("release"));
    let row = store
        .get_checkpoint(&shard)
        .await
        .expect("GetItem")
        .expect("row");
    assert_eq!((row.owner_id, row.owner_name), (None, None));
    assert_eq!(row.position, Some(p3.clone()));
    let row = store
        .capture_lease(lease(&shard, &b, t0 + 9), None)
        .await
        .expect("capture")
        .expect("a released lease is captured");
    assert_eq!(row.owner_id, Some(b.clone()));
    assert_eq!(row.position, Some(p3.clone()));

    // An expired owner's lease is taken only if its LastUpdate is unchanged.
    assert_eq!(
        store
            .capture_lease(lease(&shard, &a, t0 + 10), Some((&b, t0 + 5)))
            .await
            .expect("capture"),
        None,
        "stale LastUpdate"
    );
    assert_eq!(
        store
            .capture_lease(
                lease(&shard, &a, t0 + 10),
                Some((&ClientId::new("client-c"), t0 + 9))
            )
            .await
            .expect("capture"),
        None,
        "another owner"
    );
    let row = store
        .capture_lease(lease(&shard, &a, t0 + 10), Some((&b, t0 + 9)))
        .await
        .expect("capture")
        .expect("the expired lease is taken");
    assert_eq!(row.owner_id, Some(a.clone()));
    assert_eq!(row.position, Some(p3));
    assert!(
        !store
            .commit_lease(lease(&shard, &b, t0 + 11), None, false)
            .await
            .expect("commit"),
        "b lost the lease"
    );

    // Finished: never captured again, not even by its last owner.
    let end = Position::after(SequenceNumber::new("300"));
    assert!(store
        .commit_lease(lease(&shard, &a, t0 + 12), Some(&end), true)
        .await
        .expect("commit"));
    assert!(store
        .release_lease(lease(&shard, &a, t0 + 13), None)
        .await
        .expect("release"));
    let row = store
        .get_checkpoint(&shard)
        .await
        .expect("GetItem")
        .expect("row");
    assert_eq!(row.finished, Some(t0 + 12));
    assert_eq!(row.position, Some(end));
    for who in [&a, &b] {
        assert_eq!(
            store
                .capture_lease(lease(&shard, who, t0 + 14), None)
                .await
                .expect("capture"),
            None,
            "a finished shard is not captured"
        );
    }

    let other = ShardId::new("shardId-000000000001");
    store
        .capture_lease(lease(&other, &b, t0), None)
        .await
        .expect("capture")
        .expect("a free lease");
    let mut all = store.list_checkpoints().await.expect("Scan");
    all.sort_by(|x, y| x.shard.cmp(&y.shard));
    assert_eq!(
        all.iter().map(|r| r.shard.clone()).collect::<Vec<_>>(),
        [shard, other]
    );
    store
        .delete_tables(WAITER_DELAY)
        .await
        .expect("DeleteTable");
}

#[tokio::test]
async fn a_go_written_checkpoint_reads_back_and_is_captured() {
    let emu = common::emulators().await;
    let store = store_with_tables("aws-gorow").await;
    let t0 = now_nanos();
    let shard = ShardId::new("shardId-000000000007");
    emu.dynamodb_client()
        .put_item()
        .table_name(&store.tables().checkpoints)
        .item(schema::SHARD, AttributeValue::S(shard.to_string()))
        .item(
            schema::SEQUENCE_NUMBER,
            AttributeValue::S("49590338271490256608559692538361571095921575989136588898".into()),
        )
        .item(schema::LAST_UPDATE, AttributeValue::N(t0.to_string()))
        .item(
            schema::LAST_UPDATE_RFC,
            AttributeValue::S(schema::rfc1123(t0)),
        )
        .item(schema::OWNER_ID, AttributeValue::Null(true))
        .item(schema::OWNER_NAME, AttributeValue::Null(true))
        .item(schema::FINISHED, AttributeValue::Null(true))
        .item(schema::FINISHED_RFC, AttributeValue::Null(true))
        .send()
        .await
        .expect("raw PutItem");

    let expected = Position::after(SequenceNumber::new(
        "49590338271490256608559692538361571095921575989136588898",
    ));
    let row = store
        .get_checkpoint(&shard)
        .await
        .expect("GetItem")
        .expect("the row");
    assert_eq!(row.position, Some(expected.clone()));
    assert_eq!(row.last_update, t0);
    assert_eq!(
        (row.owner_id, row.owner_name, row.finished),
        (None, None, None)
    );
    assert_eq!(store.list_checkpoints().await.expect("Scan").len(), 1);

    let me = ClientId::new("rust-client");
    let row = store
        .capture_lease(lease(&shard, &me, t0 + 1), None)
        .await
        .expect("capture")
        .expect("a NULL owner is free");
    assert_eq!(row.owner_id, Some(me));
    assert_eq!(row.position, Some(expected));
    store
        .delete_tables(WAITER_DELAY)
        .await
        .expect("DeleteTable");
}

// --- DynamoDB: metadata ----------------------------------------------------------------------

#[tokio::test]
async fn leadership_is_claimed_expires_and_is_released() {
    let store = store_with_tables("aws-leader").await;
    let (a, b) = (ClientId::new("a"), ClientId::new("b"));
    let t0 = now_nanos();

    assert_eq!(store.get_leader().await.expect("GetItem"), None);
    assert!(store
        .claim_leadership(&a, "A", t0, t0 - 100)
        .await
        .expect("claim"));
    assert!(
        !store
            .claim_leadership(&b, "B", t0 + 1, t0 - 100)
            .await
            .expect("claim"),
        "a is fresh"
    );
    assert!(store
        .claim_leadership(&a, "A", t0 + 2, t0 - 100)
        .await
        .expect("renew"));
    let leader = store.get_leader().await.expect("GetItem").expect("leader");
    assert_eq!(leader.id, Some(a.clone()));
    assert_eq!(leader.name.as_deref(), Some("A"));
    assert_eq!(leader.last_update, t0 + 2);

    // Expired: b's cutoff is at a's last renewal.
    assert!(store
        .claim_leadership(&b, "B", t0 + 10, t0 + 2)
        .await
        .expect("claim"));
    assert_eq!(
        store
            .get_leader()
            .await
            .expect("GetItem")
            .and_then(|l| l.id),
        Some(b.clone())
    );

    // Release by a non-leader changes nothing; by the leader frees it.
    store
        .release_leadership(&a, t0 + 11)
        .await
        .expect("release by a non-leader is fine");
    assert_eq!(
        store
            .get_leader()
            .await
            .expect("GetItem")
            .and_then(|l| l.id),
        Some(b.clone())
    );
    store
        .release_leadership(&b, t0 + 12)
        .await
        .expect("release");
    let leader = store
        .get_leader()
        .await
        .expect("GetItem")
        .expect("item stays");
    assert_eq!((leader.id, leader.last_update), (None, t0 + 12));
    assert!(store
        .claim_leadership(&a, "A", t0 + 13, t0 - 100)
        .await
        .expect("claim a free leadership"));
    store
        .delete_tables(WAITER_DELAY)
        .await
        .expect("DeleteTable");
}

#[tokio::test]
async fn the_shard_cache_round_trips_and_reads_the_go_layout() {
    let emu = common::emulators().await;
    let store = store_with_tables("aws-cache").await;
    assert_eq!(store.get_shard_cache().await.expect("GetItem"), None);

    let shard = |id: &str, parent: Option<&str>, adjacent: Option<&str>, end: Option<&str>| {
        ShardDescription {
            id: ShardId::new(id),
            parent: parent.map(ShardId::new),
            adjacent_parent: adjacent.map(ShardId::new),
            hash_range: None,
            ending_sequence: end.map(SequenceNumber::new),
        }
    };
    let cache = ShardCache {
        shards: vec![
            shard("shardId-0", None, None, Some("123")),
            shard("shardId-1", None, None, None),
            shard("shardId-2", Some("shardId-0"), None, None),
            shard("shardId-3", Some("shardId-1"), Some("shardId-2"), None),
        ],
        last_update: 42,
    };
    store.put_shard_cache(&cache).await.expect("PutItem");
    assert_eq!(
        store.get_shard_cache().await.expect("GetItem"),
        Some(cache.clone())
    );

    // The Go library reads ShardIDs: it is there, as a list of strings.
    let raw = emu
        .dynamodb_client()
        .get_item()
        .table_name(&store.tables().metadata)
        .key(
            schema::KEY,
            AttributeValue::S(schema::SHARD_CACHE_KEY.into()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("raw GetItem")
        .item
        .expect("the cache item");
    assert_eq!(
        raw.get(schema::SHARD_IDS),
        Some(&AttributeValue::L(
            ["shardId-0", "shardId-1", "shardId-2", "shardId-3"]
                .map(|s| AttributeValue::S(s.into()))
                .to_vec()
        ))
    );

    // A cache the Go library wrote has only ShardIDs.
    emu.dynamodb_client()
        .put_item()
        .table_name(&store.tables().metadata)
        .item(
            schema::KEY,
            AttributeValue::S(schema::SHARD_CACHE_KEY.into()),
        )
        .item(
            schema::SHARD_IDS,
            AttributeValue::L(vec![
                AttributeValue::S("shardId-000000000000".into()),
                AttributeValue::S("shardId-000000000001".into()),
            ]),
        )
        .item(schema::LAST_UPDATE, AttributeValue::N("7".into()))
        .item(
            schema::LAST_UPDATE_RFC,
            AttributeValue::S(schema::rfc1123(7)),
        )
        .send()
        .await
        .expect("raw PutItem");
    assert_eq!(
        store.get_shard_cache().await.expect("GetItem"),
        Some(ShardCache {
            shards: vec![
                shard("shardId-000000000000", None, None, None),
                shard("shardId-000000000001", None, None, None),
            ],
            last_update: 7,
        })
    );

    store
        .put_shard_cache(&ShardCache::default())
        .await
        .expect("an empty cache");
    assert_eq!(
        store.get_shard_cache().await.expect("GetItem"),
        Some(ShardCache::default())
    );
    store
        .delete_tables(WAITER_DELAY)
        .await
        .expect("DeleteTable");
}
