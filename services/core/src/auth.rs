//! JWT claims, their validation, and the principal a verified token becomes.
//!
//! HS256 (shared secret) and RS256 / ES256 (PEM public key) are accepted;
//! the accepted algorithm is fixed by the configured key, so `alg: none` and
//! algorithm confusion (an HS256 token signed with a public key) are refused.

use std::fmt;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audience::{Role, Viewer};
use crate::ids::{ChainId, RestaurantId, SessionId, WaiterId};

/// Shortest accepted HS256 secret, in bytes (RFC 7518 §3.2: key ≥ hash size).
pub const MIN_SECRET_LEN: usize = 32;
/// Most restaurants one token may name.
pub const MAX_TOKEN_RESTAURANTS: usize = 10_000;
/// Clock skew tolerated on `exp`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// The `aud` claim tokens carry unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "ordercast";
/// In `restaurants`, grants an admin every restaurant of the platform.
pub const ALL_RESTAURANTS: &str = "*";

/// The claims of an Ordercast token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    /// Restaurant ids; an admin may name chain ids or `"*"`.
    #[serde(default)]
    pub restaurants: Vec<String>,
    /// An admin's chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<ChainId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiter_id: Option<WaiterId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Checked by the verifier; a string or an array of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

/// Why a token was refused. The messages are safe to show to the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no bearer token was presented")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (its nbf is in the future)")]
    NotYetValid,
    #[error("the token's signature or algorithm is not accepted")]
    BadSignature,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's issuer or audience is not accepted")]
    WrongIssuerOrAudience,
    #[error("the token's claims are invalid: {0}")]
    InvalidClaims(&'static str),
}

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the JWT secret must be at least {MIN_SECRET_LEN} bytes")]
    SecretTooShort,
    #[error("the public key is neither an RSA nor an EC (P-256) PEM key")]
    UnsupportedPem,
    #[error("invalid private key: {0}")]
    PrivateKey(jsonwebtoken::errors::Error),
}

/// Which restaurants a token reaches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Scope {
    All,
    Ids(Vec<Uuid>),
}

/// The outcome of checking a principal against a restaurant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Granted,
    Denied,
    /// An admin whose token names chains: allowed if the restaurant belongs
    /// to one of them (see [`Principal::may_access_chain`]).
    IfChainMatches,
}

/// A verified token: who is calling and what it may reach.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
    pub waiter_id: Option<WaiterId>,
    pub session_id: Option<SessionId>,
    chain_id: Option<ChainId>,
    scope: Scope,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token; only who it names.
        f.debug_struct("Principal")
            .field("subject", &self.subject)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Principal {
    /// Validates the Ordercast-specific rules of a token's claims.
    pub fn from_claims(claims: Claims) -> Result<Principal, AuthError> {
        if claims.restaurants.len() > MAX_TOKEN_RESTAURANTS {
            return Err(AuthError::InvalidClaims("too many restaurants"));
        }
        let scope = if claims.restaurants.iter().any(|r| r == ALL_RESTAURANTS) {
            if claims.role != Role::Admin {
                return Err(AuthError::InvalidClaims("only admins may use \"*\""));
            }
            Scope::All
        } else {
            let ids = claims
                .restaurants
                .iter()
                .map(|r| Uuid::parse_str(r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| AuthError::InvalidClaims("restaurants must be UUIDs"))?;
            Scope::Ids(ids)
        };
        let names_nothing = scope == Scope::Ids(vec![]);
        match claims.role {
            Role::Admin if names_nothing && claims.chain_id.is_none() => {
                return Err(AuthError::InvalidClaims(
                    "an admin token needs restaurants or chain_id",
                ));
            }
            Role::Admin => {}
            _ if names_nothing => {
                return Err(AuthError::InvalidClaims("restaurants is empty"));
            }
            Role::Waiter if claims.waiter_id.is_none() => {
                return Err(AuthError::InvalidClaims("a waiter token needs waiter_id"));
            }
            Role::Customer if claims.session_id.is_none() => {
                return Err(AuthError::InvalidClaims(
                    "a customer token needs session_id",
                ));
            }
            _ => {}
        }
        Ok(Principal {
            subject: claims.sub,
            role: claims.role,
            waiter_id: claims.waiter_id,
            session_id: claims.session_id,
            chain_id: claims.chain_id,
            scope,
            expires_at: claims.exp,
        })
    }

    /// Whether this principal may reach restaurant `id`.
    pub fn access(&self, id: RestaurantId) -> Access {
        match &self.scope {
            Scope::All => Access::Granted,
            Scope::Ids(ids) if ids.contains(&id.as_uuid()) => Access::Granted,
            _ if self.role == Role::Admin => Access::IfChainMatches,
            _ => Access::Denied,
        }
    }

    /// For an admin: whether the token covers chain `chain`.
    pub fn may_access_chain(&self, chain: ChainId) -> bool {
        self.role == Role::Admin
            && match &self.scope {
                Scope::All => true,
                Scope::Ids(ids) => self.chain_id == Some(chain) || ids.contains(&chain.as_uuid()),
            }
    }

    /// An admin of every restaurant (`restaurants: ["*"]`).
    pub fn is_platform_admin(&self) -> bool {
        self.role == Role::Admin && self.scope == Scope::All
    }

    /// The chain an admin token is scoped to, if it names exactly one.
    pub fn chain_id(&self) -> Option<ChainId> {
        self.chain_id
    }

    /// How long the token stays valid from `now`: the verifier accepts it
    /// while the current whole second is at most `exp` plus the clock skew
    /// it tolerates. A stream ends when that runs out, exactly when a
    /// reconnect with the same token would be refused.
    pub fn valid_for(&self, now: std::time::SystemTime) -> std::time::Duration {
        let now = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let refused_from = self.expires_at.saturating_add(LEEWAY_SECS + 1);
        std::time::Duration::from_secs(refused_from).saturating_sub(now)
    }

    /// `other` names the same subject, role, restaurants, chain, waiter
    /// and table session: it may replace this token on an open connection
    /// (only the expiry differs).
    pub fn same_identity(&self, other: &Principal) -> bool {
        self.identity() == other.identity()
    }

    /// This principal whatever its token's expiry: what a limit is charged
    /// to, so that a refreshed token is the same principal.
    pub fn identity(&self) -> Principal {
        Principal {
            expires_at: 0,
            ..self.clone()
        }
    }

    /// The identity events are filtered for.
    pub fn viewer(&self) -> Viewer {
        Viewer {
            role: self.role,
            waiter_id: self.waiter_id.clone(),
            session_id: self.session_id.clone(),
        }
    }
}

/// Checks signatures and claims of incoming tokens.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    /// A verifier for HS256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8], issuer: Option<&str>, audience: &str) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort);
        }
        let key = DecodingKey::from_secret(secret);
        Ok(Self::with(key, Algorithm::HS256, issuer, audience))
    }

    /// A verifier for RS256 or ES256 tokens, by the type of the PEM public key.
    pub fn public_pem(pem: &[u8], issuer: Option<&str>, audience: &str) -> Result<Self, KeyError> {
        let (key, alg) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            (key, Algorithm::RS256)
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            (key, Algorithm::ES256)
        } else {
            return Err(KeyError::UnsupportedPem);
        };
        Ok(Self::with(key, alg, issuer, audience))
    }

    fn with(key: DecodingKey, alg: Algorithm, issuer: Option<&str>, audience: &str) -> Self {
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        // A token may say when it starts to be valid; honoured, with the
        // same leeway as `exp`.
        validation.validate_nbf = true;
        validation.set_audience(&[audience]);
        let mut required = vec!["exp", "aud", "sub"];
        if let Some(iss) = issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        TokenVerifier { key, validation }
    }

    /// Verifies `token` and turns its claims into a [`Principal`].
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName
                | ErrorKind::MissingAlgorithm
                | ErrorKind::InvalidKeyFormat
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidRsaKey(_) => AuthError::BadSignature,
                ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                    AuthError::WrongIssuerOrAudience
                }
                ErrorKind::MissingRequiredClaim(_) => {
                    AuthError::InvalidClaims("exp, aud and sub are required")
                }
                _ => AuthError::Malformed,
            },
        )?;
        Principal::from_claims(data.claims)
    }
}

/// Signs tokens: for `ordercast token`, tests and the load tester.
pub struct TokenIssuer {
    key: EncodingKey,
    alg: Algorithm,
}

impl TokenIssuer {
    /// Signs with an HS256 shared secret.
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort);
        }
        Ok(TokenIssuer {
            key: EncodingKey::from_secret(secret),
            alg: Algorithm::HS256,
        })
    }

    /// Signs with an RSA (RS256) or EC P-256 (ES256) PEM private key.
    pub fn private_pem(pem: &[u8]) -> Result<Self, KeyError> {
        match EncodingKey::from_rsa_pem(pem) {
            Ok(key) => Ok(TokenIssuer {
                key,
                alg: Algorithm::RS256,
            }),
            Err(_) => EncodingKey::from_ec_pem(pem)
                .map(|key| TokenIssuer {
                    key,
                    alg: Algorithm::ES256,
                })
                .map_err(KeyError::PrivateKey),
        }
    }

    /// Signs `claims`.
    pub fn mint(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(self.alg), claims, &self.key)
            .expect("claims always serialize and the key was validated")
    }
}

#[cfg(test)]
mod tests;
