//! The CRD manifests in the chart are what the Rust types generate, and the
//! CEL rules in them accept and refuse what the documentation says.

#![allow(clippy::unwrap_used)]

use gatehouse_crds::{all, render, CRD_DIR};
use std::path::Path;

#[test]
fn checked_in_manifests_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(CRD_DIR);
    for (file, crd) in all() {
        let path = dir.join(file);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            on_disk,
            render(&crd).unwrap(),
            "{} is stale: run `cargo run -p gatehouse-crds`",
            path.display()
        );
    }
}

fn spec_schema() -> serde_json::Value {
    let (_, crd) = all().remove(0);
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    schema["openAPIV3Schema"]["properties"]["spec"].clone()
}

#[test]
fn address_rule_accepts_cidrs_and_ranges_and_refuses_the_rest() {
    let schema = spec_schema();
    let check = |addresses: &[&str]| {
        let spec = serde_json::json!({"addresses": addresses});
        kube_cel::validate(&schema, &spec, None)
    };
    for good in [
        &["192.0.2.0/24"][..],
        &["2001:db8::/120", "192.0.2.10-192.0.2.20"],
        &["192.0.2.10 - 192.0.2.20"],
        &["fd00::1-fd00::9"],
    ] {
        assert!(check(good).is_ok(), "{good:?}: {:?}", check(good));
    }
    for bad in [
        &["192.0.2.0/33"][..],
        &["not-an-address"],
        &["192.0.2.1-2001:db8::1"],
        &["192.0.2.300/24"],
        &["10.0.0.1-10.0.0.2-10.0.0.3"],
    ] {
        let err = check(bad).unwrap_err();
        assert!(
            err.iter().any(|e| e.message.contains("CIDR")),
            "{bad:?}: {err:?}"
        );
    }
}
