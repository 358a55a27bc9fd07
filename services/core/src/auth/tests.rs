use super::*;

const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-for-hs256";
const RSA_PRIVATE: &[u8] = include_bytes!("../../testdata/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../testdata/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../../testdata/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../../testdata/ec_public.pem");
const R1: &str = "6f1c0d2e-0000-4000-8000-000000000001";
const R2: &str = "6f1c0d2e-0000-4000-8000-000000000002";

fn claims(role: Role) -> Claims {
    Claims {
        sub: "tester".into(),
        role,
        restaurants: vec![R1.into()],
        chain_id: None,
        waiter_id: None,
        session_id: None,
        exp: jsonwebtoken::get_current_timestamp() + 600,
        iat: None,
        iss: None,
        aud: Some("ordercast".into()),
    }
}

fn hs_verifier() -> TokenVerifier {
    TokenVerifier::hs256(SECRET, None, "ordercast").unwrap()
}

fn hs_token(claims: &Claims) -> String {
    TokenIssuer::hs256(SECRET).unwrap().mint(claims)
}

#[test]
fn a_signed_token_becomes_a_principal() {
    let p = hs_verifier()
        .verify(&hs_token(&claims(Role::Kitchen)))
        .unwrap();
    assert_eq!(p.role, Role::Kitchen);
    assert_eq!(p.access(R1.parse().unwrap()), Access::Granted);
    assert_eq!(p.access(R2.parse().unwrap()), Access::Denied);
}

#[test]
fn expired_tokens_are_refused() {
    let mut c = claims(Role::Owner);
    c.exp = jsonwebtoken::get_current_timestamp() - LEEWAY_SECS - 10;
    assert_eq!(hs_verifier().verify(&hs_token(&c)), Err(AuthError::Expired));
}

#[test]
fn a_token_is_valid_until_the_second_the_verifier_refuses_it() {
    // The verifier refuses once the whole second is past exp + leeway.
    let mut c = claims(Role::Kitchen);
    c.exp = 1_000_000;
    let p = Principal::from_claims(c).unwrap();
    let at = |secs: f64| std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs);
    let secs = std::time::Duration::from_secs_f64;
    assert_eq!(p.valid_for(at(1_000_000.0)), secs((LEEWAY_SECS + 1) as f64));
    assert_eq!(
        p.valid_for(at(1_000_000.0 + LEEWAY_SECS as f64 + 0.25)),
        secs(0.75)
    );
    assert_eq!(p.valid_for(at(1_000_001.0 + LEEWAY_SECS as f64)), secs(0.0));
    assert_eq!(p.valid_for(at(2_000_000.0)), secs(0.0));
}

#[test]
fn a_token_is_refused_before_its_not_before_time() {
    // `nbf` is not one of Claims' fields: an issuer may add it all the same.
    let with_nbf = |nbf: u64| {
        let mut token = serde_json::to_value(claims(Role::Kitchen)).unwrap();
        token["nbf"] = nbf.into();
        jsonwebtoken::encode(
            &Header::default(),
            &token,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    };
    let now = jsonwebtoken::get_current_timestamp();

    assert_eq!(
        hs_verifier().verify(&with_nbf(now + 300)).map(|p| p.role),
        Err(AuthError::NotYetValid)
    );
    assert!(hs_verifier().verify(&with_nbf(now - 1)).is_ok());
}

#[test]
fn a_token_signed_with_another_secret_is_refused() {
    let other = TokenIssuer::hs256(b"another-secret-that-is-long-enough-for-hs256").unwrap();
    let token = other.mint(&claims(Role::Owner));
    assert_eq!(hs_verifier().verify(&token), Err(AuthError::BadSignature));
}

#[test]
fn alg_none_is_refused() {
    let signed = hs_token(&claims(Role::Owner));
    let payload = signed.split('.').nth(1).unwrap();
    // base64url of {"alg":"none","typ":"JWT"}
    let token = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    assert!(hs_verifier().verify(&token).is_err());
}

#[test]
fn algorithm_confusion_is_refused() {
    // The attacker signs HS256 using the (public) RSA key as the secret.
    let verifier = TokenVerifier::public_pem(RSA_PUBLIC, None, "ordercast").unwrap();
    let forged = TokenIssuer::hs256(RSA_PUBLIC)
        .unwrap()
        .mint(&claims(Role::Owner));
    assert_eq!(verifier.verify(&forged), Err(AuthError::BadSignature));
}

#[test]
fn rs256_and_es256_tokens_verify_with_their_public_keys() {
    for (private, public) in [(RSA_PRIVATE, RSA_PUBLIC), (EC_PRIVATE, EC_PUBLIC)] {
        let token = TokenIssuer::private_pem(private)
            .unwrap()
            .mint(&claims(Role::Owner));
        let verifier = TokenVerifier::public_pem(public, None, "ordercast").unwrap();
        assert_eq!(verifier.verify(&token).unwrap().role, Role::Owner);
    }
}

#[test]
fn wrong_audience_or_issuer_is_refused() {
    let mut c = claims(Role::Owner);
    c.aud = Some("someone-else".into());
    assert_eq!(
        hs_verifier().verify(&hs_token(&c)),
        Err(AuthError::WrongIssuerOrAudience)
    );
    let strict = TokenVerifier::hs256(SECRET, Some("https://auth.example"), "ordercast").unwrap();
    let mut c = claims(Role::Owner);
    c.iss = Some("https://evil.example".into());
    assert_eq!(
        strict.verify(&hs_token(&c)),
        Err(AuthError::WrongIssuerOrAudience)
    );
}

#[test]
fn short_secrets_are_refused_at_start() {
    assert!(TokenVerifier::hs256(b"short", None, "ordercast").is_err());
}

#[test]
fn role_specific_claims_are_required() {
    let v = hs_verifier();
    assert!(matches!(
        v.verify(&hs_token(&claims(Role::Customer))),
        Err(AuthError::InvalidClaims(_))
    ));
    assert!(matches!(
        v.verify(&hs_token(&claims(Role::Waiter))),
        Err(AuthError::InvalidClaims(_))
    ));
    let mut star = claims(Role::Owner);
    star.restaurants = vec!["*".into()];
    assert!(matches!(
        v.verify(&hs_token(&star)),
        Err(AuthError::InvalidClaims(_))
    ));
}

#[test]
fn chain_admins_reach_their_chain_only() {
    let chain: ChainId = "7a000000-0000-4000-8000-000000000001".parse().unwrap();
    let mut c = claims(Role::Admin);
    c.restaurants = vec![];
    c.chain_id = Some(chain);
    let admin = hs_verifier().verify(&hs_token(&c)).unwrap();
    assert_eq!(admin.access(R2.parse().unwrap()), Access::IfChainMatches);
    assert!(admin.may_access_chain(chain));
    assert!(!admin.may_access_chain(ChainId::new()));
}

#[test]
fn only_the_expiry_may_differ_for_the_same_identity() {
    let principal = |edit: &dyn Fn(&mut Claims)| {
        let mut c = claims(Role::Customer);
        c.session_id = Some("S1".parse().unwrap());
        edit(&mut c);
        Principal::from_claims(c).unwrap()
    };
    let base = principal(&|_| {});
    assert!(base.same_identity(&principal(&|c| c.exp += 3_600)));
    let others: [&dyn Fn(&mut Claims); 4] = [
        &|c| c.session_id = Some("S2".parse().unwrap()),
        &|c| c.sub = "someone-else".into(),
        &|c| c.restaurants = vec![R2.into()],
        &|c| c.restaurants.push(R2.into()),
    ];
    for edit in others {
        assert!(!base.same_identity(&principal(edit)));
    }
}
