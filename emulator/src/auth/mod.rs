//! Who is asking and whether they may: bearer-token authentication (the
//! emulator's admin token, service-account tokens it issued) and the RBAC
//! authorizer over the Roles and bindings in the store.

mod access_review;
mod attributes;
mod default_roles;
mod forbidden;
mod policy;
mod rbac;
mod token_request;
mod tokens;

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

pub use access_review::review_access;
pub use attributes::RequestAttributes;
pub use token_request::issue_token;
pub use tokens::TokenError;

use super::error::ApiError;
use super::resources::ResourceInfo;
use super::state::State;
use tokens::{TokenGrant, TokenStore};

/// The user the admin kubeconfig authenticates as.
pub const ADMIN_USER: &str = "kube-emulator-admin";
/// The group the real server lets do anything without consulting RBAC.
const MASTERS_GROUP: &str = "system:masters";
/// The audience the API server accepts tokens for (its default).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// An authenticated (or anonymous) user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub groups: Vec<String>,
}

impl Identity {
    pub fn admin() -> Self {
        Self {
            name: ADMIN_USER.into(),
            groups: vec![MASTERS_GROUP.into(), "system:authenticated".into()],
        }
    }

    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: service_account_user(namespace, name),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    pub fn anonymous() -> Self {
        Self {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }
}

/// `system:serviceaccount:<namespace>:<name>`
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Turns `Authorization` headers into identities.
#[derive(Debug)]
pub struct Authenticator {
    admin_token: String,
    tokens: Mutex<TokenStore>,
    /// Whether requests without credentials are `system:anonymous` (else
    /// they act as the admin, for tests that never pass a token).
    require_authentication: bool,
    /// The shortest lifetime a TokenRequest may ask for.
    pub min_token_expiration: Duration,
}

impl Authenticator {
    pub fn new(
        require_authentication: bool,
        min_token_expiration: Duration,
    ) -> Result<Self, TokenError> {
        Ok(Self {
            admin_token: tokens::random_token()?,
            tokens: Mutex::new(TokenStore::default()),
            require_authentication,
            min_token_expiration,
        })
    }

    /// The token in the admin kubeconfig.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Who sent a request with this `Authorization` header value.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        state: &State,
    ) -> Result<Identity, ApiError> {
        let token = authorization.and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        let Some(token) = token else {
            return Ok(if self.require_authentication {
                Identity::anonymous()
            } else {
                Identity::admin()
            });
        };
        if token == self.admin_token {
            return Ok(Identity::admin());
        }
        let tokens = self
            .tokens
            .lock()
            .map_err(|_| ApiError::internal("token store lock poisoned"))?;
        let grant = tokens
            .lookup(token, SystemTime::now())
            .filter(|grant| grant.audiences.iter().any(|a| a == API_AUDIENCE))
            .filter(|grant| {
                service_account_uid(state, &grant.namespace, &grant.service_account).as_deref()
                    == Some(grant.uid.as_str())
            })
            .ok_or(ApiError::Unauthorized)?;
        Ok(Identity::service_account(
            &grant.namespace,
            &grant.service_account,
        ))
    }

    fn issue(&self, grant: TokenGrant) -> Result<String, ApiError> {
        self.tokens
            .lock()
            .map_err(|_| ApiError::internal("token store lock poisoned"))?
            .issue(grant)
            .map_err(|e| ApiError::internal(e.to_string()))
    }
}

/// The uid of a stored ServiceAccount.
fn service_account_uid(state: &State, namespace: &str, name: &str) -> Option<String> {
    let key = state
        .registry
        .get("", "serviceaccounts")
        .map(ResourceInfo::key)?;
    let account = state.store.get(&key, namespace, name)?;
    Some(super::meta::meta_str(&account, "uid").to_string())
}

/// Allows the request or answers the real server's 403.
pub fn authorize(
    state: &State,
    user: &Identity,
    request: &RequestAttributes,
) -> Result<(), ApiError> {
    match decide(state, user, request) {
        rbac::Decision::Allow => Ok(()),
        rbac::Decision::Deny { reason } => Err(forbidden::forbidden(user, request, &reason)),
    }
}

/// The authorizers in the real server's order: `system:masters` first,
/// then RBAC.
fn decide(state: &State, user: &Identity, request: &RequestAttributes) -> rbac::Decision {
    if user.groups.iter().any(|g| g == MASTERS_GROUP) {
        return rbac::Decision::Allow;
    }
    let namespace = match request {
        RequestAttributes::Resource(r) => r.namespace.as_str(),
        RequestAttributes::NonResource { .. } => "",
    };
    rbac::authorize(&state.rbac_policy(namespace), user, request)
}
