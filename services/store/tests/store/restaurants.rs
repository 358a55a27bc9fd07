//! Restaurants: the tenants, each with its own sequence.

use ordercast_core::{ChainId, Reach, RestaurantId, Seq};
use ordercast_store::{NewRestaurant, StoreError};

use crate::common::store;

#[tokio::test]
async fn a_restaurant_is_created_once_and_read_back_as_created() {
    let store = store().await;
    let new = NewRestaurant {
        id: RestaurantId::new(),
        name: "Osteria Uno".into(),
        chain_id: Some(ChainId::new()),
        region: "eu-west".parse().unwrap(),
        reach: Reach::Only(vec!["us-east".parse().unwrap()]),
    };

    let created = store.create_restaurant(new.clone()).await.unwrap();
    let again = store.create_restaurant(NewRestaurant {
        name: "Impostor".into(),
        ..new.clone()
    });

    assert!(matches!(
        again.await,
        Err(StoreError::AlreadyExists("restaurant"))
    ));
    assert_eq!(store.restaurant(new.id).await.unwrap(), created);
    assert_eq!(
        (created.name.as_str(), created.last_seq),
        ("Osteria Uno", Seq::ZERO)
    );
    assert_eq!(
        (created.chain_id, created.region, created.reach),
        (
            new.chain_id,
            Some(new.region),
            Some(vec!["us-east".parse().unwrap()])
        )
    );
    let unknown = store.restaurant(RestaurantId::new()).await;
    assert!(matches!(unknown, Err(StoreError::NotFound("restaurant"))));
}
