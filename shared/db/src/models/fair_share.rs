//! `fair_share_owners` and `fair_share_clock`: the state of the fair schedule
//! (`folio_core::fair`) the relay releases owned jobs by, kept between
//! releases and shared by every relay.

use diesel::{
    prelude::*,
    sql_types::{Array, BigInt, Double, Integer, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use folio_core::fair::Clock;
use uuid::Uuid;

use crate::schema::fair_share_clock;

/// The advisory lock ("folio" and 2) one releasing relay holds for its
/// transaction: releases are decided one at a time, against one reading of
/// the queue.
const RELEASE_LOCK: i64 = 0x666f_6c69_6f00_0002;

/// Takes the release lock for the transaction, if no other relay holds it.
pub async fn try_lock(conn: &mut AsyncPgConnection) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    let locked: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
        .bind::<BigInt, _>(RELEASE_LOCK)
        .get_result(conn)
        .await?;
    Ok(locked.locked)
}

/// The schedule's clock.
pub async fn clock(conn: &mut AsyncPgConnection) -> QueryResult<Clock> {
    let (virtual_time, turn) = fair_share_clock::table
        .select((fair_share_clock::virtual_time, fair_share_clock::turn))
        .first(conn)
        .await?;
    Ok(Clock { virtual_time, turn })
}

/// One owner's place in the schedule and the weight of its share.
#[derive(Debug, Clone, Copy, PartialEq, QueryableByName)]
pub struct Place {
    #[diesel(sql_type = SqlUuid)]
    pub owner_id: Uuid,
    #[diesel(sql_type = Double)]
    pub finish: f64,
    #[diesel(sql_type = BigInt)]
    pub turn: i64,
    /// The account's own weight, else its role's setting
    /// (`share_weight_<role>`), else 1.
    #[diesel(sql_type = Integer)]
    pub weight: i32,
}

/// The places of `owners` (an owner never served is at 0).
pub async fn places(conn: &mut AsyncPgConnection, owners: &[Uuid]) -> QueryResult<Vec<Place>> {
    diesel::sql_query(
        "SELECT o.id AS owner_id, COALESCE(f.finish, 0) AS finish, COALESCE(f.turn, 0) AS turn, \
                GREATEST(1, COALESCE(u.share_weight, \
                    (SELECT s.value::int4 FROM settings s WHERE s.name = 'share_weight_' || u.role), 1)) AS weight \
         FROM unnest($1) AS o(id) \
         LEFT JOIN users u ON u.id = o.id \
         LEFT JOIN fair_share_owners f ON f.owner_id = o.id",
    )
    .bind::<Array<SqlUuid>, _>(owners)
    .load(conn)
    .await
}

/// Stores the clock and the places of the owners just served.
pub async fn save(conn: &mut AsyncPgConnection, clock: Clock, served: &[Place]) -> QueryResult<()> {
    diesel::update(fair_share_clock::table)
        .set((
            fair_share_clock::virtual_time.eq(clock.virtual_time),
            fair_share_clock::turn.eq(clock.turn),
        ))
        .execute(conn)
        .await?;
    let ids: Vec<Uuid> = served.iter().map(|p| p.owner_id).collect();
    let finishes: Vec<f64> = served.iter().map(|p| p.finish).collect();
    let turns: Vec<i64> = served.iter().map(|p| p.turn).collect();
    diesel::sql_query(
        "INSERT INTO fair_share_owners (owner_id, finish, turn) \
         SELECT * FROM unnest($1, $2, $3) \
         ON CONFLICT (owner_id) DO UPDATE SET finish = EXCLUDED.finish, turn = EXCLUDED.turn",
    )
    .bind::<Array<SqlUuid>, _>(&ids)
    .bind::<Array<Double>, _>(&finishes)
    .bind::<Array<BigInt>, _>(&turns)
    .execute(conn)
    .await?;
    Ok(())
}

/// The weights of the owners with jobs waiting: `owner`'s, and all of them
/// together (its share of the workers is the one over the other).
pub async fn shares(conn: &mut AsyncPgConnection, owner: Uuid, waiting_owners: &[Uuid]) -> QueryResult<(i32, i64)> {
    let mut all: Vec<Uuid> = waiting_owners.to_vec();
    if !all.contains(&owner) {
        all.push(owner);
    }
    let places = places(conn, &all).await?;
    let mine = places.iter().find(|p| p.owner_id == owner).map_or(1, |p| p.weight);
    Ok((mine, places.iter().map(|p| i64::from(p.weight)).sum()))
}
