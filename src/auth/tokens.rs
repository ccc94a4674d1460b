use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Claims of an access token. `sid` is the refresh-token family (the login) it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub sid: Uuid,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs and verifies access tokens with the HS256 key generated at install.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub ttl_secs: u64,
}

impl TokenKeys {
    pub fn new(key: &[u8; 32], ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            ttl_secs,
        }
    }

    pub fn issue(
        &self,
        user_id: Uuid,
        family_id: Uuid,
        role: crate::model::UserRole,
    ) -> anyhow::Result<String> {
        let iat = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user_id,
            sid: family_id,
            role: role.to_string(),
            iat,
            exp: iat + self.ttl_secs as i64,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .context("signing access token")
    }

    /// The claims of a valid, unexpired token signed with our key; `None` otherwise.
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_only_with_their_key() {
        let keys = TokenKeys::new(&[1; 32], 60);
        let (user, family) = (Uuid::now_v7(), Uuid::now_v7());
        let token = keys
            .issue(user, family, crate::model::UserRole::Admin)
            .unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, family));
        assert!(TokenKeys::new(&[2; 32], 60).verify(&token).is_none());
        assert!(keys.verify("not.a.token").is_none());
    }
}
