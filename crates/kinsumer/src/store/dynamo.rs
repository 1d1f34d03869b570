//! The DynamoDB implementation of the store, in the Go library's three tables.
//!
//! Layout (attribute names in [`schema`]):
//! - `<app>_clients`, hash key `ID` (S): `ID`, `Name`, `LastUpdate` (N, Unix ns), `LastUpdateRFC`.
//! - `<app>_checkpoints`, hash key `Shard` (S): `SequenceNumber` (S), `SubSequenceNumber` (N,
//!   ours), `LastUpdate`, `LastUpdateRFC`, `OwnerID` (S; absent or NULL when free), `OwnerName`,
//!   `Finished` (N, Unix ns), `FinishedRFC`.
//! - `<app>_metadata`, hash key `Key` (S): item `Leader` (`ID`, `Name`, `LastUpdate`,
//!   `LastUpdateRFC`) and item `ShardCache` (`ShardIDs` as the Go library writes it, `Shards`
//!   with parents (ours), `LastUpdate`, `LastUpdateRFC`).
//!
//! Reads tolerate rows the Go library wrote: a NULL-typed attribute counts as absent.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ProvisionedThroughput, ReturnValue, ScalarAttributeType, TableStatus,
};
use tokio::time::Instant;

use super::schema::{self, TableNames};
use super::{CheckpointRow, ClientRow, CoordinationStore, LeaderRow, LeaseWrite, ShardCache};
use crate::config::Billing;
use crate::error::{Error, Result, ServiceError, ServiceErrorKind};
use crate::kinesis::aws::classify;
use crate::kinesis::ShardDescription;
use crate::record::{ClientId, Position, SequenceNumber, ShardId};

/// How long `create_tables` / `delete_tables` wait for a table to become ACTIVE or to go.
const TABLE_WAIT: Duration = Duration::from_secs(5 * 60);

/// An item as the SDK returns it.
type Item = HashMap<String, AttributeValue>;

/// The coordination state in DynamoDB. Cheap to clone: the SDK client is reference counted.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    tables: TableNames,
}

impl DynamoStore {
    /// A store for application `app_name` (tables `<app_name>_clients`, `_checkpoints`,
    /// `_metadata`) through an SDK client.
    pub fn new(client: aws_sdk_dynamodb::Client, app_name: &str) -> Self {
        DynamoStore {
            client,
            tables: TableNames::for_app(app_name),
        }
    }

    /// A store for application `app_name` with an SDK client built from a loaded configuration.
    pub fn from_conf(config: &aws_config::SdkConfig, app_name: &str) -> Self {
        DynamoStore::new(aws_sdk_dynamodb::Client::new(config), app_name)
    }

    /// The SDK client, for calls this store does not wrap.
    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    /// The table's status, or `None` when it does not exist.
    async fn table_status(&self, table: &str) -> Result<Option<TableStatus>, ServiceError> {
        match self.client.describe_table().table_name(table).send().await {
            Ok(out) => Ok(Some(
                out.table
                    .and_then(|t| t.table_status)
                    .unwrap_or_else(|| TableStatus::from("UNKNOWN")),
            )),
            Err(e) => {
                let e = classify(&e);
                if e.kind == ServiceErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Sends CreateTable for one table (hash key `key`, a string).
    async fn send_create_table(
        &self,
        table: &str,
        key: &str,
        billing: Billing,
    ) -> Result<(), ServiceError> {
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| {
            ServiceError::new(ServiceErrorKind::InvalidRequest, e.to_string())
        };
        let request = self
            .client
            .create_table()
            .table_name(table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(invalid)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(invalid)?,
            );
        let request = match billing {
            Billing::Provisioned { read, write } => request
                .billing_mode(BillingMode::Provisioned)
                .provisioned_throughput(
                    ProvisionedThroughput::builder()
                        .read_capacity_units(read)
                        .write_capacity_units(write)
                        .build()
                        .map_err(invalid)?,
                ),
            Billing::OnDemand => request.billing_mode(BillingMode::PayPerRequest),
        };
        request.send().await.map(|_| ()).map_err(|e| classify(&e))
    }

    /// Creates one table unless it exists, and waits until it is usable.
    async fn create_table(
        &self,
        table: &str,
        key: &str,
        billing: Billing,
        waiter_delay: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + TABLE_WAIT;
        let mut create = true;
        let mut last_status = String::from("not yet created");
        loop {
            if create {
                match self.send_create_table(table, key, billing).await {
                    // Created now, or it exists / is being created by someone else.
                    Ok(()) => create = false,
                    Err(e) if e.kind == ServiceErrorKind::ResourceInUse => create = false,
                    // Too many tables being created at once, or a blip: try again.
                    Err(e) if e.is_retryable() => last_status = e.to_string(),
                    Err(e) => return Err(store_error("CreateTable", table, e)),
                }
            }
            if !create {
                match self.table_status(table).await {
                    Ok(Some(status)) if usable(&status) => return Ok(()),
                    Ok(Some(
                        status @ (TableStatus::Archived
                        | TableStatus::Archiving
                        | TableStatus::InaccessibleEncryptionCredentials),
                    )) => {
                        return Err(store_error(
                            "DescribeTable",
                            table,
                            ServiceError::new(
                                ServiceErrorKind::Other,
                                format!("table {table} is {status}; it cannot be used"),
                            ),
                        ))
                    }
                    Ok(Some(status)) => last_status = status.to_string(),
                    // Deleted between our CreateTable and now: create it again.
                    Ok(None) => {
                        create = true;
                        last_status = String::from("deleted while waiting");
                    }
                    Err(e) if e.is_retryable() => last_status = e.to_string(),
                    Err(e) => return Err(store_error("DescribeTable", table, e)),
                }
            }
            if Instant::now() >= deadline {
                return Err(store_error(
                    "CreateTable",
                    table,
                    ServiceError::new(
                        ServiceErrorKind::ResourceInUse,
                        format!(
                            "table {table} did not become ACTIVE within {TABLE_WAIT:?} \
                             (last seen: {last_status})"
                        ),
                    ),
                ));
            }
            tokio::time::sleep(waiter_delay).await;
        }
    }

    /// Deletes one table and waits until it is gone.
    async fn delete_table(&self, table: &str, waiter_delay: Duration) -> Result<()> {
        let deadline = Instant::now() + TABLE_WAIT;
        let mut delete = true;
        let mut last_status = String::from("not yet deleted");
        loop {
            if delete {
                match self.client.delete_table().table_name(table).send().await {
                    Ok(_) => delete = false,
                    Err(e) => {
                        let e = classify(&e);
                        match e.kind {
                            ServiceErrorKind::NotFound => return Ok(()),
                            // Being created or already being deleted: watch it.
                            ServiceErrorKind::ResourceInUse => delete = false,
                            _ if e.is_retryable() => last_status = e.to_string(),
                            _ => return Err(store_error("DeleteTable", table, e)),
                        }
                    }
                }
            }
            if !delete {
                match self.table_status(table).await {
                    Ok(None) => return Ok(()),
                    Ok(Some(TableStatus::Deleting)) => last_status = "DELETING".to_string(),
                    // Still there (it was being created when we asked): ask again.
                    Ok(Some(status)) => {
                        last_status = status.to_string();
                        delete = true;
                    }
                    Err(e) if e.is_retryable() => last_status = e.to_string(),
                    Err(e) => return Err(store_error("DescribeTable", table, e)),
                }
            }
            if Instant::now() >= deadline {
                return Err(store_error(
                    "DeleteTable",
                    table,
                    ServiceError::new(
                        ServiceErrorKind::ResourceInUse,
                        format!(
                            "table {table} still exists {TABLE_WAIT:?} after DeleteTable \
                             (last seen: {last_status})"
                        ),
                    ),
                ));
            }
            tokio::time::sleep(waiter_delay).await;
        }
    }

    /// A consistent Scan of a whole table, following `LastEvaluatedKey`.
    async fn scan_all(&self, table: &str) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error("Scan", table, classify(&e)))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// A consistent GetItem by hash key.
    async fn get_item(&self, table: &str, key: &str, value: &str) -> Result<Option<Item>> {
        self.client
            .get_item()
            .table_name(table)
            .key(key, s(value))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(|e| store_error("GetItem", table, classify(&e)))
    }

    /// Commits (and with `release`, gives up) a lease held by `lease.owner`.
    async fn write_lease(
        &self,
        lease: LeaseWrite<'_>,
        position: Option<&Position>,
        finished: bool,
        release: bool,
    ) -> Result<bool> {
        let table = &self.tables.checkpoints;
        let mut e = Expr::default();
        let mut set = vec![
            format!(
                "{} = {}",
                e.name("#lu", schema::LAST_UPDATE),
                e.value(":now", n(lease.now))
            ),
            format!(
                "{} = {}",
                e.name("#lurfc", schema::LAST_UPDATE_RFC),
                e.value(":rfc", s(schema::rfc1123(lease.now)))
            ),
        ];
        let mut remove = Vec::new();
        if let Some(position) = position {
            set.push(format!(
                "{} = {}",
                e.name("#seq", schema::SEQUENCE_NUMBER),
                e.value(":seq", s(position.sequence.as_str()))
            ));
            let sub = e.name("#sub", schema::SUB_SEQUENCE_NUMBER);
            match position.sub_sequence {
                Some(sub_sequence) => set.push(format!(
                    "{sub} = {}",
                    e.value(":sub", AttributeValue::N(sub_sequence.to_string()))
                )),
                None => remove.push(sub),
            }
        }
        if finished {
            set.push(format!("{} = :now", e.name("#fin", schema::FINISHED)));
            set.push(format!(
                "{} = :rfc",
                e.name("#finrfc", schema::FINISHED_RFC)
            ));
        }
        let owner = e.name("#owner", schema::OWNER_ID);
        if release {
            remove.push(owner);
            remove.push(e.name("#oname", schema::OWNER_NAME));
        }
        let mut update = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            update.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let condition = format!("{owner} = {}", e.value(":me", s(lease.owner.as_str())));
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key(schema::SHARD, s(lease.shard.as_str()))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => condition_failed("UpdateItem", table, classify(&err)).map(|()| false),
        }
    }
}

#[async_trait]
impl CoordinationStore for DynamoStore {
    fn tables(&self) -> &TableNames {
        &self.tables
    }

    async fn create_tables(&self, billing: Billing, waiter_delay: Duration) -> Result<()> {
        let t = &self.tables;
        futures::try_join!(
            self.create_table(&t.clients, schema::CLIENT_ID, billing, waiter_delay),
            self.create_table(&t.checkpoints, schema::SHARD, billing, waiter_delay),
            self.create_table(&t.metadata, schema::KEY, billing, waiter_delay),
        )?;
        Ok(())
    }

    async fn delete_tables(&self, waiter_delay: Duration) -> Result<()> {
        let t = &self.tables;
        futures::try_join!(
            self.delete_table(&t.clients, waiter_delay),
            self.delete_table(&t.checkpoints, waiter_delay),
            self.delete_table(&t.metadata, waiter_delay),
        )?;
        Ok(())
    }

    async fn check_tables(&self) -> Result<()> {
        let t = &self.tables;
        let (clients, checkpoints, metadata) = futures::join!(
            self.table_status(&t.clients),
            self.table_status(&t.checkpoints),
            self.table_status(&t.metadata),
        );
        let mut missing = Vec::new();
        for (table, status) in [
            (&t.clients, clients),
            (&t.checkpoints, checkpoints),
            (&t.metadata, metadata),
        ] {
            match status {
                Ok(Some(status)) if usable(&status) => {}
                Ok(_) => missing.push(table.clone()),
                Err(e) => return Err(store_error("DescribeTable", table, e)),
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::TablesMissing { tables: missing })
        }
    }

    async fn put_client(&self, row: &ClientRow) -> Result<()> {
        let table = &self.tables.clients;
        let request = self
            .client
            .put_item()
            .table_name(table)
            .item(schema::CLIENT_ID, s(row.id.as_str()))
            .item(schema::NAME, s(&row.name))
            .item(schema::LAST_UPDATE, n(row.last_update))
            .item(schema::LAST_UPDATE_RFC, s(schema::rfc1123(row.last_update)));
        let request = match &row.read_mode {
            Some(mode) => request.item(schema::READ_MODE, s(mode)),
            None => request,
        };
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("PutItem", table, classify(&e)))
    }

    async fn delete_client(&self, id: &ClientId) -> Result<()> {
        let table = &self.tables.clients;
        self.client
            .delete_item()
            .table_name(table)
            .key(schema::CLIENT_ID, s(id.as_str()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("DeleteItem", table, classify(&e)))
    }

    async fn reap_client(&self, id: &ClientId, cutoff: i64) -> Result<bool> {
        let table = &self.tables.clients;
        let mut e = Expr::default();
        let condition = format!(
            "{} < {}",
            e.name("#lu", schema::LAST_UPDATE),
            e.value(":cutoff", n(cutoff))
        );
        let result = self
            .client
            .delete_item()
            .table_name(table)
            .key(schema::CLIENT_ID, s(id.as_str()))
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => condition_failed("DeleteItem", table, classify(&err)).map(|()| false),
        }
    }

    async fn list_clients(&self) -> Result<Vec<ClientRow>> {
        let table = &self.tables.clients;
        let mut rows = self
            .scan_all(table)
            .await?
            .iter()
            .map(parse_client)
            .collect::<Result<Vec<_>, String>>()
            .map_err(|m| malformed("Scan", table, m))?;
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(rows)
    }

    async fn list_checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        let table = &self.tables.checkpoints;
        self.scan_all(table)
            .await?
            .iter()
            .map(parse_checkpoint)
            .collect::<Result<Vec<_>, String>>()
            .map_err(|m| malformed("Scan", table, m))
    }

    async fn get_checkpoint(&self, shard: &ShardId) -> Result<Option<CheckpointRow>> {
        let table = &self.tables.checkpoints;
        self.get_item(table, schema::SHARD, shard.as_str())
            .await?
            .map(|item| parse_checkpoint(&item))
            .transpose()
            .map_err(|m| malformed("GetItem", table, m))
    }

    async fn capture_lease(
        &self,
        lease: LeaseWrite<'_>,
        expired_owner: Option<(&ClientId, i64)>,
    ) -> Result<Option<CheckpointRow>> {
        let table = &self.tables.checkpoints;
        let mut e = Expr::default();
        let owner = e.name("#owner", schema::OWNER_ID);
        let last_update = e.name("#lu", schema::LAST_UPDATE);
        let fin = e.name("#fin", schema::FINISHED);
        let me = e.value(":me", s(lease.owner.as_str()));
        let update = format!(
            "SET {owner} = {me}, {} = {}, {last_update} = {}, {} = {}",
            e.name("#oname", schema::OWNER_NAME),
            e.value(":name", s(lease.owner_name)),
            e.value(":now", n(lease.now)),
            e.name("#lurfc", schema::LAST_UPDATE_RFC),
            e.value(":rfc", s(schema::rfc1123(lease.now))),
        );
        let null = e.value(":null", s("NULL"));
        // AND binds tighter than OR in DynamoDB; every group is parenthesised anyway. A finished
        // shard (Finished set; the Go library may write it NULL-typed while unfinished) is never
        // captured again.
        let mut free = format!(
            "attribute_not_exists({owner}) OR attribute_type({owner}, {null}) OR {owner} = {me}"
        );
        if let Some((old_owner, old_update)) = expired_owner {
            free.push_str(&format!(
                " OR ({owner} = {} AND {last_update} = {})",
                e.value(":old", s(old_owner.as_str())),
                e.value(":lu", n(old_update)),
            ));
        }
        let condition =
            format!("(attribute_not_exists({fin}) OR attribute_type({fin}, {null})) AND ({free})");
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key(schema::SHARD, s(lease.shard.as_str()))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                parse_checkpoint(&item)
                    .map(Some)
                    .map_err(|m| malformed("UpdateItem", table, m))
            }
            Err(err) => condition_failed("UpdateItem", table, classify(&err)).map(|()| None),
        }
    }

    async fn commit_lease(
        &self,
        lease: LeaseWrite<'_>,
        position: Option<&Position>,
        finished: bool,
    ) -> Result<bool> {
        self.write_lease(lease, position, finished, false).await
    }

    async fn release_lease(
        &self,
        lease: LeaseWrite<'_>,
        position: Option<&Position>,
    ) -> Result<bool> {
        self.write_lease(lease, position, false, true).await
    }

    async fn get_leader(&self) -> Result<Option<LeaderRow>> {
        let table = &self.tables.metadata;
        self.get_item(table, schema::KEY, schema::LEADER_KEY)
            .await?
            .map(|item| parse_leader(&item))
            .transpose()
            .map_err(|m| malformed("GetItem", table, m))
    }

    async fn claim_leadership(
        &self,
        id: &ClientId,
        name: &str,
        now: i64,
        cutoff: i64,
    ) -> Result<bool> {
        let table = &self.tables.metadata;
        let mut e = Expr::default();
        let leader = e.name("#id", schema::LEADER_ID);
        let condition = format!(
            "attribute_not_exists({leader}) OR attribute_type({leader}, {}) OR {leader} = {} \
             OR {} <= {}",
            e.value(":null", s("NULL")),
            e.value(":me", s(id.as_str())),
            e.name("#lu", schema::LAST_UPDATE),
            e.value(":cutoff", n(cutoff)),
        );
        let result = self
            .client
            .put_item()
            .table_name(table)
            .item(schema::KEY, s(schema::LEADER_KEY))
            .item(schema::LEADER_ID, s(id.as_str()))
            .item(schema::NAME, s(name))
            .item(schema::LAST_UPDATE, n(now))
            .item(schema::LAST_UPDATE_RFC, s(schema::rfc1123(now)))
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => condition_failed("PutItem", table, classify(&err)).map(|()| false),
        }
    }

    async fn release_leadership(&self, id: &ClientId, now: i64) -> Result<()> {
        let table = &self.tables.metadata;
        let mut e = Expr::default();
        let leader = e.name("#id", schema::LEADER_ID);
        let update = format!(
            "REMOVE {leader}, {} SET {} = {}, {} = {}",
            e.name("#name", schema::NAME),
            e.name("#lu", schema::LAST_UPDATE),
            e.value(":now", n(now)),
            e.name("#lurfc", schema::LAST_UPDATE_RFC),
            e.value(":rfc", s(schema::rfc1123(now))),
        );
        let condition = format!("{leader} = {}", e.value(":me", s(id.as_str())));
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key(schema::KEY, s(schema::LEADER_KEY))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Not (or no longer) the leader: nothing to give up.
            Err(err) => condition_failed("UpdateItem", table, classify(&err)),
        }
    }

    async fn get_shard_cache(&self) -> Result<Option<ShardCache>> {
        let table = &self.tables.metadata;
        self.get_item(table, schema::KEY, schema::SHARD_CACHE_KEY)
            .await?
            .map(|item| parse_shard_cache(&item))
            .transpose()
            .map_err(|m| malformed("GetItem", table, m))
    }

    async fn put_shard_cache(&self, cache: &ShardCache) -> Result<()> {
        let table = &self.tables.metadata;
        let ids = cache
            .shards
            .iter()
            .map(|shard| s(shard.id.as_str()))
            .collect();
        let shards = cache
            .shards
            .iter()
            .map(|shard| {
                let mut entry = Item::new();
                entry.insert(schema::SHARD_ENTRY_ID.to_string(), s(shard.id.as_str()));
                if let Some(parent) = &shard.parent {
                    entry.insert(schema::SHARD_ENTRY_PARENT.to_string(), s(parent.as_str()));
                }
                if let Some(parent) = &shard.adjacent_parent {
                    entry.insert(
                        schema::SHARD_ENTRY_ADJACENT_PARENT.to_string(),
                        s(parent.as_str()),
                    );
                }
                if let Some(ending) = &shard.ending_sequence {
                    entry.insert(schema::SHARD_ENTRY_ENDING.to_string(), s(ending.as_str()));
                }
                AttributeValue::M(entry)
            })
            .collect();
        self.client
            .put_item()
            .table_name(table)
            .item(schema::KEY, s(schema::SHARD_CACHE_KEY))
            .item(schema::SHARD_IDS, AttributeValue::L(ids))
            .item(schema::SHARDS, AttributeValue::L(shards))
            .item(schema::LAST_UPDATE, n(cache.last_update))
            .item(
                schema::LAST_UPDATE_RFC,
                s(schema::rfc1123(cache.last_update)),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("PutItem", table, classify(&e)))
    }
}

// --- errors ----------------------------------------------------------------------------------

/// The error of a failed call on `table`: a missing table is `TablesMissing`.
fn store_error(operation: &'static str, table: &str, source: ServiceError) -> Error {
    if source.kind == ServiceErrorKind::NotFound {
        Error::TablesMissing {
            tables: vec![table.to_string()],
        }
    } else {
        Error::Store {
            operation,
            table: table.to_string(),
            source,
        }
    }
}

/// Ok when a conditional write failed its condition; the error otherwise.
fn condition_failed(operation: &'static str, table: &str, source: ServiceError) -> Result<()> {
    if source.kind == ServiceErrorKind::ConditionFailed {
        Ok(())
    } else {
        Err(store_error(operation, table, source))
    }
}

/// An item that cannot be read as the layout says.
fn malformed(operation: &'static str, table: &str, message: String) -> Error {
    Error::Store {
        operation,
        table: table.to_string(),
        source: ServiceError::new(
            ServiceErrorKind::Other,
            format!("malformed item: {message}"),
        ),
    }
}

/// Tables that can be read and written.
fn usable(status: &TableStatus) -> bool {
    matches!(status, TableStatus::Active | TableStatus::Updating)
}

// --- expressions -----------------------------------------------------------------------------

/// The placeholders of one expression: only those used are sent (DynamoDB rejects unused ones).
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: Item,
}

impl Expr {
    /// Registers `#placeholder` for `attribute` and returns the placeholder.
    fn name(&mut self, placeholder: &'static str, attribute: &str) -> &'static str {
        self.names
            .insert(placeholder.to_string(), attribute.to_string());
        placeholder
    }

    /// Registers `:placeholder` for `value` and returns the placeholder.
    fn value(&mut self, placeholder: &'static str, value: AttributeValue) -> &'static str {
        self.values.insert(placeholder.to_string(), value);
        placeholder
    }

    fn names(&mut self) -> Option<HashMap<String, String>> {
        Some(std::mem::take(&mut self.names)).filter(|m| !m.is_empty())
    }

    fn values(&mut self) -> Option<Item> {
        Some(std::mem::take(&mut self.values)).filter(|m| !m.is_empty())
    }
}

// --- attribute values ------------------------------------------------------------------------

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string attribute; `None` when absent or NULL-typed.
fn opt_s(item: &Item, name: &str) -> Result<Option<String>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(other) => Err(format!("{name} is not a string: {other:?}")),
    }
}

/// A number attribute; `None` when absent or NULL-typed.
fn opt_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} is not an integer: {v:?}")),
        Some(other) => Err(format!("{name} is not a number: {other:?}")),
    }
}

fn required_s(item: &Item, name: &str) -> Result<String, String> {
    opt_s(item, name)?.ok_or_else(|| format!("{name} is missing"))
}

fn parse_client(item: &Item) -> Result<ClientRow, String> {
    Ok(ClientRow {
        id: ClientId::new(required_s(item, schema::CLIENT_ID)?),
        name: opt_s(item, schema::NAME)?.unwrap_or_default(),
        last_update: opt_n(item, schema::LAST_UPDATE)?.unwrap_or(0),
        read_mode: opt_s(item, schema::READ_MODE)?,
    })
}

fn parse_checkpoint(item: &Item) -> Result<CheckpointRow, String> {
    let sequence = opt_s(item, schema::SEQUENCE_NUMBER)?.filter(|s| !s.is_empty());
    let position = match sequence {
        Some(sequence) => Some(Position {
            sequence: SequenceNumber::new(sequence),
            sub_sequence: opt_n(item, schema::SUB_SEQUENCE_NUMBER)?,
        }),
        None => None,
    };
    Ok(CheckpointRow {
        shard: ShardId::from(required_s(item, schema::SHARD)?),
        position,
        last_update: opt_n(item, schema::LAST_UPDATE)?.unwrap_or(0),
        owner_id: opt_s(item, schema::OWNER_ID)?
            .filter(|s| !s.is_empty())
            .map(ClientId::new),
        owner_name: opt_s(item, schema::OWNER_NAME)?,
        finished: opt_n(item, schema::FINISHED)?,
    })
}

fn parse_leader(item: &Item) -> Result<LeaderRow, String> {
    Ok(LeaderRow {
        id: opt_s(item, schema::LEADER_ID)?.map(ClientId::new),
        name: opt_s(item, schema::NAME)?,
        last_update: opt_n(item, schema::LAST_UPDATE)?.unwrap_or(0),
    })
}

/// Reads `Shards` (ours, with parents) when present, else the Go library's `ShardIDs`.
fn parse_shard_cache(item: &Item) -> Result<ShardCache, String> {
    let last_update = opt_n(item, schema::LAST_UPDATE)?.unwrap_or(0);
    let shards = match item.get(schema::SHARDS) {
        Some(AttributeValue::L(entries)) => entries
            .iter()
            .map(|entry| match entry {
                AttributeValue::M(entry) => Ok(ShardDescription {
                    id: ShardId::from(required_s(entry, schema::SHARD_ENTRY_ID)?),
                    parent: opt_s(entry, schema::SHARD_ENTRY_PARENT)?.map(ShardId::from),
                    adjacent_parent: opt_s(entry, schema::SHARD_ENTRY_ADJACENT_PARENT)?
                        .map(ShardId::from),
                    hash_range: None,
                    ending_sequence: opt_s(entry, schema::SHARD_ENTRY_ENDING)?
                        .map(SequenceNumber::new),
                }),
                other => Err(format!("{} entry is not a map: {other:?}", schema::SHARDS)),
            })
            .collect::<Result<Vec<_>, String>>()?,
        None | Some(AttributeValue::Null(_)) => {
            let ids = match item.get(schema::SHARD_IDS) {
                None | Some(AttributeValue::Null(_)) => Vec::new(),
                Some(AttributeValue::L(ids)) => ids
                    .iter()
                    .map(|id| match id {
                        AttributeValue::S(id) => Ok(id.clone()),
                        other => Err(format!(
                            "{} entry is not a string: {other:?}",
                            schema::SHARD_IDS
                        )),
                    })
                    .collect::<Result<Vec<_>, String>>()?,
                Some(AttributeValue::Ss(ids)) => ids.clone(),
                Some(other) => {
                    return Err(format!("{} is not a list: {other:?}", schema::SHARD_IDS))
                }
            };
            ids.into_iter()
                .map(|id| ShardDescription {
                    id: ShardId::from(id),
                    parent: None,
                    adjacent_parent: None,
                    hash_range: None,
                    ending_sequence: None,
                })
                .collect()
        }
        Some(other) => return Err(format!("{} is not a list: {other:?}", schema::SHARDS)),
    };
    Ok(ShardCache {
        shards,
        last_update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn a_go_checkpoint_row_reads_back() {
        let row = parse_checkpoint(&item(&[
            (schema::SHARD, s("shardId-000000000001")),
            (schema::SEQUENCE_NUMBER, s("4959")),
            (schema::LAST_UPDATE, n(1_700_000_000_000_000_000)),
            (
                schema::LAST_UPDATE_RFC,
                s("Tue, 14 Nov 2023 22:13:20 +0000"),
            ),
            (schema::OWNER_ID, AttributeValue::Null(true)),
            (schema::OWNER_NAME, AttributeValue::Null(true)),
            (schema::FINISHED, AttributeValue::Null(true)),
            (schema::FINISHED_RFC, AttributeValue::Null(true)),
        ]))
        .expect("a Go row parses");
        assert_eq!(
            row,
            CheckpointRow {
                shard: ShardId::new("shardId-000000000001"),
                position: Some(Position::after(SequenceNumber::new("4959"))),
                last_update: 1_700_000_000_000_000_000,
                owner_id: None,
                owner_name: None,
                finished: None,
            }
        );
    }

    #[test]
    fn a_wrongly_typed_attribute_is_reported() {
        let err = parse_checkpoint(&item(&[
            (schema::SHARD, s("shardId-000000000001")),
            (schema::LAST_UPDATE, s("yesterday")),
        ]))
        .expect_err("LastUpdate must be a number");
        assert!(err.contains(schema::LAST_UPDATE), "{err}");
    }

    #[test]
    fn a_go_shard_cache_has_shards_without_parents() {
        let cache = parse_shard_cache(&item(&[
            (schema::KEY, s(schema::SHARD_CACHE_KEY)),
            (
                schema::SHARD_IDS,
                AttributeValue::L(vec![s("shardId-0"), s("shardId-1")]),
            ),
            (schema::LAST_UPDATE, n(5)),
        ]))
        .expect("a Go cache parses");
        assert_eq!(cache.last_update, 5);
        let ids: Vec<_> = cache.shards.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["shardId-0", "shardId-1"]);
        assert!(cache.shards.iter().all(|d| d.parents().next().is_none()));
    }

    #[test]
    fn only_used_placeholders_are_sent() {
        let mut e = Expr::default();
        assert_eq!(e.name("#lu", schema::LAST_UPDATE), "#lu");
        assert_eq!(e.names().map(|m| m.len()), Some(1));
        assert_eq!(e.values(), None);
    }
}
