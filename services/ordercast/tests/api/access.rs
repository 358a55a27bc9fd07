use ordercast_core::{ChainId, Role};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestApp, mint, simple_order};

#[tokio::test]
async fn customers_order_for_their_own_session_and_see_only_its_orders() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let s1 = app.token_with(Role::Customer, rid, |c| {
        c.session_id = Some("table-4-visit-1".parse().unwrap())
    });
    let s2 = app.token_with(Role::Customer, rid, |c| {
        c.session_id = Some("table-9-visit-1".parse().unwrap())
    });

    let (status, mine) = app.create_order(rid, &s1, simple_order()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        mine["order"]["session_id"], "table-4-visit-1",
        "the session is the token's"
    );
    let mut forged = simple_order();
    forged["session_id"] = json!("table-9-visit-1");
    let (status, _) = app.create_order(rid, &s1, forged).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a customer cannot order for another session"
    );
    let (_, theirs) = app.create_order(rid, &s2, simple_order()).await;

    let (_, page) = app.get(&format!("/v1/restaurants/{rid}/orders"), &s1).await;
    let ids: Vec<&str> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [mine["order"]["id"].as_str().unwrap()]);
    let their_id = theirs["order"]["id"].as_str().unwrap();
    let (status, _) = app
        .get(&format!("/v1/restaurants/{rid}/orders/{their_id}"), &s1)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another session's order does not exist for this customer"
    );
    let path = format!("/v1/restaurants/{rid}/orders/{their_id}/status");
    let (status, _) = app.post(&path, &s1, json!({"status": "cancelled"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_customer_may_cancel_its_new_order_but_not_move_it_along() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let me = app.token_with(Role::Customer, rid, |c| {
        c.session_id = Some("s-1".parse().unwrap())
    });
    let (_, order) = app.create_order(rid, &me, simple_order()).await;
    let path = format!(
        "/v1/restaurants/{rid}/orders/{}/status",
        order["order"]["id"].as_str().unwrap()
    );

    let (status, _) = app.post(&path, &me, json!({"status": "accepted"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .post(
            &path,
            &me,
            json!({"status": "cancelled", "reason": "changed my mind"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["order"]["reason"], "changed my mind");
}

#[tokio::test]
async fn waiters_order_for_themselves_and_list_their_own_and_unassigned_orders() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let w1 = app.token_with(Role::Waiter, rid, |c| {
        c.waiter_id = Some("w1".parse().unwrap())
    });
    let w2 = app.token_with(Role::Waiter, rid, |c| {
        c.waiter_id = Some("w2".parse().unwrap())
    });
    let (_, own) = app.create_order(rid, &w1, simple_order()).await;
    assert_eq!(own["order"]["waiter_id"], "w1");
    let mut forged = simple_order();
    forged["waiter_id"] = json!("w2");
    assert_eq!(
        app.create_order(rid, &w1, forged).await.0,
        StatusCode::FORBIDDEN
    );
    app.create_order(rid, &w2, simple_order()).await;
    app.order(rid).await; // unassigned, from the POS

    let (_, page) = app.get(&format!("/v1/restaurants/{rid}/orders"), &w1).await;
    let waiters: Vec<_> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["waiter_id"].clone())
        .collect();
    assert_eq!(waiters, [json!("w1"), serde_json::Value::Null]);
}

#[tokio::test]
async fn a_waiter_acting_on_another_waiters_order_or_request_finds_nothing_there() {
    let app = TestApp::spawn().await;
    let rid = app.create_restaurant().await;
    let w1 = app.token_with(Role::Waiter, rid, |c| {
        c.waiter_id = Some("w1".parse().unwrap())
    });
    let w2 = app.token_with(Role::Waiter, rid, |c| {
        c.waiter_id = Some("w2".parse().unwrap())
    });
    let mut at_table = simple_order();
    at_table["session_id"] = json!("t7-visit-1");
    let (_, theirs) = app.create_order(rid, &w2, at_table).await;
    let oid = theirs["order"]["id"].as_str().unwrap();
    let iid = theirs["order"]["items"][0]["id"].as_str().unwrap();
    let guest = app.token_with(Role::Customer, rid, |c| {
        c.session_id = Some("t7-visit-1".parse().unwrap())
    });
    let (status, asked) = app
        .post(
            &format!("/v1/restaurants/{rid}/requests"),
            &guest,
            json!({"kind": "call_waiter", "table": "7"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{asked}");
    assert_eq!(asked["request"]["waiter_id"], "w2", "the table's waiter");
    let request = asked["request"]["id"].as_str().unwrap();

    // Illegal and legal moves alike: either answer would say the order exists.
    for (path, body) in [
        (format!("orders/{oid}/status"), json!({"status": "paid"})),
        (
            format!("orders/{oid}/status"),
            json!({"status": "accepted"}),
        ),
        (
            format!("orders/{oid}/items/{iid}/status"),
            json!({"status": "ready"}),
        ),
        (
            format!("requests/{request}/status"),
            json!({"status": "acknowledged"}),
        ),
    ] {
        let (status, problem) = app
            .post(&format!("/v1/restaurants/{rid}/{path}"), &w1, body)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {problem}");
        assert!(problem.get("current").is_none(), "{path}: {problem}");
    }
    let (_, order) = app
        .get(&format!("/v1/restaurants/{rid}/orders/{oid}"), &w2)
        .await;
    assert_eq!(order["status"], "new", "nothing moved");
    assert_eq!(order["items"][0]["status"], "queued");
}

#[tokio::test]
async fn chain_admins_reach_their_chain_and_nothing_else() {
    let app = TestApp::spawn().await;
    let (chain, elsewhere) = (ChainId::new(), ChainId::new());
    let admin = mint(Role::Admin, vec![], |c| c.chain_id = Some(chain));

    let (status, mine) = app
        .post("/v1/restaurants", &admin, json!({"name": "Chain store"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        mine["chain_id"],
        chain.to_string(),
        "defaults to the admin's chain"
    );
    let (status, _) = app
        .post(
            "/v1/restaurants",
            &admin,
            json!({"name": "Rival", "chain_id": elsewhere.to_string()}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let owner_token = app.token(Role::Owner, mine["id"].as_str().unwrap().parse().unwrap());
    assert_eq!(
        app.post("/v1/restaurants", &owner_token, json!({"name": "x"}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    let rival_admin = mint(Role::Admin, vec!["*".into()], |_| {});
    let (_, rival) = app
        .post(
            "/v1/restaurants",
            &rival_admin,
            json!({"name": "Rival", "chain_id": elsewhere.to_string()}),
        )
        .await;
    let mine_id = mine["id"].as_str().unwrap();
    let rival_id = rival["id"].as_str().unwrap();
    let taken = |id: &str| json!({"id": id, "name": "Taken"});
    assert_eq!(
        app.post("/v1/restaurants", &admin, taken(rival_id)).await.0,
        StatusCode::FORBIDDEN,
        "another chain's restaurant is not this admin's to learn about"
    );
    assert_eq!(
        app.post("/v1/restaurants", &admin, taken(mine_id)).await.0,
        StatusCode::CONFLICT,
        "its own restaurant's id is taken"
    );
    assert_eq!(
        app.get(&format!("/v1/restaurants/{mine_id}/orders"), &admin)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.get(&format!("/v1/restaurants/{rival_id}/orders"), &admin)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}
