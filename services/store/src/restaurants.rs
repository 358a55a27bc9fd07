//! Restaurants: the tenants, each with its own event sequence.

use chrono::{DateTime, Utc};
use ordercast_core::{ChainId, RestaurantId, Seq};
use serde::Serialize;
use uuid::Uuid;

use crate::{Store, StoreError};

/// A restaurant to create.
#[derive(Clone, Debug)]
pub struct NewRestaurant {
    pub id: RestaurantId,
    pub name: String,
    pub chain_id: Option<ChainId>,
    pub region: Option<String>,
}

/// A restaurant as stored.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Restaurant {
    pub id: RestaurantId,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<ChainId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The seq of its latest event (0 before the first).
    pub last_seq: Seq,
    pub created_at: DateTime<Utc>,
}

type RestaurantRow = (
    Uuid,
    String,
    Option<Uuid>,
    Option<String>,
    i64,
    DateTime<Utc>,
);

fn from_row((id, name, chain_id, region, last_seq, created_at): RestaurantRow) -> Restaurant {
    Restaurant {
        id: id.into(),
        name,
        chain_id: chain_id.map(Into::into),
        region,
        last_seq: Seq::from_i64(last_seq),
        created_at,
    }
}

impl Store {
    /// Creates a restaurant; its id must be new.
    pub async fn create_restaurant(&self, new: NewRestaurant) -> Result<Restaurant, StoreError> {
        let row: Option<RestaurantRow> = sqlx::query_as(
            "INSERT INTO restaurants (id, name, chain_id, region) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO NOTHING
             RETURNING id, name, chain_id, region, last_seq, created_at",
        )
        .bind(new.id.as_uuid())
        .bind(&new.name)
        .bind(new.chain_id.map(|c| c.as_uuid()))
        .bind(&new.region)
        .fetch_optional(&self.pool)
        .await?;
        row.map(from_row)
            .ok_or(StoreError::AlreadyExists("restaurant"))
    }

    /// A restaurant by id.
    pub async fn restaurant(&self, id: RestaurantId) -> Result<Restaurant, StoreError> {
        let row: Option<RestaurantRow> = sqlx::query_as(
            "SELECT id, name, chain_id, region, last_seq, created_at FROM restaurants WHERE id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.map(from_row).ok_or(StoreError::NotFound("restaurant"))
    }
}
