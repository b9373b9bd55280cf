//! Operator mode (decentralized JWT authentication, as nats-server's `operator` +
//! `resolver: MEMORY` + `resolver_preload`): the server trusts an operator's key; each
//! account is a JWT the operator signed; a client's CONNECT carries a user JWT signed by
//! its account (or one of the account's signing keys) and `sig`, the user's signature
//! of INFO's `nonce`.
//!
//! A JWT is `base64url(header).base64url(claims).base64url(signature)` with header
//! `{"typ":"JWT","alg":"ed25519-nkey"}`, the signature an ed25519 signature of the first
//! two parts (as text) by the key named in the claims' `iss`. Claims used: `iss`, `sub`
//! and under `nats`: `type` (`operator`/`account`/`user`), `signing_keys`,
//! `issuer_account`, and the user's `pub`/`sub` `{allow, deny}` and `resp`.
//!
//! Not checked (weir's core has no wall clock; noted in README's limits): `exp`/`nbf`
//! expiry, revocations, and account limits; exports and imports are not served.

use super::auth::{Identity, Permissions, ResponsePerm, SubjectPerm, decode_nkey, decode_sig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a JWT was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts with JSON header and claims.
    #[error("malformed JWT: {0}")]
    Malformed(&'static str),
    /// The header's `alg` is not an ed25519 nkey algorithm.
    #[error("unsupported JWT algorithm {0:?}")]
    Algorithm(String),
    /// The signature does not verify with the issuer's key.
    #[error("JWT signature does not verify with issuer {0}")]
    Signature(String),
    /// The claims' `nats.type` is not the expected one.
    #[error("expected a {expected} JWT, got {got:?}")]
    Type {
        /// What was expected.
        expected: &'static str,
        /// What the claims say.
        got: String,
    },
    /// The issuer is not trusted for this JWT.
    #[error("JWT issuer {0} is not trusted")]
    Issuer(String),
}

/// A JWT whose signature verified with its `iss` key.
#[derive(Clone, Debug, PartialEq)]
pub struct Claims {
    /// Issuer's public key.
    pub iss: String,
    /// Subject's public key.
    pub sub: String,
    /// `name`, if any.
    pub name: String,
    /// The `nats` object (type-specific claims).
    pub nats: Value,
}

impl Claims {
    fn kind(&self) -> &str {
        self.nats.get("type").and_then(Value::as_str).unwrap_or("")
    }

    fn expect(self, kind: &'static str) -> Result<Claims, JwtError> {
        if self.kind() == kind { Ok(self) } else { Err(JwtError::Type { expected: kind, got: self.kind().to_owned() }) }
    }

    /// `nats.signing_keys`: strings, or objects with a `key` (scoped signing keys).
    fn signing_keys(&self) -> Vec<String> {
        let Some(keys) = self.nats.get("signing_keys").and_then(Value::as_array) else { return Vec::new() };
        keys.iter()
            .filter_map(|k| k.as_str().or_else(|| k.get("key").and_then(Value::as_str)))
            .map(str::to_owned)
            .collect()
    }
}

/// Decode `jwt` and verify its signature with the key in its own `iss` claim.
pub fn decode(jwt: &str) -> Result<Claims, JwtError> {
    let jwt = jwt.trim();
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed("not three parts"));
    };
    let json = |p: &str| -> Result<Value, JwtError> {
        let bytes = decode_sig(p).ok_or(JwtError::Malformed("bad base64"))?;
        serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed("bad JSON"))
    };
    let header = json(h)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !alg.eq_ignore_ascii_case("ed25519-nkey") && !alg.eq_ignore_ascii_case("ed25519") {
        return Err(JwtError::Algorithm(alg.to_owned()));
    }
    let claims = json(c)?;
    let field = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let iss = field("iss");
    let sig = decode_sig(s).ok_or(JwtError::Malformed("bad signature encoding"))?;
    let signed = &jwt[..h.len() + 1 + c.len()];
    let kp = nkeys::KeyPair::from_public_key(&iss).map_err(|_| JwtError::Signature(iss.clone()))?;
    kp.verify(signed.as_bytes(), &sig).map_err(|_| JwtError::Signature(iss.clone()))?;
    Ok(Claims { sub: field("sub"), name: field("name"), nats: claims.get("nats").cloned().unwrap_or(Value::Null), iss })
}

/// One trusted account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedAccount {
    /// Its public key (`A...`), which is also its NATS account name, as in nats-server.
    pub key: String,
    /// Its `name` claim.
    pub name: String,
    /// Keys that may sign its users besides its own.
    pub signing_keys: Vec<String>,
}

/// What operator mode trusts: the operator (and its signing keys) and the preloaded accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trust {
    /// The operator's public key (`O...`).
    pub operator: String,
    /// Keys that may sign accounts besides the operator's own.
    pub signing_keys: Vec<String>,
    /// Preloaded accounts by public key.
    pub accounts: BTreeMap<String, TrustedAccount>,
}

impl Trust {
    /// Trust `operator_jwt` (self-signed) and the `preload` account JWTs (key → JWT),
    /// each of which must be signed by the operator or one of its signing keys and have
    /// the key it is listed under as its subject.
    pub fn new(operator_jwt: &str, preload: &[(String, String)]) -> Result<Trust, String> {
        let op = decode(operator_jwt).and_then(|c| c.expect("operator")).map_err(|e| format!("operator: {e}"))?;
        let mut signing_keys = op.signing_keys();
        if op.iss != op.sub && !signing_keys.contains(&op.iss) {
            return Err(format!("operator: JWT issuer {} is not the operator", op.iss));
        }
        signing_keys.retain(|k| *k != op.sub);
        let mut trust = Trust { operator: op.sub, signing_keys, accounts: BTreeMap::new() };
        for (key, jwt) in preload {
            let acc = decode(jwt).and_then(|c| c.expect("account")).map_err(|e| format!("account {key}: {e}"))?;
            if acc.sub != *key {
                return Err(format!("account {key}: the JWT's subject is {}", acc.sub));
            }
            if acc.iss != trust.operator && !trust.signing_keys.contains(&acc.iss) {
                return Err(format!("account {key}: {}", JwtError::Issuer(acc.iss.clone())));
            }
            let signing_keys = acc.signing_keys();
            trust.accounts.insert(key.clone(), TrustedAccount { key: key.clone(), name: acc.name, signing_keys });
        }
        Ok(trust)
    }

    /// Check a CONNECT's user `jwt` and `sig` (over `nonce`): the connection's identity.
    pub fn check(&self, jwt: &str, sig: &str, nonce: &str) -> Result<Identity, String> {
        let user = decode(jwt).and_then(|c| c.expect("user")).map_err(|e| e.to_string())?;
        let account_key = user.nats.get("issuer_account").and_then(Value::as_str).unwrap_or(&user.iss).to_owned();
        let account = self.accounts.get(&account_key).ok_or_else(|| format!("account {account_key} is not known"))?;
        if user.iss != account.key && !account.signing_keys.contains(&user.iss) {
            return Err(JwtError::Issuer(user.iss).to_string());
        }
        if decode_nkey(&user.sub).is_none() || !super::auth::verify_nkey(&user.sub, sig, nonce) {
            return Err("the nonce signature does not verify with the user's key".into());
        }
        Ok(Identity { account: account.key.clone(), permissions: user_permissions(&user.nats), user: user.sub.clone() })
    }
}

/// A user JWT's `pub`/`sub`/`resp` claims as [`Permissions`] (`None` when all are empty).
fn user_permissions(nats: &Value) -> Option<Arc<Permissions>> {
    let list = |v: Option<&Value>| -> Option<Vec<String>> {
        let a = v?.as_array()?;
        Some(a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
    };
    let dir = |k: &str| -> Option<SubjectPerm> {
        let d = nats.get(k)?;
        let allow = list(d.get("allow")).filter(|a| !a.is_empty());
        let deny = list(d.get("deny")).unwrap_or_default();
        (allow.is_some() || !deny.is_empty()).then_some(SubjectPerm { allow, deny })
    };
    let resp = nats.get("resp").filter(|r| r.is_object()).map(|r| ResponsePerm {
        max_msgs: r.get("max").and_then(Value::as_u64).map_or(1, |m| m.clamp(1, u32::MAX as u64) as u32),
    });
    let p = Permissions { publish: dir("pub"), subscribe: dir("sub"), allow_responses: resp };
    (p != Permissions::default()).then(|| Arc::new(p.normalized()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use data_encoding::BASE64URL_NOPAD;

    fn kp(kind: nkeys::KeyPairType, b: u8) -> nkeys::KeyPair {
        nkeys::KeyPair::new_from_raw(kind, [b; 32]).unwrap()
    }

    fn sign(issuer: &nkeys::KeyPair, sub: &str, nats: Value) -> String {
        let h = BASE64URL_NOPAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
        let claims = serde_json::json!({ "iss": issuer.public_key(), "sub": sub, "name": "n", "nats": nats });
        let c = BASE64URL_NOPAD.encode(claims.to_string().as_bytes());
        let s = BASE64URL_NOPAD.encode(&issuer.sign(format!("{h}.{c}").as_bytes()).unwrap());
        format!("{h}.{c}.{s}")
    }

    #[test]
    fn a_chain_of_operator_account_and_user_is_trusted_and_a_broken_one_is_not() {
        use nkeys::KeyPairType::{Account, Operator, User};
        let op = kp(Operator, 1);
        let acc = kp(Account, 2);
        let acc_signer = kp(Account, 3);
        let user = kp(User, 4);
        let op_jwt = sign(&op, &op.public_key(), serde_json::json!({"type": "operator"}));
        let acc_jwt = sign(
            &op,
            &acc.public_key(),
            serde_json::json!({"type": "account", "signing_keys": [acc_signer.public_key()]}),
        );
        let trust = Trust::new(&op_jwt, &[(acc.public_key(), acc_jwt.clone())]).unwrap();
        let nonce = "abc";
        let sig = BASE64URL_NOPAD.encode(&user.sign(nonce.as_bytes()).unwrap());
        let user_jwt = sign(&acc, &user.public_key(), serde_json::json!({"type": "user", "pub": {}, "sub": {}}));
        let id = trust.check(&user_jwt, &sig, nonce).unwrap();
        assert_eq!((id.account.as_str(), id.permissions), (acc.public_key().as_str(), None));
        // Signed by the account's signing key, with permissions.
        let scoped = sign(
            &acc_signer,
            &user.public_key(),
            serde_json::json!({"type": "user", "issuer_account": acc.public_key(), "pub": {"allow": ["a.>"]}}),
        );
        let p = trust.check(&scoped, &sig, nonce).unwrap().permissions.unwrap();
        assert!(p.can_publish("a.b") && !p.can_publish("b"));
        // The wrong nonce, a user of an unknown account, a tampered JWT, a wrong type.
        assert!(trust.check(&user_jwt, &sig, "other").is_err());
        let stranger = kp(Account, 9);
        let foreign = sign(&stranger, &user.public_key(), serde_json::json!({"type": "user"}));
        assert!(trust.check(&foreign, &sig, nonce).unwrap_err().contains("not known"));
        let mut tampered = user_jwt.clone();
        tampered.insert(tampered.find('.').unwrap() + 5, 'x');
        assert!(trust.check(&tampered, &sig, nonce).is_err());
        assert!(trust.check(&acc_jwt, &sig, nonce).unwrap_err().contains("expected a user JWT"));
        // An account the operator did not sign is refused at startup.
        let rogue = sign(&stranger, &stranger.public_key(), serde_json::json!({"type": "account"}));
        assert!(Trust::new(&op_jwt, &[(stranger.public_key(), rogue)]).unwrap_err().contains("not trusted"));
    }
}
