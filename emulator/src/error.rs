//! Errors answered to API clients, rendered as `meta.k8s.io/v1` `Status` objects
//! exactly the way the real API server shapes them, because clients (kube-rs,
//! client-go/kubectl) branch on `code` and `reason`.

use serde_json::{json, Value};

/// A field-level cause attached to `Invalid` (422) and apply-conflict (409) errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// Machine-readable reason, e.g. `FieldValueRequired`, `FieldManagerConflict`.
    pub reason: String,
    pub message: String,
    /// Dotted field path, e.g. `spec.ports`.
    pub field: String,
}

impl Cause {
    pub fn new(
        reason: impl Into<String>,
        message: impl Into<String>,
        field: impl Into<String>,
    ) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
            field: field.into(),
        }
    }
}

/// Every way a request can fail; each maps to one HTTP code and `Status.reason`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { message: String },
    #[error("{message}")]
    NotFound {
        message: String,
        kind: String,
        name: String,
    },
    #[error("{message}")]
    AlreadyExists {
        message: String,
        kind: String,
        name: String,
    },
    /// Optimistic-concurrency and precondition failures, and apply conflicts.
    #[error("{message}")]
    Conflict {
        message: String,
        kind: String,
        name: String,
        causes: Vec<Cause>,
    },
    #[error("{message}")]
    Gone { message: String },
    #[error("{message}")]
    Invalid {
        message: String,
        kind: String,
        name: String,
        causes: Vec<Cause>,
    },
    #[error("{message}")]
    MethodNotAllowed { message: String },
    #[error("{message}")]
    NotAcceptable { message: String },
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    /// No or a bad credential; the real server says only `Unauthorized`.
    #[error("Unauthorized")]
    Unauthorized,
    /// `group` is the API group of the resource (empty for core).
    #[error("{message}")]
    Forbidden {
        message: String,
        group: String,
        kind: String,
        name: String,
    },
    #[error("{message}")]
    Internal { message: String },
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
        }
    }

    /// `<resource> "<name>" not found`, the real server's wording.
    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::NotFound {
            message: format!("{resource} \"{name}\" not found"),
            kind: resource.to_string(),
            name: name.to_string(),
        }
    }

    /// A path that names no known resource.
    pub fn no_such_path() -> Self {
        Self::NotFound {
            message: "the server could not find the requested resource".to_string(),
            kind: String::new(),
            name: String::new(),
        }
    }

    pub fn already_exists(resource: &str, name: &str) -> Self {
        Self::AlreadyExists {
            message: format!("{resource} \"{name}\" already exists"),
            kind: resource.to_string(),
            name: name.to_string(),
        }
    }

    /// The stale-write conflict clients retry on.
    pub fn stale(resource: &str, name: &str) -> Self {
        Self::Conflict {
            message: format!(
                "Operation cannot be fulfilled on {resource} \"{name}\": the object has been \
                 modified; please apply your changes to the latest version and try again"
            ),
            kind: resource.to_string(),
            name: name.to_string(),
            causes: Vec::new(),
        }
    }

    pub fn precondition_failed(resource: &str, name: &str, detail: &str) -> Self {
        Self::Conflict {
            message: format!("Operation cannot be fulfilled on {resource} \"{name}\": {detail}"),
            kind: resource.to_string(),
            name: name.to_string(),
            causes: Vec::new(),
        }
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::Gone {
            message: message.into(),
        }
    }

    /// `<Kind> "<name>" is invalid: <field>: <detail>, ...`
    pub fn invalid(kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let details: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let message = match details.as_slice() {
            [one] => format!("{kind} \"{name}\" is invalid: {one}"),
            many => format!("{kind} \"{name}\" is invalid: [{}]", many.join(", ")),
        };
        Self::Invalid {
            message,
            kind: kind.to_string(),
            name: name.to_string(),
            causes,
        }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::MethodNotAllowed {
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal {
            message: message.into(),
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            Self::BadRequest { .. } => 400,
            Self::Unauthorized => 401,
            Self::Forbidden { .. } => 403,
            Self::NotFound { .. } => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::NotAcceptable { .. } => 406,
            Self::AlreadyExists { .. } | Self::Conflict { .. } => 409,
            Self::Gone { .. } => 410,
            Self::UnsupportedMediaType { .. } => 415,
            Self::Invalid { .. } => 422,
            Self::Internal { .. } => 500,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "BadRequest",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden { .. } => "Forbidden",
            Self::NotFound { .. } => "NotFound",
            Self::MethodNotAllowed { .. } => "MethodNotAllowed",
            Self::NotAcceptable { .. } => "NotAcceptable",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict { .. } => "Conflict",
            Self::Gone { .. } => "Expired",
            Self::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            Self::Invalid { .. } => "Invalid",
            Self::Internal { .. } => "InternalError",
        }
    }

    /// The `Status` object sent as the response body (or inside a watch ERROR event).
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            Self::NotFound { kind, name, .. } | Self::AlreadyExists { kind, name, .. } => {
                Some(details(kind, name, &[]))
            }
            Self::Forbidden {
                group, kind, name, ..
            } => {
                let mut details = details(kind, name, &[]);
                if let (false, Some(map)) = (group.is_empty(), details.as_object_mut()) {
                    map.insert("group".into(), json!(group));
                }
                Some(details)
            }
            Self::Conflict {
                kind, name, causes, ..
            }
            | Self::Invalid {
                kind, name, causes, ..
            } => Some(details(kind, name, causes)),
            _ => None,
        };
        if let (Some(details), Some(map)) = (details, status.as_object_mut()) {
            map.insert("details".to_string(), details);
        }
        status
    }
}

fn details(kind: &str, name: &str, causes: &[Cause]) -> Value {
    let mut details = serde_json::Map::new();
    if !name.is_empty() {
        details.insert("name".into(), json!(name));
    }
    if !kind.is_empty() {
        details.insert("kind".into(), json!(kind));
    }
    if !causes.is_empty() {
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        details.insert("causes".into(), Value::Array(causes));
    }
    Value::Object(details)
}

/// Errors starting or configuring the emulator itself (not API responses).
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot write kubeconfig {path}: {source}")]
    WriteKubeconfig {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot build a Kubernetes client: {0}")]
    Client(String),
    #[error("cannot make the serving certificate: {0}")]
    Tls(String),
    #[error("cannot make the admin token: {0}")]
    Credentials(String),
}
