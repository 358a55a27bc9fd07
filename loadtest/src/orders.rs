//! Open-loop order creation: requests are sent on a fixed schedule, and each
//! latency is measured from when its request was *due*, so a stalled server
//! cannot hide its queueing (no coordinated omission).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use ordercast_core::auth::{Claims, TokenIssuer};
use ordercast_core::{RestaurantId, Role};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::report::Latency;
use crate::run::day_claims;
use crate::stats::histogram;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base URL of an api (repeatable; requests are spread over them).
    #[arg(long = "api", required = true)]
    apis: Vec<String>,
    /// HS256 secret the deployment verifies tokens with.
    #[arg(long, env = "ORDERCAST_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// Restaurants to create and spread orders over.
    #[arg(long, default_value_t = 50)]
    restaurants: usize,
    /// Orders per second, overall.
    #[arg(long, default_value_t = 1500)]
    rate: u64,
    /// Measured duration.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up before it.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Most requests in flight; beyond it, due requests wait (and their
    /// wait counts in their latency).
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
    /// Write the result as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn token(issuer: &TokenIssuer, role: Role, restaurants: Vec<String>) -> String {
    issuer.mint(&Claims {
        restaurants,
        ..day_claims("loadtest".into(), role).expect("the clock is after 1970")
    })
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let issuer = TokenIssuer::hs256(args.jwt_secret.as_bytes())?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.max_in_flight)
        .build()?;
    let admin = token(&issuer, Role::Admin, vec!["*".into()]);
    let mut restaurants = Vec::with_capacity(args.restaurants);
    for i in 0..args.restaurants {
        let response = client
            .post(format!("{}/v1/restaurants", args.apis[0]))
            .bearer_auth(&admin)
            .json(&json!({"name": format!("Load {i}")}))
            .send()
            .await
            .context("create a restaurant")?;
        anyhow::ensure!(
            response.status().is_success(),
            "creating a restaurant: {}",
            response.status()
        );
        let body: serde_json::Value = response.json().await?;
        let id: RestaurantId = body["id"].as_str().context("restaurant id")?.parse()?;
        restaurants.push((id, token(&issuer, Role::Service, vec![id.to_string()])));
    }
    let restaurants = Arc::new(restaurants);
    let histogram = Arc::new(Mutex::new(histogram()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let permits = Arc::new(Semaphore::new(args.max_in_flight));
    let interval = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let body = json!({"channel": "pos", "table": "5", "items": [
        {"sku": "burger", "name": "Burger", "quantity": 2, "unit_price_cents": 1250, "station": "grill"},
        {"sku": "fries", "name": "Fries", "quantity": 1, "unit_price_cents": 450, "station": "fry"},
        {"sku": "cola", "name": "Cola", "quantity": 2, "unit_price_cents": 300, "station": "bar"}]});
    let body = Arc::new(serde_json::to_vec(&body)?);
    let mut n: u64 = 0;
    loop {
        let due = start + interval * n as u32;
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let permit = permits.clone().acquire_owned().await?;
        let (client, restaurants, histogram, tally, body) = (
            client.clone(),
            restaurants.clone(),
            histogram.clone(),
            tally.clone(),
            body.clone(),
        );
        let api = args.apis[n as usize % args.apis.len()].clone();
        tokio::spawn(async move {
            let (rid, token) = &restaurants[n as usize % restaurants.len()];
            let result = client
                .post(format!("{api}/v1/restaurants/{rid}/orders"))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.as_ref().clone())
                .send()
                .await;
            let ok = matches!(&result, Ok(r) if r.status() == reqwest::StatusCode::CREATED);
            if due >= measure_from {
                let mut t = tally.lock().expect("tally lock");
                if ok {
                    t.ok += 1
                } else {
                    t.failed += 1
                }
                histogram
                    .lock()
                    .expect("histogram lock")
                    .saturating_record(due.elapsed().as_micros() as u64);
            }
            drop(permit);
        });
        n += 1;
    }
    // Wait for the stragglers.
    let _ = permits.acquire_many(args.max_in_flight as u32).await?;
    let elapsed = args.duration.as_secs_f64();
    let h = histogram.lock().expect("histogram lock");
    let t = tally.lock().expect("tally lock");
    let result = json!({
        "target_rate": args.rate,
        "achieved_rate": t.ok as f64 / elapsed,
        "created": t.ok,
        "failed": t.failed,
        "duration_s": elapsed,
        "restaurants": args.restaurants,
        "latency": Latency::of(&h),
    });
    #[allow(clippy::print_stdout, reason = "the report is the command's output")]
    {
        println!("{}", serde_json::to_string_pretty(&result)?);
    }
    if let Some(path) = args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)?;
    }
    anyhow::ensure!(t.failed == 0, "{} requests failed", t.failed);
    Ok(())
}
