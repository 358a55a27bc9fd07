//! Restaurants: the tenants, each with its own event sequence.

use chrono::{DateTime, Utc};
use ordercast_core::{ChainId, Reach, Region, RestaurantId, Seq};
use serde::Serialize;
use uuid::Uuid;

use crate::{Store, StoreError};

/// A restaurant to create.
#[derive(Clone, Debug)]
pub struct NewRestaurant {
    pub id: RestaurantId,
    pub name: String,
    pub chain_id: Option<ChainId>,
    /// Its home region.
    pub region: Region,
    /// The other regions its rows may be stored in.
    pub reach: Reach,
}

/// A restaurant as stored.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Restaurant {
    pub id: RestaurantId,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<ChainId>,
    /// Its home region (absent: created before the deployment named its
    /// region, and homed where it is stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub region: Option<Region>,
    /// The other regions its rows may be stored in; absent: every region
    /// of the deployment, `[]`: its home region only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub reach: Option<Vec<Region>>,
    /// The seq of its latest event (0 before the first).
    pub last_seq: Seq,
    pub created_at: DateTime<Utc>,
}

type RestaurantRow = (
    Uuid,
    String,
    Option<Uuid>,
    Option<String>,
    Option<Vec<String>>,
    i64,
    DateTime<Utc>,
);

const COLUMNS: &str = "id, name, chain_id, region, reach, last_seq, created_at";

fn from_row(
    (id, name, chain_id, region, reach, last_seq, created_at): RestaurantRow,
) -> Restaurant {
    let reach = match Reach::from_column(reach) {
        Reach::Everywhere => None,
        Reach::Only(regions) => Some(regions),
    };
    Restaurant {
        id: id.into(),
        name,
        chain_id: chain_id.map(Into::into),
        region: region.and_then(|r| r.parse().ok()),
        reach,
        last_seq: Seq::from_i64(last_seq),
        created_at,
    }
}

impl Store {
    /// Creates a restaurant; its id must be new.
    pub async fn create_restaurant(&self, new: NewRestaurant) -> Result<Restaurant, StoreError> {
        let row: Option<RestaurantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO restaurants (id, name, chain_id, region, reach) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
        )))
        .bind(new.id.as_uuid())
        .bind(&new.name)
        .bind(new.chain_id.map(|c| c.as_uuid()))
        .bind(new.region.as_str())
        .bind(new.reach.to_column())
        .fetch_optional(&self.pool)
        .await?;
        row.map(from_row)
            .ok_or(StoreError::AlreadyExists("restaurant"))
    }

    /// A restaurant by id.
    pub async fn restaurant(&self, id: RestaurantId) -> Result<Restaurant, StoreError> {
        let row: Option<RestaurantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM restaurants WHERE id = $1"
        )))
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.map(from_row).ok_or(StoreError::NotFound("restaurant"))
    }
}
