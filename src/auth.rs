//! Who may use which store. Sans-IO apart from reading the key files once at
//! start ([`Auth::from_config`]): [`Auth::check`] takes a store id, the token
//! the request carries (from `syncPayload.authToken` or `Authorization:
//! Bearer`) and the time, and says [`Decision::Allow`] or refuses with a
//! status and a plain reason. The reasons never hold the token.
//!
//! Two kinds of token, both optional:
//! - static tokens (`AUTH_TOKEN`, one or a comma-separated list): each opens
//!   every store. With a JWT key configured, the well-known default value is
//!   not accepted (only a token set on purpose is).
//! - signed tokens (JWT): HS256 with `JWT_SECRET`, RS256 or EdDSA with
//!   `JWT_PUBLIC_KEY_FILE` (PEM) or `JWT_JWKS_FILE`. The claims `stores`
//!   (exact store ids) and `store_prefix` (a prefix of store ids) say which
//!   stores the holder may use; `exp` is required and `nbf` checked, with
//!   [`LEEWAY_SECS`] of leeway for clocks apart; `aud` and `iss` must match
//!   `JWT_AUDIENCE` / `JWT_ISSUER` when those are set.

use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::{Config, DEFAULT_AUTH_TOKEN};
use crate::protocol::query::ct_eq;

/// Seconds a token is still taken after its `exp` (and before its `nbf`):
/// the issuer's clock and ours may be apart.
pub const LEEWAY_SECS: u64 = 60;

/// What a request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go on. `expires` is the token's `exp` (Unix seconds) for a JWT.
    Allow { expires: Option<u64> },
    /// Answer `status` with `reason` as a plain-text body, before any upgrade.
    Refuse(Refused),
}

/// A refusal: `401` (no token, or one that is not valid) or `403` (a valid
/// token that does not grant this store). The caller answers it as is; the
/// client must fix its token (the `reason` says what is wrong).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub reason: Reason,
}

/// Why a token is refused; `Display` is the body the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No token in the payload or the header: the app must send one.
    Missing,
    /// Not a static token, not a JWT: the app sends the wrong value.
    Invalid,
    /// A JWT no configured key signed: the issuer's key and ours differ.
    BadSignature,
    /// Past `exp` (and the leeway): the app needs a new token.
    Expired,
    /// Before `nbf` (and the leeway): the clocks of issuer and server differ.
    NotYetValid,
    /// A JWT without `exp`: the issuer must set one.
    NoExpiry,
    /// `aud` does not match `JWT_AUDIENCE`: token or setting to fix.
    WrongAudience,
    /// `iss` does not match `JWT_ISSUER`: token or setting to fix.
    WrongIssuer,
    /// A valid JWT granting no store: the issuer must add `stores` or `store_prefix`.
    NoStoreClaim,
    /// A valid JWT for other stores: the app needs a token for this one.
    StoreNotGranted(String),
    /// The server's own key settings could not be loaded (logged at start):
    /// the operator fixes the setting; clients can only retry later.
    Misconfigured,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => write!(f, "Invalid auth token: syncPayload.authToken is missing"),
            Reason::Invalid => write!(f, "Invalid auth token"),
            Reason::BadSignature => write!(f, "Invalid auth token: bad signature or unknown key"),
            Reason::Expired => write!(f, "Invalid auth token: expired (exp)"),
            Reason::NotYetValid => write!(f, "Invalid auth token: not valid yet (nbf)"),
            Reason::NoExpiry => write!(f, "Invalid auth token: no exp claim"),
            Reason::WrongAudience => write!(f, "Invalid auth token: wrong audience (aud)"),
            Reason::WrongIssuer => write!(f, "Invalid auth token: wrong issuer (iss)"),
            Reason::NoStoreClaim => {
                write!(f, "Invalid auth token: no stores or store_prefix claim")
            }
            Reason::StoreNotGranted(store) => {
                write!(
                    f,
                    "Forbidden: the auth token does not grant store `{store}`"
                )
            }
            Reason::Misconfigured => write!(
                f,
                "The server's JWT settings could not be loaded; see its log"
            ),
        }
    }
}

/// The claims this server reads (any others are ignored).
#[derive(Deserialize)]
struct Claims {
    exp: Option<f64>,
    nbf: Option<f64>,
    #[serde(default)]
    stores: Option<Vec<String>>,
    #[serde(default)]
    store_prefix: Option<String>,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The server's token rules, built once from the settings.
pub struct Auth {
    statics: Vec<String>,
    keys: Vec<Key>,
    audience: Option<String>,
    issuer: Option<String>,
    /// Set when the key settings failed to load: everything is refused
    /// (fail closed) rather than served without the configured checks.
    broken: bool,
}

/// Counts only: the tokens and keys are secrets and stay out of any output.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("static_tokens", &self.statics.len())
            .field("jwt_keys", &self.keys.len())
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("broken", &self.broken)
            .finish()
    }
}

impl Auth {
    /// Reads the key files the settings name. The error names the setting
    /// and the cause (the operator fixes the setting; the server must not
    /// start).
    pub fn from_config(config: &Config) -> Result<Auth, String> {
        let mut keys = Vec::new();
        if let Some(secret) = config.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
            keys.push(Key {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        if let Some(path) = &config.jwt_public_key_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("JWT_PUBLIC_KEY_FILE: cannot read {}: {e}", path.display()))?;
            keys.push(pem_key(&pem).ok_or_else(|| {
                format!(
                    "JWT_PUBLIC_KEY_FILE: {} is not an RSA or Ed25519 public key in PEM",
                    path.display()
                )
            })?);
        }
        if let Some(path) = &config.jwt_jwks_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("JWT_JWKS_FILE: cannot read {}: {e}", path.display()))?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| format!("JWT_JWKS_FILE: {} is not a JWK set: {e}", path.display()))?;
            let before = keys.len();
            for jwk in &set.keys {
                if let Some(k) = jwk_key(jwk) {
                    keys.push(k);
                }
            }
            if keys.len() == before {
                return Err(format!(
                    "JWT_JWKS_FILE: {} has no RSA (RS256) or Ed25519 (EdDSA) key",
                    path.display()
                ));
            }
        }
        let jwt = !keys.is_empty();
        let statics: Vec<String> = config
            .auth_token
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .filter(|t| !(jwt && *t == DEFAULT_AUTH_TOKEN))
            .map(String::from)
            .collect();
        if statics.is_empty() && !jwt {
            return Err(
                "AUTH_TOKEN is empty and no JWT key is set: no client could connect".to_string(),
            );
        }
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
        Ok(Auth {
            statics,
            keys,
            audience: nonempty(&config.jwt_audience),
            issuer: nonempty(&config.jwt_issuer),
            broken: false,
        })
    }

    /// A server whose key settings failed to load: it refuses every token.
    pub fn refuse_all() -> Auth {
        Auth {
            statics: Vec::new(),
            keys: Vec::new(),
            audience: None,
            issuer: None,
            broken: true,
        }
    }

    /// Whether signed tokens are accepted.
    pub fn jwt_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// May the holder of `token` use `store_id` at `now` (Unix seconds)?
    pub fn check(&self, store_id: &str, token: Option<&str>, now: u64) -> Decision {
        let refuse = |status, reason| Decision::Refuse(Refused { status, reason });
        if self.broken {
            return refuse(503, Reason::Misconfigured);
        }
        let Some(token) = token else {
            return refuse(401, Reason::Missing);
        };
        // Every static token is compared, so the time does not tell which
        // one (or whether any) came close.
        let mut matched = false;
        for t in &self.statics {
            matched |= ct_eq(token.as_bytes(), t.as_bytes());
        }
        if matched {
            return Decision::Allow { expires: None };
        }
        if self.keys.is_empty() || token.split('.').count() != 3 {
            return refuse(401, Reason::Invalid);
        }
        let claims = match self.verify(token) {
            Ok(c) => c,
            Err(reason) => return refuse(401, reason),
        };
        let Some(exp) = claims.exp else {
            return refuse(401, Reason::NoExpiry);
        };
        if exp + (LEEWAY_SECS as f64) <= now as f64 {
            return refuse(401, Reason::Expired);
        }
        if let Some(nbf) = claims.nbf {
            if nbf > (now + LEEWAY_SECS) as f64 {
                return refuse(401, Reason::NotYetValid);
            }
        }
        if claims.stores.is_none() && claims.store_prefix.is_none() {
            return refuse(403, Reason::NoStoreClaim);
        }
        let listed = claims
            .stores
            .iter()
            .flatten()
            .any(|s| s.as_str() == store_id);
        let prefixed = claims
            .store_prefix
            .as_deref()
            .is_some_and(|p| !p.is_empty() && store_id.starts_with(p));
        if listed || prefixed {
            Decision::Allow {
                expires: Some(exp.max(0.0) as u64),
            }
        } else {
            refuse(403, Reason::StoreNotGranted(store_id.to_string()))
        }
    }

    /// The signature, `aud` and `iss`; the times are ours to check (with
    /// the `now` we are given, so they can be tested).
    fn verify(&self, token: &str) -> Result<Claims, Reason> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Reason::Invalid)?;
        let mut last = Reason::BadSignature;
        // Only keys of the algorithm the token names, and of its `kid` when
        // both sides have one: a token cannot pick how its key is used.
        for k in self.keys.iter().filter(|k| k.alg == header.alg) {
            if let (Some(a), Some(b)) = (&k.kid, &header.kid) {
                if a != b {
                    continue;
                }
            }
            let mut v = Validation::new(k.alg);
            v.validate_exp = false;
            v.validate_nbf = false;
            v.required_spec_claims.clear();
            // Always: without JWT_AUDIENCE, a token naming any audience is
            // meant for someone else and refused.
            v.validate_aud = true;
            if let Some(aud) = &self.audience {
                v.set_audience(&[aud]);
                v.required_spec_claims.insert("aud".into());
            }
            if let Some(iss) = &self.issuer {
                v.set_issuer(&[iss]);
                v.required_spec_claims.insert("iss".into());
            }
            use jsonwebtoken::errors::ErrorKind as K;
            match jsonwebtoken::decode::<Claims>(token, &k.key, &v) {
                Ok(data) => return Ok(data.claims),
                Err(e) => match e.kind() {
                    K::InvalidSignature | K::InvalidAlgorithm | K::InvalidKeyFormat => {}
                    K::InvalidAudience => last = Reason::WrongAudience,
                    K::InvalidIssuer => last = Reason::WrongIssuer,
                    K::MissingRequiredClaim(c) if c == "aud" => last = Reason::WrongAudience,
                    K::MissingRequiredClaim(c) if c == "iss" => last = Reason::WrongIssuer,
                    _ => last = Reason::Invalid,
                },
            }
        }
        Err(last)
    }
}

/// An RSA (RS256) or Ed25519 (EdDSA) public key in PEM.
fn pem_key(pem: &[u8]) -> Option<Key> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Some(Key {
            kid: None,
            alg: Algorithm::RS256,
            key,
        });
    }
    DecodingKey::from_ed_pem(pem).ok().map(|key| Key {
        kid: None,
        alg: Algorithm::EdDSA,
        key,
    })
}

/// An RSA or Ed25519 key of a JWK set; other keys are skipped.
fn jwk_key(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Key> {
    let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::OctetKeyPair(p), None | Some(KeyAlgorithm::EdDSA))
            if p.curve == EllipticCurve::Ed25519 =>
        {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::{json, Value};
    use std::path::PathBuf;

    const NOW: u64 = 1_800_000_000;
    const SECRET: &str = "test-hs256-secret";

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jwt")
            .join(name)
    }

    fn hs(claims: Value) -> String {
        hs_with(SECRET, claims)
    }

    fn hs_with(secret: &str, claims: Value) -> String {
        let key = EncodingKey::from_secret(secret.as_bytes());
        encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    fn signed(alg: Algorithm, private: &str, kid: Option<&str>, claims: Value) -> String {
        let pem = std::fs::read(fixture(private)).unwrap();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ed_pem(&pem).unwrap(),
        };
        let mut header = Header::new(alg);
        header.kid = kid.map(String::from);
        encode(&header, &claims, &key).unwrap()
    }

    fn with(f: impl FnOnce(&mut Config)) -> Auth {
        let mut c = Config::default();
        f(&mut c);
        Auth::from_config(&c).unwrap()
    }

    fn hs_auth() -> Auth {
        with(|c| c.jwt_secret = Some(SECRET.into()))
    }

    fn refused(d: Decision) -> (u16, String) {
        match d {
            Decision::Refuse(r) => (r.status, r.reason.to_string()),
            Decision::Allow { .. } => panic!("allowed"),
        }
    }

    fn a_store(exp: u64) -> Value {
        json!({"stores": ["a", "b"], "exp": exp})
    }

    #[test]
    fn static_tokens_open_every_store() {
        let auth = with(|c| c.auth_token = "one, two".into());
        for t in ["one", "two"] {
            assert_eq!(
                auth.check("any", Some(t), NOW),
                Decision::Allow { expires: None }
            );
        }
        assert_eq!(
            refused(auth.check("any", Some("three"), NOW)),
            (401, "Invalid auth token".into())
        );
        assert_eq!(refused(auth.check("any", Some("one,two"), NOW)).0, 401);
        assert_eq!(
            refused(auth.check("any", None, NOW)),
            (
                401,
                "Invalid auth token: syncPayload.authToken is missing".into()
            )
        );
        // Without a JWT key, the default token still works (and is warned of).
        let default = with(|_| {});
        assert!(matches!(
            default.check("s", Some(DEFAULT_AUTH_TOKEN), NOW),
            Decision::Allow { .. }
        ));
    }

    #[test]
    fn with_a_jwt_key_the_default_token_is_off_and_a_set_one_stays() {
        let auth = hs_auth();
        assert!(auth.jwt_enabled());
        assert_eq!(
            refused(auth.check("s", Some(DEFAULT_AUTH_TOKEN), NOW)).0,
            401
        );
        let both = with(|c| {
            c.jwt_secret = Some(SECRET.into());
            c.auth_token = "backend-token".into();
        });
        assert!(matches!(
            both.check("s", Some("backend-token"), NOW),
            Decision::Allow { .. }
        ));
        assert!(matches!(
            both.check("a", Some(&hs(a_store(NOW + 60))), NOW),
            Decision::Allow { .. }
        ));
    }

    #[test]
    fn nothing_to_accept_is_a_start_error() {
        let c = Config {
            auth_token: " , ".into(),
            ..Default::default()
        };
        assert!(Auth::from_config(&c)
            .unwrap_err()
            .contains("AUTH_TOKEN is empty"));
    }

    #[test]
    fn hs256_stores_list() {
        let auth = hs_auth();
        let t = hs(a_store(NOW + 3600));
        assert_eq!(
            auth.check("a", Some(&t), NOW),
            Decision::Allow {
                expires: Some(NOW + 3600)
            }
        );
        assert!(matches!(
            auth.check("b", Some(&t), NOW),
            Decision::Allow { .. }
        ));
        assert_eq!(
            refused(auth.check("c", Some(&t), NOW)),
            (
                403,
                "Forbidden: the auth token does not grant store `c`".into()
            )
        );
        // Exact ids only: no prefix match from the list.
        assert_eq!(refused(auth.check("ab", Some(&t), NOW)).0, 403);
    }

    #[test]
    fn store_prefix() {
        let auth = hs_auth();
        let t = hs(json!({"store_prefix": "team-1/", "exp": NOW + 60}));
        assert!(matches!(
            auth.check("team-1/todos", Some(&t), NOW),
            Decision::Allow { .. }
        ));
        assert_eq!(refused(auth.check("team-2/todos", Some(&t), NOW)).0, 403);
        assert_eq!(refused(auth.check("team-1", Some(&t), NOW)).0, 403);
        // Both claims: either grants.
        let t = hs(json!({"stores": ["x"], "store_prefix": "p-", "exp": NOW + 60}));
        assert!(matches!(
            auth.check("x", Some(&t), NOW),
            Decision::Allow { .. }
        ));
        assert!(matches!(
            auth.check("p-1", Some(&t), NOW),
            Decision::Allow { .. }
        ));
        // An empty prefix grants nothing (not everything).
        let t = hs(json!({"store_prefix": "", "exp": NOW + 60}));
        assert_eq!(refused(auth.check("x", Some(&t), NOW)).0, 403);
    }

    #[test]
    fn no_store_claim_is_refused() {
        let t = hs(json!({"sub": "u1", "exp": NOW + 60}));
        assert_eq!(
            refused(hs_auth().check("a", Some(&t), NOW)),
            (
                403,
                "Invalid auth token: no stores or store_prefix claim".into()
            )
        );
    }

    #[test]
    fn expiry_and_not_before_with_leeway() {
        let auth = hs_auth();
        let t = hs(a_store(NOW));
        // Within the leeway past exp: still taken; at exp + leeway: not.
        assert!(matches!(
            auth.check("a", Some(&t), NOW + LEEWAY_SECS - 1),
            Decision::Allow { .. }
        ));
        assert_eq!(
            refused(auth.check("a", Some(&t), NOW + LEEWAY_SECS)),
            (401, "Invalid auth token: expired (exp)".into())
        );
        let t = hs(json!({"stores": ["a"], "exp": NOW + 3600, "nbf": NOW + 600}));
        assert_eq!(
            refused(auth.check("a", Some(&t), NOW)),
            (401, "Invalid auth token: not valid yet (nbf)".into())
        );
        assert!(matches!(
            auth.check("a", Some(&t), NOW + 600 - LEEWAY_SECS),
            Decision::Allow { .. }
        ));
        let t = hs(json!({"stores": ["a"]}));
        assert_eq!(
            refused(auth.check("a", Some(&t), NOW)),
            (401, "Invalid auth token: no exp claim".into())
        );
    }

    #[test]
    fn bad_signatures_and_garbage() {
        let auth = hs_auth();
        let other = hs_with("another-secret", a_store(NOW + 60));
        assert_eq!(
            refused(auth.check("a", Some(&other), NOW)),
            (
                401,
                "Invalid auth token: bad signature or unknown key".into()
            )
        );
        // A changed payload under the old signature.
        let good = hs(a_store(NOW + 60));
        let parts: Vec<&str> = good.split('.').collect();
        let forged_claims = hs(json!({"store_prefix": "x", "exp": NOW + 60}));
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            forged_claims.split('.').nth(1).unwrap(),
            parts[2]
        );
        assert_eq!(refused(auth.check("a", Some(&forged), NOW)).0, 401);
        assert_eq!(
            refused(auth.check("a", Some("a.b.c"), NOW)),
            (401, "Invalid auth token".into())
        );
        assert_eq!(
            refused(auth.check("a", Some("not-a-jwt"), NOW)),
            (401, "Invalid auth token".into())
        );
        // `alg: none` is never taken.
        let none = format!("{}.{}.", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", parts[1]);
        assert_eq!(refused(auth.check("a", Some(&none), NOW)).0, 401);
    }

    #[test]
    fn rs256_and_eddsa_from_pem() {
        let rsa = with(|c| c.jwt_public_key_file = Some(fixture("rsa-public.pem")));
        let t = signed(Algorithm::RS256, "rsa-private.pem", None, a_store(NOW + 60));
        assert!(matches!(
            rsa.check("a", Some(&t), NOW),
            Decision::Allow { .. }
        ));
        assert_eq!(refused(rsa.check("c", Some(&t), NOW)).0, 403);
        // Key confusion: an HS256 token "signed" with the public key's PEM.
        let pem = std::fs::read_to_string(fixture("rsa-public.pem")).unwrap();
        let confused = hs_with(&pem, a_store(NOW + 60));
        assert_eq!(refused(rsa.check("a", Some(&confused), NOW)).0, 401);
        // Another key's signature.
        let ed_signed = signed(
            Algorithm::EdDSA,
            "ed25519-private.pem",
            None,
            a_store(NOW + 60),
        );
        assert_eq!(refused(rsa.check("a", Some(&ed_signed), NOW)).0, 401);

        let ed = with(|c| c.jwt_public_key_file = Some(fixture("ed25519-public.pem")));
        assert!(matches!(
            ed.check("a", Some(&ed_signed), NOW),
            Decision::Allow { .. }
        ));
        assert_eq!(refused(ed.check("a", Some(&t), NOW)).0, 401);
        let expired = signed(
            Algorithm::EdDSA,
            "ed25519-private.pem",
            None,
            a_store(NOW - 3600),
        );
        assert_eq!(
            refused(ed.check("a", Some(&expired), NOW)).1,
            "Invalid auth token: expired (exp)"
        );
    }

    #[test]
    fn jwks_by_kid() {
        let auth = with(|c| c.jwt_jwks_file = Some(fixture("jwks.json")));
        let rsa = signed(
            Algorithm::RS256,
            "rsa-private.pem",
            Some("rsa-1"),
            a_store(NOW + 60),
        );
        let ed = signed(
            Algorithm::EdDSA,
            "ed25519-private.pem",
            Some("ed-1"),
            a_store(NOW + 60),
        );
        let no_kid = signed(
            Algorithm::EdDSA,
            "ed25519-private.pem",
            None,
            a_store(NOW + 60),
        );
        for t in [&rsa, &ed, &no_kid] {
            assert!(matches!(
                auth.check("a", Some(t), NOW),
                Decision::Allow { .. }
            ));
        }
        let wrong_kid = signed(
            Algorithm::EdDSA,
            "ed25519-private.pem",
            Some("rsa-1"),
            a_store(NOW + 60),
        );
        assert_eq!(refused(auth.check("a", Some(&wrong_kid), NOW)).0, 401);
        // HS256 is not taken when only public keys are set.
        assert_eq!(
            refused(auth.check("a", Some(&hs(a_store(NOW + 60))), NOW)).0,
            401
        );
    }

    #[test]
    fn audience_and_issuer() {
        let auth = with(|c| {
            c.jwt_secret = Some(SECRET.into());
            c.jwt_audience = Some("sync".into());
            c.jwt_issuer = Some("https://id.example".into());
        });
        let ok =
            json!({"stores": ["a"], "exp": NOW + 60, "aud": "sync", "iss": "https://id.example"});
        assert!(matches!(
            auth.check("a", Some(&hs(ok)), NOW),
            Decision::Allow { .. }
        ));
        let t = hs(
            json!({"stores": ["a"], "exp": NOW + 60, "aud": "other", "iss": "https://id.example"}),
        );
        assert_eq!(
            refused(auth.check("a", Some(&t), NOW)).1,
            "Invalid auth token: wrong audience (aud)"
        );
        let t = hs(json!({"stores": ["a"], "exp": NOW + 60, "iss": "https://id.example"}));
        assert_eq!(
            refused(auth.check("a", Some(&t), NOW)).1,
            "Invalid auth token: wrong audience (aud)"
        );
        let t = hs(json!({"stores": ["a"], "exp": NOW + 60, "aud": "sync", "iss": "evil"}));
        assert_eq!(
            refused(auth.check("a", Some(&t), NOW)).1,
            "Invalid auth token: wrong issuer (iss)"
        );
        // Without JWT_AUDIENCE, a token meant for another audience is refused.
        let t = hs(json!({"stores": ["a"], "exp": NOW + 60, "aud": "sync"}));
        assert_eq!(
            refused(hs_auth().check("a", Some(&t), NOW)).1,
            "Invalid auth token: wrong audience (aud)"
        );
    }

    #[test]
    fn bad_key_settings_are_start_errors_and_fail_closed() {
        let mut c = Config {
            jwt_public_key_file: Some(fixture("jwks.json")),
            ..Default::default()
        };
        assert!(Auth::from_config(&c)
            .unwrap_err()
            .starts_with("JWT_PUBLIC_KEY_FILE:"));
        c.jwt_public_key_file = Some(fixture("missing.pem"));
        assert!(Auth::from_config(&c).unwrap_err().contains("cannot read"));
        c.jwt_public_key_file = None;
        c.jwt_jwks_file = Some(fixture("rsa-public.pem"));
        assert!(Auth::from_config(&c).unwrap_err().contains("not a JWK set"));
        let d = Auth::refuse_all().check("a", Some(DEFAULT_AUTH_TOKEN), NOW);
        assert_eq!(refused(d).0, 503);
    }

    #[test]
    fn reasons_never_hold_the_token() {
        let auth = hs_auth();
        let t = hs(a_store(NOW + 60));
        let (_, reason) = refused(auth.check("zzz", Some(&t), NOW));
        assert!(!reason.contains(&t) && !reason.contains(SECRET));
    }
}
