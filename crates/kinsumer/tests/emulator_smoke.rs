//! Proves the emulator fixture (tests/common): Kinesis round trip, resharding, DynamoDB conditions.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;

/// Reads one shard from TRIM_HORIZON until caught up (an open shard) or its end (a closed one);
/// returns (partition key, data, sequence number) in shard order.
async fn read_shard(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard_id: &str,
) -> Vec<(String, Bytes, String)> {
    let mut iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("GetShardIterator")
        .shard_iterator()
        .map(str::to_string);
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(current) = iterator {
        let out = client
            .get_records()
            .shard_iterator(current)
            .send()
            .await
            .expect("GetRecords");
        for record in out.records() {
            records.push((
                record.partition_key().unwrap_or_default().to_string(),
                Bytes::copy_from_slice(record.data().as_ref()),
                record.sequence_number().to_string(),
            ));
        }
        if out.records().is_empty() && out.millis_behind_latest() == Some(0) {
            break; // caught up with an open shard
        }
        assert!(
            Instant::now() < deadline,
            "reading {stream}/{shard_id} took over 30 s"
        );
        iterator = out.next_shard_iterator().map(str::to_string);
    }
    records
}

#[tokio::test]
async fn kinesis_records_put_into_three_shards_all_come_back() {
    let emu = common::emulators().await;
    let stream = emu.unique_name("smoke-roundtrip");
    emu.create_stream(&stream, 3).await;

    let sent: Vec<(String, Bytes)> = (0..50)
        .map(|i| (format!("key-{i}"), Bytes::from(format!("record {i}"))))
        .collect();
    let outcomes = emu.put_records(&stream, sent.clone()).await;
    assert_eq!(outcomes.len(), sent.len());

    let shards = emu.list_shards(&stream).await;
    assert_eq!(shards.len(), 3, "a 3-shard stream lists 3 shards");
    let client = emu.kinesis_client();
    let mut received = BTreeMap::new(); // data -> (partition key, shard, sequence number)
    for shard in &shards {
        for (key, data, sequence_number) in read_shard(&client, &stream, shard.shard_id()).await {
            let previous = received.insert(
                data.clone(),
                (key, shard.shard_id().to_string(), sequence_number),
            );
            assert!(previous.is_none(), "{data:?} was delivered twice");
        }
    }

    assert_eq!(received.len(), sent.len(), "every record comes back once");
    for ((key, data), outcome) in sent.iter().zip(&outcomes) {
        let (got_key, got_shard, got_sequence) = received
            .get(data)
            .unwrap_or_else(|| panic!("{data:?} never came back"));
        assert_eq!(got_key, key);
        assert_eq!(
            got_shard, &outcome.shard_id,
            "{data:?} read from the shard it was put into"
        );
        assert_eq!(got_sequence, &outcome.sequence_number);
    }
    let used: BTreeSet<&str> = outcomes.iter().map(|o| o.shard_id.as_str()).collect();
    assert!(used.len() > 1, "50 keys spread over more than one shard");

    emu.delete_stream(&stream).await;
}

#[tokio::test]
async fn kinesis_split_then_merge_links_parents_and_children() {
    let emu = common::emulators().await;
    let stream = emu.unique_name("smoke-reshard");
    emu.create_stream(&stream, 1).await;
    let parent = emu.list_shards(&stream).await[0].shard_id().to_string();
    emu.put_records(
        &stream,
        vec![("before", Bytes::from_static(b"before split"))],
    )
    .await;

    let (lower, upper) = emu.split_shard(&stream, &parent).await;
    let after = emu
        .put_records(
            &stream,
            (0..20).map(|i| (format!("k{i}"), Bytes::from(format!("after {i}")))),
        )
        .await;
    assert!(after
        .iter()
        .all(|o| o.shard_id == lower || o.shard_id == upper));

    let shards = emu.list_shards(&stream).await;
    let closed = shards
        .iter()
        .find(|s| s.shard_id() == parent)
        .expect("the split parent is still listed");
    assert!(
        closed
            .sequence_number_range()
            .and_then(|r| r.ending_sequence_number())
            .is_some(),
        "the split parent is closed"
    );
    let client = emu.kinesis_client();
    let parent_records = read_shard(&client, &stream, &parent).await;
    assert_eq!(parent_records.len(), 1);
    assert_eq!(parent_records[0].1, Bytes::from_static(b"before split"));

    let merged = emu.merge_shards(&stream, &lower, &upper).await;
    let shards = emu.list_shards(&stream).await;
    let child = shards
        .iter()
        .find(|s| s.shard_id() == merged)
        .expect("the merged child is listed");
    assert_eq!(child.parent_shard_id(), Some(lower.as_str()));
    assert_eq!(child.adjacent_parent_shard_id(), Some(upper.as_str()));
    assert_eq!(
        shards.len(),
        4,
        "parent, two children, one merged grandchild"
    );

    emu.delete_stream(&stream).await;
}

#[tokio::test]
async fn dynamodb_conditional_put_fails_when_the_item_exists() {
    let emu = common::emulators().await;
    let client = emu.dynamodb_client();
    let table = emu.unique_name("smoke-table");
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("Shard")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("Shard")
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema element"),
        )
        .send()
        .await
        .expect("CreateTable");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = client
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .expect("DescribeTable");
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "table {table} not ACTIVE after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // `Shard` is a reserved word: name it through a placeholder.
    let put = |owner: &'static str| {
        client
            .put_item()
            .table_name(&table)
            .item("Shard", AttributeValue::S("shardId-000000000000".into()))
            .item("Owner", AttributeValue::S(owner.into()))
            .condition_expression("attribute_not_exists(#shard)")
            .expression_attribute_names("#shard", "Shard")
            .send()
    };
    put("first").await.expect("the first conditional PutItem");
    let err = put("second")
        .await
        .expect_err("a second PutItem with attribute_not_exists must fail");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_conditional_check_failed_exception()),
        "expected ConditionalCheckFailedException, got {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&err)
    );

    let item = client
        .get_item()
        .table_name(&table)
        .key("Shard", AttributeValue::S("shardId-000000000000".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    assert_eq!(
        item.item().and_then(|i| i.get("Owner")),
        Some(&AttributeValue::S("first".into())),
        "the failed put left the item alone"
    );

    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .expect("DeleteTable");
}

#[tokio::test]
async fn unique_names_differ_across_concurrent_callers() {
    let emu = common::emulators().await;
    let names: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| (0..100).map(|_| emu.unique_name("n")).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a naming thread"))
            .collect()
    });
    let distinct: BTreeSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), 800);
}
