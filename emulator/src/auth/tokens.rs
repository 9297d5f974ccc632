//! Service-account tokens the emulator issues and later recognises: opaque
//! random strings (not JWTs) looked up in memory, each bound to one
//! ServiceAccount (namespace, name and uid), its audiences and an expiry.

use std::collections::HashMap;
use std::time::SystemTime;

use base64::Engine as _;

/// Random bytes in a token (256 bits).
const TOKEN_BYTES: usize = 32;

/// What a token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub namespace: String,
    pub service_account: String,
    /// The ServiceAccount's uid at issue: a recreated account of the same
    /// name does not inherit the old one's tokens.
    pub uid: String,
    pub audiences: Vec<String>,
    pub expires_at: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read random bytes for a token: {0}")]
    Random(getrandom::Error),
}

/// The tokens issued so far (expired ones are dropped as new ones come).
#[derive(Debug, Default)]
pub struct TokenStore {
    grants: HashMap<String, TokenGrant>,
}

impl TokenStore {
    /// Issues a new token for `grant`.
    pub fn issue(&mut self, grant: TokenGrant) -> Result<String, TokenError> {
        let now = SystemTime::now();
        self.grants.retain(|_, g| g.expires_at > now);
        let token = random_token()?;
        self.grants.insert(token.clone(), grant);
        Ok(token)
    }

    /// The grant behind a token that has not expired at `now`.
    pub fn lookup(&self, token: &str, now: SystemTime) -> Option<&TokenGrant> {
        self.grants.get(token).filter(|g| g.expires_at > now)
    }
}

/// A fresh unguessable token (URL-safe base64).
pub fn random_token() -> Result<String, TokenError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::getrandom(&mut bytes).map_err(TokenError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn grant(expires_in: Duration) -> TokenGrant {
        TokenGrant {
            namespace: "ns".into(),
            service_account: "sa".into(),
            uid: "u1".into(),
            audiences: vec!["api".into()],
            expires_at: SystemTime::now() + expires_in,
        }
    }

    #[test]
    fn issued_tokens_are_distinct_and_found_until_they_expire() {
        let mut store = TokenStore::default();
        let first = store.issue(grant(Duration::from_secs(60))).unwrap();
        let second = store.issue(grant(Duration::from_secs(60))).unwrap();
        assert_ne!(first, second);
        let now = SystemTime::now();
        assert_eq!(
            store.lookup(&first, now).map(|g| g.uid.as_str()),
            Some("u1")
        );
        assert!(store
            .lookup(&first, now + Duration::from_secs(61))
            .is_none());
        assert!(store.lookup("not-a-token", now).is_none());
    }
}
