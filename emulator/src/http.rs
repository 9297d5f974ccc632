//! The HTTP front: turns a hyper request into an engine call and the result
//! into a JSON response (or a streaming watch).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};

use super::audit::{self, AuditEntry};
use super::auth::{self, Identity, RequestAttributes};
use super::discovery;
use super::engine::{DeleteOutcome, ListPage, Selectors, WriteOptions};
use super::error::ApiError;
use super::openapi;
use super::patch::PatchKind;
use super::protobuf;
use super::representation::{self, IncludeObject, Representation};
use super::routes::{route, Route};
use super::selectors::{FieldSelector, LabelSelector};
use super::server::Shared;
use super::state::Target;
use super::watch::{self, WatchRequest};

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Largest request body accepted (the real server's default is 3 MiB).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Serves one request; never fails (errors become Status responses).
pub async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let query = query_params(request.uri());
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let identity = authenticate(&shared, authorization.as_deref());
    let user = identity
        .as_ref()
        .map(|identity| identity.name.clone())
        .unwrap_or_default();
    let admitted = identity.and_then(|identity| {
        let attributes = RequestAttributes::resolve(method.as_str(), &path, &query);
        auth::authorize(&*shared.lock()?, &identity, &attributes).map(|()| identity)
    });
    let response = match admitted {
        Ok(identity) => match serve(shared.clone(), request, query, &identity).await {
            Ok(response) => response,
            Err(error) => error_response(&error),
        },
        Err(error) => error_response(&error),
    };
    if method != Method::GET && method != Method::HEAD {
        let leases = shared
            .lock()
            .map(|s| audit::leases(&s.store))
            .unwrap_or_default();
        if let Ok(mut log) = shared.audit.lock() {
            log.push(AuditEntry {
                at: std::time::SystemTime::now(),
                method: method.to_string(),
                path: path.clone(),
                user,
                user_agent,
                status: response.status().as_u16(),
                leases,
            });
        }
    }
    tracing::debug!(%method, %path, status = response.status().as_u16(), "kube-emulator request");
    Ok(response)
}

/// Who sent the request (401 for a bad token).
fn authenticate(shared: &Shared, authorization: Option<&str>) -> Result<Identity, ApiError> {
    shared.auth.authenticate(authorization, &*shared.lock()?)
}

fn query_params(uri: &http::Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The parts of a request the handlers use, with the body read.
struct Call {
    method: Method,
    query: HashMap<String, String>,
    accept: Option<String>,
    content_type: String,
    user_agent: String,
    body: Bytes,
}

impl Call {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, key: &str) -> Option<bool> {
        self.param(key).map(|v| v == "true" || v == "1")
    }

    fn write_options(&self) -> WriteOptions {
        let explicit = self.param("fieldManager").map(str::to_string);
        // Like the real server: default manager is the User-Agent up to '/'.
        let derived = self
            .user_agent
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string();
        WriteOptions {
            explicit_manager: explicit.is_some(),
            field_manager: explicit.unwrap_or(derived),
            dry_run: self.param("dryRun") == Some("All"),
            force: self.flag("force").unwrap_or(false),
        }
    }

    fn selectors(&self, target: &Target) -> Result<Selectors, ApiError> {
        let labels = LabelSelector::parse(self.param("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse(self.param("fieldSelector").unwrap_or(""), |p| {
            target.info.selects_on(p)
        })?;
        Ok(Selectors { labels, fields })
    }

    /// Parses the body as JSON, YAML or (for a few kinds) protobuf, by Content-Type.
    fn json_body(&self) -> Result<Value, ApiError> {
        if self.content_type.contains("protobuf") {
            return protobuf::decode(&self.body);
        }
        if self.content_type.contains("cbor") {
            return Err(ApiError::UnsupportedMediaType {
                message: format!(
                    "the kube emulator decodes JSON, YAML and some protobuf, not {}",
                    self.content_type
                ),
            });
        }
        if self.content_type.contains("yaml") {
            serde_yaml::from_slice(&self.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        } else {
            serde_json::from_slice(&self.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))
        }
    }
}

async fn serve(
    shared: Arc<Shared>,
    request: Request<Incoming>,
    query: HashMap<String, String>,
    identity: &Identity,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = request.into_parts();
    let header_text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?
        .to_bytes();
    let call = Call {
        method: parts.method.clone(),
        query,
        accept: header_text(header::ACCEPT),
        content_type: header_text(header::CONTENT_TYPE).unwrap_or_default(),
        user_agent: header_text(header::USER_AGENT).unwrap_or_default(),
        body,
    };
    let route = {
        let state = shared.lock()?;
        route(parts.uri.path(), &state.registry)?
    };
    match route {
        Route::Resource {
            target,
            legacy_watch,
        } => serve_resource(&shared, &call, *target, legacy_watch),
        Route::SelfSubjectAccessReview if call.method == Method::POST => {
            let review = auth::review_access(&*shared.lock()?, identity, &call.json_body()?)?;
            Ok(json_response(StatusCode::CREATED, &review))
        }
        discovery_route => {
            if call.method != Method::GET {
                return Err(ApiError::method_not_allowed(format!(
                    "the server does not allow this method on the requested resource ({})",
                    call.method
                )));
            }
            serve_discovery(&shared, &call, discovery_route)
        }
    }
}

fn serve_discovery(shared: &Shared, call: &Call, route: Route) -> Result<Response<Body>, ApiError> {
    let state = shared.lock()?;
    let registry = &state.registry;
    let wants_aggregated = call.accept.as_deref().is_some_and(|a| {
        a.split(',').any(|r| {
            r.contains("as=APIGroupDiscoveryList") && r.contains("v=v2") && !r.contains("v=v2beta1")
        })
    });
    let document = match route {
        Route::Version => discovery::version(),
        Route::Health => return Ok(text_response(StatusCode::OK, "ok")),
        Route::OpenApiRoot => openapi::root(registry, state.store.current_rv()),
        Route::OpenApiGroupVersion { group, version } => {
            openapi::group_version(registry, &group, &version).ok_or_else(ApiError::no_such_path)?
        }
        Route::CoreVersions if wants_aggregated => {
            return Ok(aggregated_response(discovery::aggregated(registry, true)))
        }
        Route::Groups if wants_aggregated => {
            return Ok(aggregated_response(discovery::aggregated(registry, false)))
        }
        Route::CoreVersions => discovery::core_versions(),
        Route::Groups => discovery::group_list(registry),
        Route::Group(group) => {
            discovery::group(registry, &group).ok_or_else(ApiError::no_such_path)?
        }
        Route::ResourceList { group, version } => {
            discovery::resource_list(registry, &group, &version)
                .ok_or_else(ApiError::no_such_path)?
        }
        Route::Resource { .. } | Route::SelfSubjectAccessReview => {
            return Err(ApiError::no_such_path())
        }
    };
    Ok(json_response(StatusCode::OK, &document))
}

fn serve_resource(
    shared: &Arc<Shared>,
    call: &Call,
    target: Target,
    legacy_watch: bool,
) -> Result<Response<Body>, ApiError> {
    if target.subresource.as_deref() == Some("token") {
        return serve_token_request(shared, call, &target);
    }
    let representation = representation::negotiate(call.accept.as_deref())?;
    let include = IncludeObject::parse(call.param("includeObject"));
    let is_watch = legacy_watch || call.flag("watch").unwrap_or(false);
    let has_name = target.name.is_some();
    match call.method.clone() {
        Method::GET if is_watch => start_watch(shared, call, target, representation, include),
        Method::GET if has_name => {
            let object = shared.lock()?.get(&target)?;
            Ok(render_object(&target, object, &representation, include))
        }
        Method::GET => {
            let selectors = call.selectors(&target)?;
            let limit = call.param("limit").and_then(|l| l.parse().ok());
            let page = shared
                .lock()?
                .list(&target, &selectors, limit, call.param("continue"))?;
            Ok(render_list(&target, page, &representation, include))
        }
        Method::POST if !has_name => {
            let body = call.json_body()?;
            let created =
                shared.write(|state| state.create(&target, body, &call.write_options()))?;
            Ok(render_with(
                StatusCode::CREATED,
                &target,
                created,
                &representation,
                include,
            ))
        }
        Method::PUT if has_name => {
            let body = call.json_body()?;
            let updated =
                shared.write(|state| state.update(&target, body, &call.write_options()))?;
            Ok(render_object(&target, updated, &representation, include))
        }
        Method::PATCH if has_name => {
            let kind = PatchKind::from_content_type(&call.content_type)?;
            let options = call.write_options();
            let (patched, created) =
                shared.write(|state| state.patch(&target, kind, &call.body, &options))?;
            // An apply that created the object answers 201, as the real server does.
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(render_with(
                status,
                &target,
                patched,
                &representation,
                include,
            ))
        }
        Method::DELETE => {
            let mut options = if call.body.is_empty() {
                json!({})
            } else {
                call.json_body()?
            };
            // The query parameter stands in for the body's field.
            if let Some(grace) = call.param("gracePeriodSeconds") {
                let grace: i64 = grace.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "gracePeriodSeconds must be an integer, not {grace:?}"
                    ))
                })?;
                if let Some(map) = options.as_object_mut() {
                    map.entry("gracePeriodSeconds").or_insert(json!(grace));
                }
            }
            let dry_run = call.param("dryRun") == Some("All")
                || options
                    .get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|d| d.iter().any(|v| v == "All"));
            if has_name {
                let outcome = shared.write(|state| state.delete(&target, &options, dry_run))?;
                Ok(match outcome {
                    DeleteOutcome::Deleted(object) => {
                        json_response(StatusCode::OK, &deleted_status(&target, &object))
                    }
                    DeleteOutcome::Pending(object) => {
                        render_object(&target, object, &representation, include)
                    }
                })
            } else {
                let selectors = call.selectors(&target)?;
                let page = shared.write(|state| {
                    state.delete_collection(&target, &selectors, &options, dry_run)
                })?;
                Ok(render_list(&target, page, &representation, include))
            }
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            call.method
        ))),
    }
}

/// `POST .../serviceaccounts/<name>/token`: a TokenRequest.
fn serve_token_request(
    shared: &Shared,
    call: &Call,
    target: &Target,
) -> Result<Response<Body>, ApiError> {
    let (Some(namespace), Some(name), true) =
        (&target.namespace, &target.name, call.method == Method::POST)
    else {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            call.method
        )));
    };
    let body = call.json_body()?;
    let answer = auth::issue_token(&shared.auth, &*shared.lock()?, namespace, name, &body)?;
    Ok(json_response(StatusCode::CREATED, &answer))
}

fn start_watch(
    shared: &Arc<Shared>,
    call: &Call,
    target: Target,
    representation: Representation,
    include: IncludeObject,
) -> Result<Response<Body>, ApiError> {
    let mut selectors = call.selectors(&target)?;
    if let Some(name) = target.name.clone() {
        // `/watch/.../<name>` watches one object.
        selectors.fields = FieldSelector::parse(&format!("metadata.name={name}"), |_| true)?;
    }
    let timeout = call
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(shared.config.default_watch_timeout);
    let mut target = target;
    target.name = None;
    let request = WatchRequest {
        target,
        selectors,
        resource_version: call.param("resourceVersion").unwrap_or("").to_string(),
        send_initial_events: call.flag("sendInitialEvents"),
        bookmarks: call.flag("allowWatchBookmarks").unwrap_or(false),
        timeout,
        representation,
        include_object: include,
    };
    let receiver = watch::start(shared.clone(), request)?;
    let stream = futures::stream::unfold(receiver, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    let body = BodyExt::boxed_unsync(StreamBody::new(stream));
    response_with(StatusCode::OK, "application/json", body)
}

fn render_object(
    target: &Target,
    object: Value,
    representation: &Representation,
    include: IncludeObject,
) -> Response<Body> {
    render_with(StatusCode::OK, target, object, representation, include)
}

fn render_with(
    status: StatusCode,
    target: &Target,
    object: Value,
    representation: &Representation,
    include: IncludeObject,
) -> Response<Body> {
    let document = match representation {
        Representation::Full => object,
        Representation::Metadata => representation::partial_metadata(&object),
        Representation::Table(version) => {
            let rv = object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|rv| rv.parse().ok());
            representation::table(&target.info, &[object], include, version, rv, true)
        }
    };
    json_response(status, &document)
}

fn render_list(
    target: &Target,
    page: ListPage,
    representation: &Representation,
    include: IncludeObject,
) -> Response<Body> {
    let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = page.remaining {
        metadata["remainingItemCount"] = json!(remaining);
    }
    let document = match representation {
        Representation::Full => json!({
            "kind": target.info.list_kind(),
            "apiVersion": target.api_version(),
            "metadata": metadata,
            "items": page.items,
        }),
        Representation::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": page.items.iter().map(representation::partial_metadata).collect::<Vec<_>>(),
        }),
        Representation::Table(version) => {
            let mut table = representation::table(
                &target.info,
                &page.items,
                include,
                version,
                Some(page.resource_version),
                true,
            );
            table["metadata"] = metadata;
            table
        }
    };
    json_response(StatusCode::OK, &document)
}

fn deleted_status(target: &Target, object: &Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": super::meta::name(object),
            "group": target.info.group,
            "kind": target.info.plural,
            "uid": super::meta::meta_str(object, "uid"),
        },
    })
}

fn aggregated_response(document: Value) -> Response<Body> {
    let body = full(document.to_string());
    response_with(StatusCode::OK, discovery::AGGREGATED_MEDIA_TYPE, body)
        .unwrap_or_else(|e| error_response(&e))
}

fn json_response(status: StatusCode, document: &Value) -> Response<Body> {
    response_with(status, "application/json", full(document.to_string()))
        .unwrap_or_else(|e| error_response(&e))
}

fn text_response(status: StatusCode, text: &str) -> Response<Body> {
    response_with(status, "text/plain", full(text.to_string()))
        .unwrap_or_else(|e| error_response(&e))
}

fn error_response(error: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(error.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(full(error.to_status().to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn response_with(
    status: StatusCode,
    content_type: &str,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .map_err(|e| ApiError::internal(format!("cannot build response: {e}")))
}

fn full(text: String) -> Body {
    BodyExt::boxed_unsync(Full::new(Bytes::from(text)))
}
