//! `ordercast token`: mints a signed JWT for development and tests.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ordercast_core::auth::{Claims, Principal, TokenIssuer};
use ordercast_core::{ChainId, SessionId, WaiterId};

use crate::config::TokenArgs;

/// Builds and signs the token the arguments describe.
pub fn mint(args: &TokenArgs) -> anyhow::Result<String> {
    let issuer = match (&args.jwt_secret, &args.jwt_private_key_file) {
        (Some(secret), _) => TokenIssuer::hs256(secret.expose().as_bytes())?,
        (None, Some(path)) => {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            TokenIssuer::private_pem(&pem)?
        }
        (None, None) => anyhow::bail!(
            "ORDERCAST_JWT_SECRET or ORDERCAST_JWT_PRIVATE_KEY_FILE is required to sign"
        ),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: args.sub.clone(),
        role: args.role,
        restaurants: args.restaurants.clone(),
        chain_id: args.chain.map(ChainId::from),
        waiter_id: args
            .waiter
            .as_deref()
            .map(str::parse::<WaiterId>)
            .transpose()
            .context("--waiter")?,
        session_id: args
            .session
            .as_deref()
            .map(str::parse::<SessionId>)
            .transpose()
            .context("--session")?,
        exp: now + args.ttl.as_secs(),
        iat: Some(now),
        iss: args.jwt_issuer.clone(),
        aud: Some(args.jwt_audience.clone().into()),
    };
    // Refuse to mint what the server would refuse to accept.
    Principal::from_claims(claims.clone()).context("these claims would be rejected")?;
    Ok(issuer.mint(&claims))
}
