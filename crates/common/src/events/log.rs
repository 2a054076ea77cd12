//! The SQL of one schema's event log.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

use crate::db::DbError;

/// The log's newest position and the last one retention removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    /// The newest event's position (0: none yet).
    pub last_position: u64,
    /// Every position up to this one is gone (0: none removed).
    pub removed_through: u64,
}

/// An event as the log stores it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Its position.
    pub position: u64,
    /// Its type, e.g. `stock.changed`.
    pub event_type: String,
    /// What it is about.
    pub aggregate_id: String,
    /// The trigger's JSON payload.
    pub payload: String,
    /// When the change was made.
    pub occurred_at: DateTime<Utc>,
}

/// What the relay moved in one transaction.
#[derive(Debug, Default)]
pub struct Relayed {
    /// The head after the move.
    pub head: Head,
    /// Moved events per type.
    pub by_type: Vec<(String, u64)>,
    /// Outbox rows moved (what the relay's batch size counts; a row may carry several events).
    pub rows: u64,
    /// Whether this replica held the log (another one was relaying otherwise).
    pub relayed: bool,
}

/// How a schema's log rows stand for its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRows {
    /// One row per event (`position` is the event's).
    OnePerEvent,
    /// A row stands for `n` events, numbered with the `n` positions ending at its `position`:
    /// one event (`batch` null) or a statement's events in `batch`, which
    /// `{schema}.event_rows` turns back into events and `{schema}.event_types` counts
    /// (inventory's reserve, migration `20261203000016_reserve_event_batches`).
    Batched,
}

/// The event log of one schema.
#[derive(Debug, Clone)]
pub struct EventLog {
    pool: PgPool,
    sql: Arc<Sql>,
}

#[derive(Debug)]
struct Sql {
    lock_head: String,
    head: String,
    relay: String,
    bump: String,
    oldest_pending: String,
    read: String,
    remove_old: String,
}

impl Sql {
    fn new(s: &str, rows: LogRows) -> Self {
        // What differs between the two row shapes: the columns a row carries beyond one
        // event's, how many positions a row takes, how the relay counts the moved events per
        // type, and how a read turns rows into events.
        let (extra, takes, counted, events) = match rows {
            LogRows::OnePerEvent => (
                "",
                "1",
                "select type, count(*)::bigint, (select count(*) from numbered)::bigint,
                        (select count(*) from numbered)::bigint
                   from numbered group by type"
                    .to_owned(),
                format!(
                    "select position, type, aggregate_id, payload, occurred_at
                       from {s}.events
                      where position > $1 and position <= $2
                        and (cardinality($3::text[]) = 0 or type = any($3))
                      order by position"
                ),
            ),
            LogRows::Batched => (
                ", n, batch",
                "n",
                format!(
                    "select t.type, sum(t.n)::bigint, (select sum(n) from numbered)::bigint,
                            (select count(*) from numbered)::bigint
                       from numbered r cross join lateral {s}.event_types(r.type, r.batch) t
                      group by t.type"
                ),
                // A row's position is its last event's, so the row a consumer stopped inside
                // has position > $1; its events at or before $1 are dropped after expanding.
                format!(
                    "select x.position, x.type, x.aggregate_id, x.payload, x.occurred_at
                       from {s}.events r
                      cross join lateral {s}.event_rows(r.position, r.n, r.type,
                                                        r.aggregate_id, r.payload,
                                                        r.occurred_at, r.batch) x
                      where r.position > $1 and r.position - r.n < $2
                        and x.position > $1 and x.position <= $2
                        and (cardinality($3::text[]) = 0 or x.type = any($3))
                      order by r.position, x.position"
                ),
            ),
        };
        Self {
            lock_head: format!("select last_position from {s}.event_log for update skip locked"),
            head: format!("select last_position, removed_through from {s}.event_log"),
            // Numbered in outbox order, after the head this transaction holds locked. The ids
            // as an array, so the rows are found through the index: with `id in (select ...)`
            // the planner joins against a scan of the whole heap, which a burst (the bench's
            // 100k-hold seed) leaves megabytes long, and the relay read all of it 20 times a
            // second (4 ms a round on an empty outbox).
            relay: format!(
                "with moved as (
                     delete from {s}.event_outbox
                      where id = any(array(select id from {s}.event_outbox order by id limit $2))
                     returning id, type, aggregate_id, payload, occurred_at{extra}),
                 numbered as (
                     insert into {s}.events
                            (position, type, aggregate_id, payload, occurred_at{extra})
                     select $1 + sum({takes}) over (order by id), type, aggregate_id, payload,
                            occurred_at{extra}
                       from moved
                     returning type{extra})
                 {counted}"
            ),
            bump: format!(
                "update {s}.event_log set last_position = last_position + $1
                 returning last_position, removed_through"
            ),
            // The first row by id through the index: a scan of the heap would read every dead
            // row the relay left since the last vacuum, many times a second.
            oldest_pending: format!(
                "select extract(epoch from now() - (select occurred_at from {s}.event_outbox
                                                     order by id limit 1))::float8"
            ),
            // The horizon and the events in one snapshot: a row retention removed after the
            // snapshot still shows, one it removed before shows in removed_through.
            read: format!(
                "select h.removed_through, e.position, e.type, e.aggregate_id, e.payload::text,
                        e.occurred_at
                   from {s}.event_log h
                   left join lateral ({events} limit $4) e on true"
            ),
            // Only a prefix of the log goes (whole rows), so removed_through names every
            // removed position.
            remove_old: format!(
                "with first as (
                     select position, published_at from {s}.events order by position limit $2),
                 cut as (
                     select coalesce(
                         (select min(position) - 1 from first
                           where published_at >= now() - $1 * interval '1 millisecond'),
                         (select max(position) from first)) as through),
                 gone as (
                     delete from {s}.events e using cut
                      where e.position <= cut.through
                     returning e.position, {takes} as n),
                 marked as (
                     update {s}.event_log
                        set removed_through = greatest(removed_through,
                                                       (select max(position) from gone))
                      where exists (select 1 from gone)
                     returning 1)
                 select (select coalesce(sum(n), 0) from gone)::bigint,
                        (select count(*) from marked)::bigint"
            ),
        }
    }
}

impl EventLog {
    /// The log in `schema` (one of the servers' own schema names, never user input), whose
    /// rows are `rows`.
    pub fn new(pool: PgPool, schema: &'static str, rows: LogRows) -> Self {
        Self { pool, sql: Arc::new(Sql::new(schema, rows)) }
    }

    /// The head as committed now.
    pub async fn head(&self) -> Result<Head, DbError> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(self.sql.head.clone())).fetch_one(&self.pool).await?;
        Ok(head_of(row.try_get(0)?, row.try_get(1)?))
    }

    /// Numbers up to `batch` committed outbox rows into the log, in one transaction under the
    /// log's row lock; when another replica holds it, moves nothing and reads the head.
    pub async fn relay(&self, batch: u32) -> Result<Relayed, DbError> {
        let mut tx = self.pool.begin().await?;
        let Some(last) =
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(self.sql.lock_head.clone()))
                .fetch_optional(&mut *tx)
                .await?
        else {
            tx.rollback().await?;
            return Ok(Relayed { head: self.head().await?, ..Relayed::default() });
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.sql.relay.clone()))
            .bind(last)
            .bind(i64::from(batch.max(1)))
            .fetch_all(&mut *tx)
            .await?;
        let mut by_type = Vec::with_capacity(rows.len());
        // The positions the moved rows took and the rows themselves (every answer row carries
        // both totals): the head moves by the positions, whatever the per-type counts say.
        let (mut moved, mut rows_moved) = (0, 0);
        for row in rows {
            let count: i64 = row.try_get(1)?;
            moved = to_u64(row.try_get(2)?);
            rows_moved = to_u64(row.try_get(3)?);
            by_type.push((row.try_get::<String, _>(0)?, u64::try_from(count).unwrap_or(0)));
        }
        let head = if moved == 0 {
            let row =
                sqlx::query(sqlx::AssertSqlSafe(self.sql.head.clone())).fetch_one(&mut *tx).await?;
            tx.rollback().await?;
            head_of(row.try_get(0)?, row.try_get(1)?)
        } else {
            let row = sqlx::query(sqlx::AssertSqlSafe(self.sql.bump.clone()))
                .bind(i64::try_from(moved).unwrap_or(i64::MAX))
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            head_of(row.try_get(0)?, row.try_get(1)?)
        };
        Ok(Relayed { head, by_type, rows: rows_moved, relayed: true })
    }

    /// Seconds since the oldest outbox row not yet in the log was written (0: none).
    pub async fn oldest_pending_secs(&self) -> Result<f64, DbError> {
        let age: Option<f64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.sql.oldest_pending.clone()))
                .fetch_one(&self.pool)
                .await?;
        Ok(age.unwrap_or(0.0).max(0.0))
    }

    /// Events after `after` up to `through`, of `types` (empty: all), at most `limit`, with
    /// the removed horizon of the same snapshot.
    pub async fn read(
        &self,
        after: u64,
        through: u64,
        types: &[String],
        limit: u32,
    ) -> Result<(u64, Vec<StoredEvent>), DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.sql.read.clone()))
            .bind(to_i64(after))
            .bind(to_i64(through))
            .bind(types)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.pool)
            .await?;
        let mut removed_through = 0;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            removed_through = to_u64(row.try_get(0)?);
            let Some(position) = row.try_get::<Option<i64>, _>(1)? else { continue };
            events.push(StoredEvent {
                position: to_u64(position),
                event_type: row.try_get(2)?,
                aggregate_id: row.try_get(3)?,
                payload: row.try_get(4)?,
                occurred_at: row.try_get(5)?,
            });
        }
        Ok((removed_through, events))
    }

    /// Removes at most `batch` of the oldest events logged more than `keep` ago; returns how
    /// many went.
    pub async fn remove_old(&self, keep: Duration, batch: u32) -> Result<u64, DbError> {
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        let row = sqlx::query(sqlx::AssertSqlSafe(self.sql.remove_old.clone()))
            .bind(keep_ms)
            .bind(i64::from(batch.max(1)))
            .fetch_one(&self.pool)
            .await?;
        Ok(to_u64(row.try_get(0)?))
    }
}

fn head_of(last_position: i64, removed_through: i64) -> Head {
    Head { last_position: to_u64(last_position), removed_through: to_u64(removed_through) }
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
