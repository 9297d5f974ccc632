//! Authentication and RBAC as the emulator enforces them, driven over real
//! HTTP with kube-rs clients holding tokens from the TokenRequest
//! subresource, and with kubectl holding the admin kubeconfig.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use gatehouse_kube_emulator::tools::kubectl_binary;
use gatehouse_kube_emulator::{Emulator, EmulatorConfig};
use http_body_util::BodyExt;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::core::Status;
use kube::Client;
use serde_json::{json, Value};

const NS_A: &str = "team-a";
const NS_B: &str = "team-b";
const ACCOUNT: &str = "gatehouse-controller";
const USER: &str = "system:serviceaccount:team-a:gatehouse-controller";

/// An emulator that lets tokens live as short as one second.
async fn emulator() -> Emulator {
    Emulator::start_with(
        "127.0.0.1:0",
        EmulatorConfig {
            min_token_expiration: Duration::from_secs(1),
            ..EmulatorConfig::default()
        },
    )
    .await
    .unwrap()
}

async fn create<K>(api: &Api<K>, object: Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(
        &PostParams::default(),
        &serde_json::from_value(object).unwrap(),
    )
    .await
    .unwrap()
}

/// Namespaces A and B, a Service `web` in each, and the account in A.
async fn seed(admin: &Client) {
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    for ns in [NS_A, NS_B] {
        create(&namespaces, json!({"metadata": {"name": ns}})).await;
        let services: Api<Service> = Api::namespaced(admin.clone(), ns);
        create(
            &services,
            json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .await;
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NS_A);
    create(&accounts, json!({"metadata": {"name": ACCOUNT}})).await;
}

/// A token for the account through TokenRequest.
async fn request_token(admin: &Client, account: &str, seconds: i64) -> Result<Value, kube::Error> {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NS_A);
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": seconds},
    });
    accounts
        .create_subresource("token", account, &PostParams::default(), &body)
        .await
}

/// `status.token` of a TokenRequest answer.
fn token_of(answer: &Value) -> String {
    answer["status"]["token"]
        .as_str()
        .expect("a token")
        .to_string()
}

async fn account_client(emulator: &Emulator, admin: &Client) -> Client {
    let answer = request_token(admin, ACCOUNT, 3600).await.unwrap();
    emulator.kube_client_with_token(&token_of(&answer)).unwrap()
}

/// A fresh emulator with the test namespaces and account, and its admin
/// client.
async fn seeded() -> (Emulator, Client) {
    let emulator = emulator().await;
    let admin = emulator.kube_client().unwrap();
    seed(&admin).await;
    (emulator, admin)
}

/// As [`seeded`], with a client authenticated as the test account.
async fn with_account() -> (Emulator, Client, Client) {
    let (emulator, admin) = seeded().await;
    let sa = account_client(&emulator, &admin).await;
    (emulator, admin, sa)
}

fn status_of(error: kube::Error) -> Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other}"),
    }
}

/// Asserts a 403 with exactly this message.
fn assert_forbidden<T>(result: Result<T, kube::Error>, message: &str) -> Status {
    let Err(error) = result else {
        panic!("the request should be forbidden: {message}")
    };
    let status = status_of(error);
    assert_eq!(status.code, 403, "{status:?}");
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(status.message, message);
    status
}

async fn grant(admin: &Client, namespace: &str, role: Value, binding: Value) {
    create(&Api::<Role>::namespaced(admin.clone(), namespace), role).await;
    create(
        &Api::<RoleBinding>::namespaced(admin.clone(), namespace),
        binding,
    )
    .await;
}

fn rule(verbs: &[&str], resources: &[&str]) -> Value {
    json!({"apiGroups": [""], "resources": resources, "verbs": verbs})
}

fn account_subject() -> Value {
    json!({"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NS_A})
}

fn binding(name: &str, kind: &str, role: &str, subjects: Value) -> Value {
    json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": subjects,
    })
}

/// Sends a raw GET with this bearer token (none: no header); answers the
/// status code and JSON body.
async fn raw_get(emulator: &Emulator, path: &str, token: Option<&str>) -> (u16, Value) {
    let client = Client::try_from(kube::Config::new(emulator.url().parse().unwrap())).unwrap();
    let mut request = http::Request::get(path);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = client
        .send(request.body(kube::client::Body::empty()).unwrap())
        .await
        .unwrap();
    let code = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
    (code, body)
}

#[tokio::test]
async fn a_role_binding_grants_exactly_its_rules_in_its_namespace() {
    let (_emulator, admin, sa) = with_account().await;
    let in_a: Api<Service> = Api::namespaced(sa.clone(), NS_A);
    let in_b: Api<Service> = Api::namespaced(sa.clone(), NS_B);
    let everywhere: Api<Service> = Api::all(sa.clone());

    let no_binding = assert_forbidden(
        in_a.get("web").await,
        &format!(
            "services \"web\" is forbidden: User \"{USER}\" cannot get resource \"services\" \
             in API group \"\" in the namespace \"team-a\""
        ),
    );
    let details = no_binding.details.unwrap();
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("web", "", "services")
    );

    grant(
        &admin,
        NS_A,
        json!({"metadata": {"name": "read-services"}, "rules": [rule(&["get", "list", "watch"], &["services"])]}),
        binding("read-services", "Role", "read-services", json!([account_subject()])),
    )
    .await;
    let listed = in_a.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(in_a.get("web").await.is_ok());
    assert_forbidden(
        in_b.list(&ListParams::default()).await,
        &format!(
            "services is forbidden: User \"{USER}\" cannot list resource \"services\" \
             in API group \"\" in the namespace \"team-b\""
        ),
    );
    assert_forbidden(
        everywhere.list(&ListParams::default()).await,
        &format!(
            "services is forbidden: User \"{USER}\" cannot list resource \"services\" \
             in API group \"\" at the cluster scope"
        ),
    );
    assert_forbidden(
        in_a.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await,
        &format!(
            "services \"web\" is forbidden: User \"{USER}\" cannot patch resource \"services\" \
             in API group \"\" in the namespace \"team-a\""
        ),
    );
    // The status subresource needs its own rule.
    let status_patch =
        Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}));
    assert_forbidden(
        in_a.patch_status("web", &PatchParams::default(), &status_patch).await,
        &format!(
            "services \"web\" is forbidden: User \"{USER}\" cannot patch resource \"services/status\" \
             in API group \"\" in the namespace \"team-a\""
        ),
    );
    grant(
        &admin,
        NS_A,
        json!({"metadata": {"name": "status-writer"}, "rules": [rule(&["patch"], &["services/status"])]}),
        binding("status-writer", "Role", "status-writer", json!([account_subject()])),
    )
    .await;
    in_a.patch_status("web", &PatchParams::default(), &status_patch)
        .await
        .unwrap();
    assert!(in_a
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}))
        )
        .await
        .is_err());
}

#[tokio::test]
async fn watches_are_authorised_when_they_start() {
    let (_emulator, admin, sa) = with_account().await;
    let in_a: Api<Service> = Api::namespaced(sa.clone(), NS_A);
    grant(
        &admin,
        NS_A,
        json!({"metadata": {"name": "list-only"}, "rules": [rule(&["list"], &["services"])]}),
        binding("list-only", "Role", "list-only", json!([account_subject()])),
    )
    .await;
    let refused = in_a.watch(&WatchParams::default(), "0").await;
    assert_forbidden(
        refused,
        &format!(
            "services is forbidden: User \"{USER}\" cannot watch resource \"services\" \
             in API group \"\" in the namespace \"team-a\""
        ),
    );
    create(
        &Api::<Role>::namespaced(admin.clone(), NS_A),
        json!({"metadata": {"name": "watcher"}, "rules": [rule(&["watch"], &["services"])]}),
    )
    .await;
    create(
        &Api::<RoleBinding>::namespaced(admin.clone(), NS_A),
        binding("watcher", "Role", "watcher", json!([account_subject()])),
    )
    .await;
    let rv = in_a
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = in_a
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    // Taking the grant away does not end a watch already running.
    Api::<RoleBinding>::namespaced(admin.clone(), NS_A)
        .delete("watcher", &DeleteParams::default())
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(admin.clone(), NS_A);
    create(
        &services,
        json!({"metadata": {"name": "second"}, "spec": {"ports": [{"port": 81}]}}),
    )
    .await;
    let event = tokio::time::timeout(Duration::from_secs(10), events.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(event, Some(kube::api::WatchEvent::Added(ref s)) if s.metadata.name.as_deref() == Some("second")),
        "{event:?}"
    );
    assert!(in_a.watch(&WatchParams::default(), &rv).await.is_err());
}

#[tokio::test]
async fn cluster_roles_grant_in_a_namespace_or_everywhere_and_resource_names_narrow_them() {
    let (_emulator, admin, sa) = with_account().await;
    let cluster_roles: Api<ClusterRole> = Api::all(admin.clone());
    create(
        &cluster_roles,
        json!({"metadata": {"name": "service-reader"}, "rules": [rule(&["get", "list"], &["services"])]}),
    )
    .await;
    // A RoleBinding to a ClusterRole grants it in the binding's namespace only.
    create(
        &Api::<RoleBinding>::namespaced(admin.clone(), NS_B),
        binding(
            "read-b",
            "ClusterRole",
            "service-reader",
            json!([account_subject()]),
        ),
    )
    .await;
    let in_a: Api<Service> = Api::namespaced(sa.clone(), NS_A);
    let in_b: Api<Service> = Api::namespaced(sa.clone(), NS_B);
    let everywhere: Api<Service> = Api::all(sa.clone());
    assert!(in_b.list(&ListParams::default()).await.is_ok());
    assert!(in_a.list(&ListParams::default()).await.is_err());
    assert!(everywhere.list(&ListParams::default()).await.is_err());
    // A ClusterRoleBinding grants it everywhere.
    create(
        &Api::<ClusterRoleBinding>::all(admin.clone()),
        binding(
            "read-all",
            "ClusterRole",
            "service-reader",
            json!([account_subject()]),
        ),
    )
    .await;
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert!(in_a.get("web").await.is_ok());

    // resourceNames: one ConfigMap by name, never the collection.
    let configmaps: Api<ConfigMap> = Api::namespaced(admin.clone(), NS_A);
    for name in ["leader", "other"] {
        create(&configmaps, json!({"metadata": {"name": name}})).await;
    }
    grant(
        &admin,
        NS_A,
        json!({"metadata": {"name": "leader-only"}, "rules": [{
            "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["leader"],
            "verbs": ["get", "list", "update"],
        }]}),
        binding(
            "leader-only",
            "Role",
            "leader-only",
            json!([account_subject()]),
        ),
    )
    .await;
    let sa_configmaps: Api<ConfigMap> = Api::namespaced(sa.clone(), NS_A);
    assert!(sa_configmaps.get("leader").await.is_ok());
    assert_forbidden(
        sa_configmaps.get("other").await,
        &format!(
            "configmaps \"other\" is forbidden: User \"{USER}\" cannot get resource \"configmaps\" \
             in API group \"\" in the namespace \"team-a\""
        ),
    );
    assert!(sa_configmaps.list(&ListParams::default()).await.is_err());
    // A list pinned to the name by a field selector is a request for that name.
    let pinned = sa_configmaps
        .list(&ListParams::default().fields("metadata.name=leader"))
        .await
        .unwrap();
    assert_eq!(pinned.items.len(), 1);
}

#[tokio::test]
async fn group_subjects_and_aggregated_cluster_roles() {
    let (_emulator, admin, sa) = with_account().await;
    let cluster_roles: Api<ClusterRole> = Api::all(admin.clone());
    create(
        &cluster_roles,
        json!({
            "metadata": {"name": "aggregate"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"gatehouse.dev/aggregate-to": "aggregate"}}]},
        }),
    )
    .await;
    create(
        &Api::<ClusterRoleBinding>::all(admin.clone()),
        binding(
            "aggregate",
            "ClusterRole",
            "aggregate",
            json!([{"kind": "Group", "name": "system:serviceaccounts:team-a", "apiGroup": "rbac.authorization.k8s.io"}]),
        ),
    )
    .await;
    let everywhere: Api<Service> = Api::all(sa.clone());
    assert!(everywhere.list(&ListParams::default()).await.is_err());
    create(
        &cluster_roles,
        json!({
            "metadata": {"name": "piece", "labels": {"gatehouse.dev/aggregate-to": "aggregate"}},
            "rules": [rule(&["list"], &["services"])],
        }),
    )
    .await;
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    // Without the label the piece no longer contributes.
    cluster_roles
        .patch(
            "piece",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"gatehouse.dev/aggregate-to": null}}})),
        )
        .await
        .unwrap();
    assert!(everywhere.list(&ListParams::default()).await.is_err());
}

#[tokio::test]
async fn bad_expired_and_orphaned_tokens_are_unauthorized() {
    let (emulator, admin) = seeded().await;
    let unauthorized = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Unauthorized", "reason": "Unauthorized", "code": 401,
    });
    assert_eq!(
        raw_get(&emulator, "/api/v1/namespaces", Some("garbage")).await,
        (401, unauthorized.clone())
    );

    // Expiry (this emulator allows short tokens; three seconds leave room
    // for a busy machine to use it once first).
    let short = token_of(&request_token(&admin, ACCOUNT, 3).await.unwrap());
    // The server set the expiry before this instant.
    let issued = std::time::Instant::now();
    assert_eq!(raw_get(&emulator, "/version", Some(&short)).await.0, 200);
    tokio::time::sleep(Duration::from_millis(3200).saturating_sub(issued.elapsed())).await;
    assert_eq!(
        raw_get(&emulator, "/version", Some(&short)).await,
        (401, unauthorized.clone())
    );

    // A deleted account's tokens stop working, also once it is recreated.
    let token = token_of(&request_token(&admin, ACCOUNT, 3600).await.unwrap());
    assert_eq!(raw_get(&emulator, "/api", Some(&token)).await.0, 200);
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NS_A);
    accounts
        .delete(ACCOUNT, &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        raw_get(&emulator, "/api", Some(&token)).await,
        (401, unauthorized.clone())
    );
    create(&accounts, json!({"metadata": {"name": ACCOUNT}})).await;
    assert_eq!(
        raw_get(&emulator, "/api", Some(&token)).await,
        (401, unauthorized)
    );
    let fresh = token_of(&request_token(&admin, ACCOUNT, 3600).await.unwrap());
    assert_eq!(raw_get(&emulator, "/api", Some(&fresh)).await.0, 200);

    // No token for an account that does not exist.
    let missing = status_of(request_token(&admin, "nobody", 3600).await.unwrap_err());
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (404, "serviceaccounts \"nobody\" not found")
    );
}

#[tokio::test]
async fn token_requests_default_and_validate_their_lifetime() {
    let emulator = Emulator::start("127.0.0.1:0").await.unwrap();
    let admin = emulator.kube_client().unwrap();
    seed(&admin).await;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NS_A);
    let answer: TokenRequest = accounts
        .create_subresource(
            "token",
            ACCOUNT,
            &PostParams::default(),
            &json!({"spec": {}}),
        )
        .await
        .unwrap();
    let spec = answer.spec.unwrap();
    assert_eq!(spec.expiration_seconds, Some(3600));
    assert_eq!(
        spec.audiences,
        Some(vec![gatehouse_kube_emulator::API_AUDIENCE.to_string()])
    );
    let status = answer.status.unwrap();
    let expires: jiff::Timestamp =
        serde_json::from_value(serde_json::to_value(&status.expiration_timestamp).unwrap())
            .unwrap();
    let left = expires.duration_since(jiff::Timestamp::now());
    assert!((3590.0..=3601.0).contains(&left.as_secs_f64()), "{left:?}");
    assert!(status.token.is_some_and(|t| t.len() >= 40));

    let too_short = status_of(request_token(&admin, ACCOUNT, 60).await.unwrap_err());
    assert_eq!(too_short.code, 422);
    assert_eq!(
        too_short.message,
        "TokenRequest.authentication.k8s.io \"gatehouse-controller\" is invalid: spec.expirationSeconds: \
         Invalid value: 60: may not specify a duration less than 10 minutes"
    );
    // A token for another audience does not authenticate to the API server.
    let elsewhere: Value = accounts
        .create_subresource(
            "token",
            ACCOUNT,
            &PostParams::default(),
            &json!({"spec": {"audiences": ["vault"]}}),
        )
        .await
        .unwrap();
    assert_eq!(
        raw_get(&emulator, "/api", Some(&token_of(&elsewhere)))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn the_audit_names_who_wrote() {
    let (emulator, admin, sa) = with_account().await;
    grant(
        &admin,
        NS_A,
        json!({"metadata": {"name": "cm-writer"}, "rules": [rule(&["create"], &["configmaps"])]}),
        binding("cm-writer", "Role", "cm-writer", json!([account_subject()])),
    )
    .await;
    create(
        &Api::<ConfigMap>::namespaced(sa.clone(), NS_A),
        json!({"metadata": {"name": "by-sa"}}),
    )
    .await;
    let refused = Api::<ConfigMap>::namespaced(sa.clone(), NS_B)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
        )
        .await;
    assert!(refused.is_err());
    let audit = emulator.audit();
    let by = |path: &str| {
        audit
            .iter()
            .filter(|e| e.path == path)
            .map(|e| (e.user.clone(), e.status))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by("/api/v1/namespaces/team-a/configmaps"),
        vec![(USER.to_string(), 201)]
    );
    assert_eq!(
        by("/api/v1/namespaces/team-b/configmaps"),
        vec![(USER.to_string(), 403)]
    );
    assert_eq!(
        by("/api/v1/namespaces"),
        vec![("kube-emulator-admin".to_string(), 201); 2]
    );
}

#[tokio::test]
async fn kubectl_with_the_admin_kubeconfig_does_everything_and_makes_tokens() {
    // HTTPS with anonymous requests refused: kubectl sends credentials only
    // over TLS, so this proves it authenticates with the admin token.
    let emulator = Emulator::start_with(
        "127.0.0.1:0",
        EmulatorConfig {
            serve_tls: true,
            require_authentication: true,
            ..EmulatorConfig::default()
        },
    )
    .await
    .unwrap();
    let admin = emulator.kube_client().unwrap();
    seed(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).unwrap();
    let kubectl = |args: Vec<String>| {
        let kubeconfig = kubeconfig.clone();
        async move {
            tokio::process::Command::new(kubectl_binary())
                .args(&args)
                .env("KUBECONFIG", &kubeconfig)
                .output()
                .await
                .expect("kubectl is needed (scripts/install-tools.sh)")
        }
    };
    let args = |text: &str| text.split(' ').map(str::to_string).collect::<Vec<_>>();
    let created = kubectl(args(
        "create configmap from-kubectl -n team-b --from-literal=a=b",
    ))
    .await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let deleted = kubectl(args("delete clusterrolebinding cluster-admin")).await;
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    let listed = kubectl(args("get services -A -o name")).await;
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 3);

    // `kubectl create token` goes through TokenRequest; that token is the account.
    let token = kubectl(args("create token gatehouse-controller -n team-a")).await;
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let as_account = |command: &str| {
        let mut list = args(command);
        list.extend(["--token".to_string(), token.clone()]);
        list
    };
    let refused = kubectl(as_account("get services -n team-a")).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(&format!(
            "Error from server (Forbidden): services is forbidden: User \"{USER}\" cannot list \
             resource \"services\" in API group \"\" in the namespace \"team-a\""
        )),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // `kubectl auth can-i` asks with a SelfSubjectAccessReview.
    let can_i =
        |output: std::process::Output| String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert_eq!(
        can_i(kubectl(as_account("auth can-i list services -n team-a")).await),
        "no"
    );
    assert_eq!(can_i(kubectl(args("auth can-i delete nodes")).await), "yes");
    grant(
        &admin,
        NS_A,
        json!({"metadata": {"name": "read-services"}, "rules": [rule(&["list"], &["services"])]}),
        binding(
            "read-services",
            "Role",
            "read-services",
            json!([account_subject()]),
        ),
    )
    .await;
    assert_eq!(
        can_i(kubectl(as_account("auth can-i list services -n team-a")).await),
        "yes"
    );
    assert_eq!(
        can_i(kubectl(as_account("auth can-i list services -n team-b")).await),
        "no"
    );
    let listed = kubectl(as_account("get services -n team-a -o name")).await;
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        "service/web"
    );
}

#[tokio::test]
async fn self_subject_access_reviews_answer_for_the_caller() {
    use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
    let (_emulator, admin, sa) = with_account().await;
    grant(
        &admin,
        NS_A,
        json!({"metadata": {"name": "status-writer"}, "rules": [rule(&["patch"], &["services/status"])]}),
        binding("status-writer", "Role", "status-writer", json!([account_subject()])),
    )
    .await;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(sa);
    let ask = |attributes: Value| {
        let reviews = reviews.clone();
        async move {
            let review: SelfSubjectAccessReview =
                serde_json::from_value(json!({"spec": attributes})).unwrap();
            reviews
                .create(&PostParams::default(), &review)
                .await
                .unwrap()
                .status
                .unwrap()
                .allowed
        }
    };
    let status_patch = |namespace: &str| {
        json!({"resourceAttributes": {
            "namespace": namespace, "verb": "patch", "resource": "services", "subresource": "status",
        }})
    };
    assert!(ask(status_patch(NS_A)).await);
    assert!(!ask(status_patch(NS_B)).await);
    assert!(ask(json!({"nonResourceAttributes": {"path": "/apis/apps", "verb": "get"}})).await);
    assert!(!ask(json!({"nonResourceAttributes": {"path": "/metrics", "verb": "get"}})).await);
}

#[tokio::test]
async fn required_authentication_makes_anonymous_requests_ask_rbac() {
    let emulator = Emulator::start_with(
        "127.0.0.1:0",
        EmulatorConfig {
            require_authentication: true,
            ..EmulatorConfig::default()
        },
    )
    .await
    .unwrap();
    let (code, body) = raw_get(&emulator, "/api/v1/namespaces/default/services", None).await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "services is forbidden: User \"system:anonymous\" cannot list resource \"services\" \
         in API group \"\" in the namespace \"default\""
    );
    assert_eq!(body["details"], json!({"kind": "services"}));
    let (code, version) = raw_get(&emulator, "/version", None).await;
    assert_eq!(code, 200);
    assert!(version["gitVersion"].is_string(), "{version}");
    assert_eq!(raw_get(&emulator, "/healthz", None).await.0, 200);
    // Discovery is for authenticated users only.
    let (code, body) = raw_get(&emulator, "/api", None).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (
            403,
            Some("forbidden: User \"system:anonymous\" cannot get path \"/api\"")
        )
    );
    // The admin client still does everything.
    let admin = emulator.kube_client().unwrap();
    let services: Api<Service> = Api::namespaced(admin, "default");
    let names: Vec<String> = services
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    assert_eq!(names, vec!["kubernetes".to_string()]);
}
