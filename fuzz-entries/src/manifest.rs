//! Manifest files of local mode: YAML (multi-document, `kind: List`) or
//! JSON, parsed into the objects translation reads.

use gatehouse_controller::manifests::parse_manifest;
use std::path::Path;

/// Input: the first byte picks the file type (even: YAML, odd: JSON), the
/// rest is the file. An error must name the file.
pub fn run(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let path = Path::new(if kind % 2 == 0 {
        "fuzz/manifest.yaml"
    } else {
        "fuzz/manifest.json"
    });
    match parse_manifest(path, text) {
        Ok(objects) => {
            for o in &objects {
                let _ = (o.kind(), o.key());
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz/manifest."), "{e}"),
    }
}
