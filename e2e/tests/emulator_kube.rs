//! The Kubernetes API emulator driven by kube-rs, through its real HTTP
//! interface. Every test runs against a fresh in-process emulator, or against
//! a real cluster when GATEHOUSE_E2E_KUBECONFIG names a kubeconfig (tests that
//! need emulator-only controls then skip themselves, saying so).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use gatehouse_e2e::emulator::{EmulatorConfig, TestApi};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::watcher::{self, watcher, Event};
use kube::{Client, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

const STEP: Duration = Duration::from_secs(10);

/// A unique namespace per test. On a real cluster it is deleted afterwards
/// (also after a panic); an emulator simply goes away with the test.
struct TestNamespace {
    name: String,
    on_real_cluster: bool,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if !self.on_real_cluster {
            return;
        }
        let name = self.name.clone();
        // Drop cannot await, and the test's runtime is blocked here: delete
        // from a helper thread with its own runtime and client.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let Ok(api) = TestApi::start().await else {
                    return;
                };
                let namespaces: Api<Namespace> = Api::all(api.client());
                let _ = tokio::time::timeout(
                    Duration::from_secs(10),
                    namespaces.delete(&name, &DeleteParams::default()),
                )
                .await;
            });
            Ok::<_, std::io::Error>(())
        })
        .join();
    }
}

async fn setup(prefix: &str) -> (TestApi, TestNamespace) {
    setup_with(prefix, EmulatorConfig::default()).await
}

async fn setup_with(prefix: &str, config: EmulatorConfig) -> (TestApi, TestNamespace) {
    let api = TestApi::start_with(config).await.expect("start the API");
    let name = format!("{prefix}-{}", std::process::id() % 100_000);
    let namespaces: Api<Namespace> = Api::all(api.client());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create the test namespace");
    let guard = TestNamespace {
        name,
        on_real_cluster: !api.is_emulated(),
    };
    (api, guard)
}

fn config_map(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

/// The next watcher event that is not part of an initial listing. The
/// ConfigMap a real cluster puts in every namespace is ignored.
async fn next_change<K, S>(stream: &mut S) -> Event<K>
where
    K: kube::Resource,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Unpin,
{
    loop {
        let event = tokio::time::timeout(STEP, stream.next())
            .await
            .expect("a watch event in time")
            .expect("the watch stream goes on")
            .expect("no watch error");
        match event {
            Event::Init | Event::InitApply(_) | Event::InitDone => continue,
            Event::Apply(ref o) | Event::Delete(ref o) if o.name_any() == ROOT_CA => continue,
            change => return change,
        }
    }
}

/// Created in every namespace by a real cluster's controllers.
const ROOT_CA: &str = "kube-root-ca.crt";

/// Waits until the watcher has finished its initial listing.
async fn initial_list_done<K, S>(stream: &mut S) -> Vec<K>
where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Unpin,
{
    let mut listed = Vec::new();
    loop {
        let event = tokio::time::timeout(STEP, stream.next())
            .await
            .expect("initial listing in time")
            .expect("the watch stream goes on")
            .expect("no watch error");
        match event {
            Event::InitApply(object) => listed.push(object),
            Event::InitDone => return listed,
            _ => {}
        }
    }
}

fn api_error_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn api_error_reason(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.reason.clone(),
        other => format!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn watcher_sees_added_modified_deleted_in_order() {
    let (api, ns) = setup("watch-order").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    let mut stream = watcher(config_maps.clone(), watcher::Config::default()).boxed();
    initial_list_done(&mut stream).await;

    config_maps
        .create(
            &PostParams::default(),
            &config_map("cm", &[], &[("v", "1")]),
        )
        .await
        .unwrap();
    let patch = json!({"data": {"v": "2"}});
    config_maps
        .patch("cm", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    config_maps
        .delete("cm", &DeleteParams::default())
        .await
        .unwrap();

    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(match next_change(&mut stream).await {
            Event::Apply(cm) => format!("apply v={}", cm.data.unwrap()["v"]),
            Event::Delete(cm) => format!("delete {}", cm.name_any()),
            other => format!("unexpected {other:?}"),
        });
    }
    assert_eq!(seen, vec!["apply v=1", "apply v=2", "delete cm"]);
}

#[tokio::test]
async fn stale_put_gets_409_conflict() {
    let (api, ns) = setup("stale-put").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    let created = config_maps
        .create(
            &PostParams::default(),
            &config_map("cm", &[], &[("v", "1")]),
        )
        .await
        .unwrap();

    let mut fresh = created.clone();
    fresh.data = Some(BTreeMap::from([("v".to_string(), "2".to_string())]));
    let updated = config_maps
        .replace("cm", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(updated.resource_version(), created.resource_version());

    let mut stale = created;
    stale.data = Some(BTreeMap::from([("v".to_string(), "3".to_string())]));
    let error = config_maps
        .replace("cm", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_error_code(&error), Some(409));
    assert_eq!(api_error_reason(&error), "Conflict");
    let current = config_maps.get("cm").await.unwrap();
    assert_eq!(current.data.unwrap()["v"], "2");
}

#[tokio::test]
async fn watch_from_a_compacted_version_gets_410_gone() {
    let config = EmulatorConfig {
        history_limit: 5,
        ..EmulatorConfig::default()
    };
    let (api, ns) = setup_with("gone-watch", config).await;
    if !api.is_emulated() {
        eprintln!("skipped: a real cluster's history cannot be compacted on demand");
        return;
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    let first = config_maps
        .create(&PostParams::default(), &config_map("first", &[], &[]))
        .await
        .unwrap();
    let old_version = first.resource_version().unwrap();
    for i in 0..10 {
        let cm = config_map(&format!("churn-{i}"), &[], &[]);
        config_maps
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
    }

    let mut events = config_maps
        .watch(&WatchParams::default(), &old_version)
        .await
        .unwrap()
        .boxed();
    let event = tokio::time::timeout(STEP, events.try_next())
        .await
        .unwrap()
        .unwrap()
        .expect("an event");
    match event {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // A version still in the history replays what followed it.
    let recent = config_maps.get("churn-8").await.unwrap();
    let mut events = config_maps
        .watch(&WatchParams::default(), &recent.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(STEP, events.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Added(cm)) => assert_eq!(cm.name_any(), "churn-9"),
        other => panic!("expected churn-9 to be replayed, got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_recovers_from_410_by_relisting() {
    let config = EmulatorConfig {
        history_limit: 5,
        ..EmulatorConfig::default()
    };
    let (api, ns) = setup_with("gone-relist", config).await;
    if !api.is_emulated() {
        eprintln!("skipped: a real cluster's history cannot be compacted on demand");
        return;
    }
    let services: Api<Service> = Api::namespaced(api.client(), &ns.name);
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    // Short watches without bookmarks: each reconnect resumes from the last
    // Service event seen, which ConfigMap churn then pushes out of the history.
    let config = watcher::Config::default().timeout(1).disable_bookmarks();
    let mut stream = watcher(services.clone(), config).boxed();
    initial_list_done(&mut stream).await;

    services
        .create(&PostParams::default(), &service("a"))
        .await
        .unwrap();
    match next_change(&mut stream).await {
        Event::Apply(svc) => assert_eq!(svc.name_any(), "a"),
        other => panic!("expected service a, got {other:?}"),
    }
    for i in 0..10 {
        let cm = config_map(&format!("churn-{i}"), &[], &[]);
        config_maps
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
    }

    // Expect: a 410 error, then a fresh listing.
    let mut saw_gone = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let item = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the watcher to relist in time")
            .expect("the stream goes on");
        match item {
            Err(watcher::Error::WatchError(status)) if status.code == 410 => saw_gone = true,
            Err(other) => panic!("unexpected watcher error {other}"),
            Ok(Event::Init) if saw_gone => break,
            Ok(_) => {}
        }
    }
    let relisted: Vec<String> = initial_list_done(&mut stream)
        .await
        .iter()
        .map(|s| s.name_any())
        .collect();
    assert_eq!(relisted, vec!["a"]);

    // And it keeps watching after the relist.
    services
        .create(&PostParams::default(), &service("b"))
        .await
        .unwrap();
    match next_change(&mut stream).await {
        Event::Apply(svc) => assert_eq!(svc.name_any(), "b"),
        other => panic!("expected service b, got {other:?}"),
    }
}

#[tokio::test]
async fn too_old_continue_token_gets_410_gone() {
    let config = EmulatorConfig {
        history_limit: 5,
        ..EmulatorConfig::default()
    };
    let (api, ns) = setup_with("gone-continue", config).await;
    if !api.is_emulated() {
        eprintln!("skipped: a real cluster's history cannot be compacted on demand");
        return;
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    for name in ["a", "b", "c"] {
        config_maps
            .create(&PostParams::default(), &config_map(name, &[], &[]))
            .await
            .unwrap();
    }
    let page = config_maps
        .list(&ListParams::default().limit(1))
        .await
        .unwrap();
    let token = page.metadata.continue_.clone().expect("a continue token");
    config_maps
        .create(&PostParams::default(), &config_map("d", &[], &[]))
        .await
        .unwrap();
    api.emulator().unwrap().compact_history();
    let error = config_maps
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap_err();
    assert_eq!(api_error_code(&error), Some(410));
}

#[tokio::test]
async fn list_pages_through_limit_and_continue() {
    let (api, ns) = setup("paging").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    for i in 0..5 {
        let cm = config_map(&format!("cm-{i}"), &[], &[]);
        config_maps
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(2);
    let mut pages = 0;
    loop {
        let page = config_maps.list(&params).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        names.extend(page.items.iter().map(|c| c.name_any()));
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    let cms: Vec<String> = names.into_iter().filter(|n| n.starts_with("cm-")).collect();
    assert_eq!(cms, vec!["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);
    assert!(pages >= 3);
}

#[tokio::test]
async fn label_selectors_filter_lists() {
    let (api, ns) = setup("labels-list").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    for (name, labels) in [
        ("web", vec![("app", "web"), ("tier", "front")]),
        ("db", vec![("app", "db")]),
        ("cache", vec![("app", "cache"), ("tier", "back")]),
    ] {
        config_maps
            .create(&PostParams::default(), &config_map(name, &labels, &[]))
            .await
            .unwrap();
    }
    let cases = [
        ("app=web", vec!["web"]),
        ("app==db", vec!["db"]),
        ("app!=web", vec!["cache", "db"]),
        ("app in (web,cache)", vec!["cache", "web"]),
        ("app notin (web,cache)", vec!["db"]),
        ("tier", vec!["cache", "web"]),
        ("!tier", vec!["db"]),
        ("app=web,tier=back", vec![]),
    ];
    for (selector, expected) in cases {
        let mut names: Vec<String> = config_maps
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items
            .iter()
            .map(|c| c.name_any())
            .filter(|n| n != ROOT_CA)
            .collect();
        names.sort();
        assert_eq!(names, expected, "selector {selector:?}");
    }
}

#[tokio::test]
async fn field_selectors_filter_lists_and_reject_unknown_fields() {
    let (api, ns) = setup("fields-list").await;
    let services: Api<Service> = Api::namespaced(api.client(), &ns.name);
    services
        .create(&PostParams::default(), &service("a"))
        .await
        .unwrap();
    let mut lb = service("b");
    lb.spec.as_mut().unwrap().type_ = Some("LoadBalancer".into());
    services.create(&PostParams::default(), &lb).await.unwrap();

    let names = |list: kube::api::ObjectList<Service>| -> Vec<String> {
        list.items.iter().map(|s| s.name_any()).collect()
    };
    let by_name = services
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(names(by_name), vec!["b"]);
    let not_a = services
        .list(&ListParams::default().fields("metadata.name!=a"))
        .await
        .unwrap();
    assert_eq!(names(not_a), vec!["b"]);
    let by_type = services
        .list(&ListParams::default().fields("spec.type=LoadBalancer"))
        .await
        .unwrap();
    assert_eq!(names(by_type), vec!["b"]);
    let everywhere: Api<Service> = Api::all(api.client());
    let in_namespace = everywhere
        .list(&ListParams::default().fields(&format!("metadata.namespace={}", ns.name)))
        .await
        .unwrap();
    assert_eq!(names(in_namespace), vec!["a", "b"]);
    let error = services
        .list(&ListParams::default().fields("spec.bogus=x"))
        .await
        .unwrap_err();
    assert_eq!(api_error_code(&error), Some(400));
}

#[tokio::test]
async fn label_selected_watch_sees_objects_enter_and_leave_the_selection() {
    let (api, ns) = setup("labels-watch").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    config_maps
        .create(
            &PostParams::default(),
            &config_map("a", &[("app", "web")], &[]),
        )
        .await
        .unwrap();
    config_maps
        .create(
            &PostParams::default(),
            &config_map("b", &[("app", "db")], &[]),
        )
        .await
        .unwrap();
    let mut stream = watcher(
        config_maps.clone(),
        watcher::Config::default().labels("app=web"),
    )
    .boxed();
    let listed: Vec<String> = initial_list_done(&mut stream)
        .await
        .iter()
        .map(|c: &ConfigMap| c.name_any())
        .collect();
    assert_eq!(listed, vec!["a"]);

    let relabel = |app: &str| json!({"metadata": {"labels": {"app": app}}});
    config_maps
        .patch("b", &PatchParams::default(), &Patch::Merge(relabel("web")))
        .await
        .unwrap();
    match next_change(&mut stream).await {
        Event::Apply(cm) => assert_eq!(cm.name_any(), "b"),
        other => panic!("expected b to enter the selection, got {other:?}"),
    }
    config_maps
        .patch("a", &PatchParams::default(), &Patch::Merge(relabel("db")))
        .await
        .unwrap();
    match next_change(&mut stream).await {
        Event::Delete(cm) => assert_eq!(cm.name_any(), "a"),
        other => panic!("expected a to leave the selection, got {other:?}"),
    }
}

#[tokio::test]
async fn field_selected_watch_follows_one_object() {
    let (api, ns) = setup("fields-watch").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    let mut stream = watcher(
        config_maps.clone(),
        watcher::Config::default().fields("metadata.name=wanted"),
    )
    .boxed();
    initial_list_done(&mut stream).await;
    for name in ["other", "wanted"] {
        config_maps
            .create(&PostParams::default(), &config_map(name, &[], &[]))
            .await
            .unwrap();
    }
    match next_change(&mut stream).await {
        Event::Apply(cm) => assert_eq!(cm.name_any(), "wanted"),
        other => panic!("expected only 'wanted', got {other:?}"),
    }
}

#[tokio::test]
async fn streaming_list_watcher_ends_initial_events_with_a_bookmark() {
    let (api, ns) = setup("streaming").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    config_maps
        .create(&PostParams::default(), &config_map("before", &[], &[]))
        .await
        .unwrap();
    let mut stream = watcher(
        config_maps.clone(),
        watcher::Config::default().streaming_lists(),
    )
    .boxed();
    let listed: Vec<String> = initial_list_done(&mut stream)
        .await
        .iter()
        .map(|c: &ConfigMap| c.name_any())
        .filter(|n| n != ROOT_CA)
        .collect();
    assert_eq!(listed, vec!["before"]);
    config_maps
        .create(&PostParams::default(), &config_map("after", &[], &[]))
        .await
        .unwrap();
    match next_change(&mut stream).await {
        Event::Apply(cm) => assert_eq!(cm.name_any(), "after"),
        other => panic!("expected 'after', got {other:?}"),
    }
}

#[tokio::test]
async fn watch_sends_bookmarks_when_asked() {
    let config = EmulatorConfig {
        bookmark_interval: Duration::from_millis(200),
        ..EmulatorConfig::default()
    };
    let (api, ns) = setup_with("bookmarks", config).await;
    if !api.is_emulated() {
        eprintln!("skipped: a real cluster sends bookmarks about once a minute");
        return;
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    let created = config_maps
        .create(&PostParams::default(), &config_map("cm", &[], &[]))
        .await
        .unwrap();
    let version = created.resource_version().unwrap();
    let mut events = config_maps
        .watch(&WatchParams::default().timeout(5), &version)
        .await
        .unwrap()
        .boxed();
    let event = tokio::time::timeout(STEP, events.try_next())
        .await
        .unwrap()
        .unwrap();
    match event {
        Some(WatchEvent::Bookmark(bookmark)) => {
            let rv: u64 = bookmark.metadata.resource_version.parse().unwrap();
            assert!(rv >= version.parse::<u64>().unwrap());
        }
        other => panic!("expected a BOOKMARK, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_ends_after_timeout_seconds() {
    let (api, ns) = setup("watch-timeout").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    let list = config_maps.list(&ListParams::default()).await.unwrap();
    let version = list.metadata.resource_version.unwrap();
    let started = std::time::Instant::now();
    let mut events = config_maps
        .watch(
            &WatchParams::default().timeout(1).disable_bookmarks(),
            &version,
        )
        .await
        .unwrap()
        .boxed();
    let end = tokio::time::timeout(STEP, async {
        while events.try_next().await.unwrap().is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the watch should end by itself");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

/// A small custom resource with a status subresource.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "e2e.gatehouse.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wdg"
)]
struct WidgetSpec {
    size: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
struct WidgetStatus {
    ready: bool,
}

/// A cluster-scoped custom resource without subresources.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(group = "e2e.gatehouse.dev", version = "v1", kind = "Gadget")]
struct GadgetSpec {
    color: String,
}

async fn install_crd(client: Client, crd: CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let name = crd.name_any();
    let params = PatchParams::apply("gatehouse-e2e").force();
    crds.patch(&name, &params, &Patch::Apply(&crd))
        .await
        .unwrap();
    let established = kube::runtime::wait::conditions::is_crd_established();
    tokio::time::timeout(
        STEP,
        kube::runtime::wait::await_condition(crds, &name, established),
    )
    .await
    .expect("the CRD to be established in time")
    .unwrap();
}

#[tokio::test]
async fn custom_resources_and_their_status_subresource_work() {
    let (api, ns) = setup("crd").await;
    install_crd(api.client(), Widget::crd()).await;
    install_crd(api.client(), Gadget::crd()).await;

    let widgets: Api<Widget> = Api::namespaced(api.client(), &ns.name);
    let mut widget = Widget::new("w", WidgetSpec { size: 1 });
    widget.status = Some(WidgetStatus { ready: true });
    let created = widgets
        .create(&PostParams::default(), &widget)
        .await
        .unwrap();
    assert_eq!(created.status, None, "status is dropped on create");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.uid().is_some());
    assert!(created.metadata.creation_timestamp.is_some());

    let status = json!({"status": {"ready": true}});
    let with_status = widgets
        .patch_status("w", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(with_status.status, Some(WidgetStatus { ready: true }));
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "status does not bump generation"
    );

    // The main resource ignores status; spec changes bump generation.
    let mut edited = with_status.clone();
    edited.spec.size = 2;
    edited.status = Some(WidgetStatus { ready: false });
    let replaced = widgets
        .replace("w", &PostParams::default(), &edited)
        .await
        .unwrap();
    assert_eq!(replaced.spec.size, 2);
    assert_eq!(replaced.status, Some(WidgetStatus { ready: true }));
    assert_eq!(replaced.metadata.generation, Some(2));

    // Fields outside the schema are pruned; wrong types are rejected with 422.
    let extra = json!({"spec": {"size": 3, "undeclared": "x"}});
    let patched = widgets
        .patch("w", &PatchParams::default(), &Patch::Merge(&extra))
        .await
        .unwrap();
    assert_eq!(patched.spec.size, 3);
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        api.client(),
        &ns.name,
        &kube::api::ApiResource::erase::<Widget>(&()),
    );
    let stored = raw.get("w").await.unwrap();
    assert_eq!(stored.data["spec"], json!({"size": 3}));
    let wrong = json!({"spec": {"size": "big"}});
    let error = widgets
        .patch("w", &PatchParams::default(), &Patch::Merge(&wrong))
        .await
        .unwrap_err();
    assert_eq!(api_error_code(&error), Some(422));

    // Cluster-scoped custom resources.
    let gadgets: Api<Gadget> = Api::all(api.client());
    gadgets
        .create(
            &PostParams::default(),
            &Gadget::new(
                &format!("{}-g", ns.name),
                GadgetSpec {
                    color: "red".into(),
                },
            ),
        )
        .await
        .unwrap();
    let listed = gadgets.list(&ListParams::default()).await.unwrap();
    assert!(listed.items.iter().any(|g| g.spec.color == "red"));
    gadgets
        .delete(&format!("{}-g", ns.name), &DeleteParams::default())
        .await
        .unwrap();

    // Discovery now lists the custom kinds.
    let discovery = kube::discovery::Discovery::new(api.client())
        .run()
        .await
        .unwrap();
    let kinds: Vec<String> = discovery
        .groups()
        .filter(|g| g.name() == "e2e.gatehouse.dev")
        .flat_map(|g| g.recommended_resources())
        .map(|(resource, _)| resource.kind)
        .collect();
    assert!(kinds.contains(&"Widget".to_string()) && kinds.contains(&"Gadget".to_string()));
}

#[tokio::test]
async fn server_side_apply_conflicts_between_managers_unless_forced() {
    let (api, ns) = setup("ssa").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    let apply = |value: &str, extra: Option<(&str, &str)>| {
        let mut data = json!({"shared": value});
        if let Some((k, v)) = extra {
            data[k] = json!(v);
        }
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "cm"}, "data": data})
    };
    let created = config_maps
        .patch(
            "cm",
            &PatchParams::apply("alpha"),
            &Patch::Apply(apply("1", Some(("alpha-only", "a")))),
        )
        .await
        .unwrap();
    assert_eq!(created.data.as_ref().unwrap()["shared"], "1");

    // Same value: shared ownership, no conflict.
    config_maps
        .patch(
            "cm",
            &PatchParams::apply("beta"),
            &Patch::Apply(apply("1", None)),
        )
        .await
        .unwrap();

    // Different value: conflict with alpha.
    let error = config_maps
        .patch(
            "cm",
            &PatchParams::apply("beta"),
            &Patch::Apply(apply("2", None)),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error_code(&error), Some(409));
    let kube::Error::Api(status) = &error else {
        panic!("expected an API error")
    };
    assert!(status.message.contains("alpha"), "{}", status.message);

    // Forced: beta takes the field over.
    let forced = config_maps
        .patch(
            "cm",
            &PatchParams::apply("beta").force(),
            &Patch::Apply(apply("2", None)),
        )
        .await
        .unwrap();
    let data = forced.data.clone().unwrap();
    assert_eq!(data["shared"], "2");
    assert_eq!(data["alpha-only"], "a");
    let managers: Vec<String> = forced
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.contains(&"alpha".to_string()) && managers.contains(&"beta".to_string()));

    // Alpha dropping its field from its configuration removes it.
    let alpha_shrunk = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}});
    let shrunk = config_maps
        .patch(
            "cm",
            &PatchParams::apply("alpha"),
            &Patch::Apply(alpha_shrunk),
        )
        .await
        .unwrap();
    let data = shrunk.data.unwrap_or_default();
    assert_eq!(data.get("alpha-only"), None);
    assert_eq!(data["shared"], "2");
}

#[tokio::test]
async fn finalizers_delay_deletion_until_removed() {
    let (api, ns) = setup("finalizers").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    let mut cm = config_map("held", &[], &[]);
    cm.metadata.finalizers = Some(vec!["e2e.gatehouse.dev/hold".into()]);
    config_maps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();

    let deleted = config_maps
        .delete("held", &DeleteParams::default())
        .await
        .unwrap();
    let pending = deleted.left().expect("the object stays while finalized");
    assert!(pending.metadata.deletion_timestamp.is_some());
    let still_there = config_maps.get("held").await.unwrap();
    assert!(still_there.metadata.deletion_timestamp.is_some());

    let add = json!({"metadata": {"finalizers": ["e2e.gatehouse.dev/hold", "another/one"]}});
    let error = config_maps
        .patch("held", &PatchParams::default(), &Patch::Merge(&add))
        .await
        .unwrap_err();
    assert_eq!(api_error_code(&error), Some(422));

    let release = json!({"metadata": {"finalizers": null}});
    config_maps
        .patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    let error = config_maps.get("held").await.unwrap_err();
    assert_eq!(api_error_code(&error), Some(404));
}

#[tokio::test]
async fn generation_bumps_on_spec_changes_only() {
    let (api, ns) = setup("generation").await;
    let ingresses: Api<Ingress> = Api::namespaced(api.client(), &ns.name);
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "site"},
        "spec": {"rules": [{"host": "a.example.test", "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}
        }]}}]}
    }))
    .unwrap();
    let created = ingresses
        .create(&PostParams::default(), &ingress)
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let labels = json!({"metadata": {"labels": {"touched": "yes"}}});
    let relabelled = ingresses
        .patch("site", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(relabelled.metadata.generation, Some(1));

    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}});
    let with_status = ingresses
        .patch_status("site", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(with_status.metadata.generation, Some(1));

    let host = json!({"spec": {"rules": [{"host": "b.example.test", "http": {"paths": [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"number": 80}}}
    }]}}]}});
    let respecced = ingresses
        .patch("site", &PatchParams::default(), &Patch::Merge(&host))
        .await
        .unwrap();
    assert_eq!(respecced.metadata.generation, Some(2));
    // The main resource cannot change status.
    let sneaky = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.99"}]}}});
    let unchanged = ingresses
        .patch("site", &PatchParams::default(), &Patch::Merge(&sneaky))
        .await
        .unwrap();
    let ips: Vec<String> = unchanged
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.ip)
        .collect();
    assert_eq!(ips, vec!["192.0.2.10"]);
}

#[tokio::test]
async fn api_errors_come_back_as_status_objects() {
    let (api, ns) = setup("errors").await;
    let services: Api<Service> = Api::namespaced(api.client(), &ns.name);

    let missing = services.get("nope").await.unwrap_err();
    assert_eq!(api_error_code(&missing), Some(404));
    assert_eq!(api_error_reason(&missing), "NotFound");

    services
        .create(&PostParams::default(), &service("dup"))
        .await
        .unwrap();
    let duplicate = services
        .create(&PostParams::default(), &service("dup"))
        .await
        .unwrap_err();
    assert_eq!(api_error_code(&duplicate), Some(409));
    assert_eq!(api_error_reason(&duplicate), "AlreadyExists");

    let mut no_ports = service("no-ports");
    no_ports.spec.as_mut().unwrap().ports = None;
    let invalid = services
        .create(&PostParams::default(), &no_ports)
        .await
        .unwrap_err();
    assert_eq!(api_error_code(&invalid), Some(422));
    assert_eq!(api_error_reason(&invalid), "Invalid");

    let elsewhere: Api<ConfigMap> = Api::namespaced(api.client(), "no-such-namespace-e2e");
    let no_namespace = elsewhere
        .create(&PostParams::default(), &config_map("x", &[], &[]))
        .await
        .unwrap_err();
    assert_eq!(api_error_code(&no_namespace), Some(404));
}

#[tokio::test]
async fn services_are_defaulted_like_the_real_api_server() {
    let (api, ns) = setup("svc-defaults").await;
    let services: Api<Service> = Api::namespaced(api.client(), &ns.name);
    let mut lb = service("lb");
    lb.spec.as_mut().unwrap().type_ = Some("LoadBalancer".into());
    let created = services.create(&PostParams::default(), &lb).await.unwrap();
    let spec = created.spec.unwrap();
    assert!(spec.cluster_ip.is_some_and(|ip| !ip.is_empty()));
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert!(port.node_port.is_some());
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(spec.ip_families, Some(vec!["IPv4".to_string()]));
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}
    }))
    .unwrap()
}

#[tokio::test]
async fn events_published_through_events_api_are_core_events_too() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as EventsEvent;
    use kube::runtime::events::{Event as Published, EventType, Recorder, Reporter};
    use kube::Resource;

    let (api, ns) = setup("events").await;
    let services: Api<Service> = Api::namespaced(api.client(), &ns.name);
    let web = services
        .create(&PostParams::default(), &service("web"))
        .await
        .unwrap();
    let reporter = Reporter {
        controller: "gatehouse-e2e".into(),
        instance: Some("test".into()),
    };
    let recorder = Recorder::new(api.client(), reporter);
    let published = Published {
        type_: EventType::Normal,
        reason: "Allocated".into(),
        note: Some("allocated 192.0.2.1".into()),
        action: "Allocate".into(),
        secondary: None,
    };
    recorder
        .publish(&published, &web.object_ref(&()))
        .await
        .unwrap();

    let events_v1: Api<EventsEvent> = Api::namespaced(api.client(), &ns.name);
    let listed = events_v1
        .list(&ListParams::default().fields("regarding.name=web"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].note.as_deref(), Some("allocated 192.0.2.1"));

    let core: Api<CoreEvent> = Api::namespaced(api.client(), &ns.name);
    let listed = core
        .list(&ListParams::default().fields("involvedObject.name=web,involvedObject.kind=Service"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let event = &listed.items[0];
    assert_eq!(event.message.as_deref(), Some("allocated 192.0.2.1"));
    assert_eq!(event.reason.as_deref(), Some("Allocated"));
    assert_eq!(event.reporting_component.as_deref(), Some("gatehouse-e2e"));
}

#[tokio::test]
async fn metadata_watcher_sees_partial_objects() {
    let (api, ns) = setup("metadata").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(api.client(), &ns.name);
    // An Api over PartialObjectMeta asks for metadata only (Accept: ...;as=PartialObjectMetadata).
    let metadata_only: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(api.client(), &ns.name);
    let mut stream = watcher(metadata_only, watcher::Config::default()).boxed();
    initial_list_done(&mut stream).await;
    config_maps
        .create(
            &PostParams::default(),
            &config_map("cm", &[("app", "web")], &[("big", "payload")]),
        )
        .await
        .unwrap();
    match next_change(&mut stream).await {
        Event::Apply(meta) => {
            assert_eq!(meta.name_any(), "cm");
            let kind = meta.types.as_ref().map(|t| t.kind.as_str());
            assert_eq!(kind, Some("PartialObjectMetadata"));
            assert_eq!(meta.labels().get("app").map(String::as_str), Some("web"));
        }
        other => panic!("expected cm's metadata, got {other:?}"),
    }
}

#[tokio::test]
async fn server_side_apply_to_status_changes_only_status() {
    let (api, ns) = setup("ssa-status").await;
    let services: Api<Service> = Api::namespaced(api.client(), &ns.name);
    let mut lb = service("lb");
    lb.spec.as_mut().unwrap().type_ = Some("LoadBalancer".into());
    let created = services.create(&PostParams::default(), &lb).await.unwrap();

    let status = |ip: &str| {
        json!({"apiVersion": "v1", "kind": "Service",
               "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})
    };
    let params = PatchParams::apply("gatehouse-ipam").force();
    let first = services
        .patch_status("lb", &params, &Patch::Apply(status("192.0.2.20")))
        .await
        .unwrap();
    let second = services
        .patch_status("lb", &params, &Patch::Apply(status("192.0.2.21")))
        .await
        .unwrap();
    let ips: Vec<String> = second
        .status
        .clone()
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.ip)
        .collect();
    assert_eq!(ips, vec!["192.0.2.21"]);
    assert_eq!(
        second.spec, created.spec,
        "a status apply leaves the spec alone"
    );
    assert_eq!(second.metadata.generation, first.metadata.generation);
    let status_manager = second
        .managed_fields()
        .iter()
        .find(|m| m.manager.as_deref() == Some("gatehouse-ipam"))
        .cloned()
        .expect("the status applier is recorded");
    assert_eq!(status_manager.subresource.as_deref(), Some("status"));
    assert_eq!(status_manager.operation.as_deref(), Some("Apply"));
}
