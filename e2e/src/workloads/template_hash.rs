//! The hash that names a Pod template's revision (`pod-template-hash`,
//! `controller-revision-hash`): stable for equal templates, in the
//! alphabet upstream uses for generated names (no vowels, no look-alikes).

use k8s_openapi::api::core::v1::PodTemplateSpec;

const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A 10-character hash of the template's JSON form (maps serialise sorted,
/// so equal templates hash equally).
pub(crate) fn template_hash(template: &PodTemplateSpec) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    // FNV-1a, 64 bit: tiny, and good enough to tell revisions apart.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let base = SAFE_ALPHABET.len() as u64;
    (0..10)
        .map(|_| {
            let digit = SAFE_ALPHABET[(hash % base) as usize];
            hash /= base;
            char::from(digit)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn equal_templates_hash_equally_and_changes_show() {
        let mut a = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "x".to_string())].into()),
                ..Default::default()
            }),
            spec: None,
        };
        let b = a.clone();
        assert_eq!(template_hash(&a), template_hash(&b));
        assert_eq!(template_hash(&a).len(), 10);
        if let Some(m) = a.metadata.as_mut() {
            m.labels = Some([("app".to_string(), "y".to_string())].into());
        }
        assert_ne!(template_hash(&a), template_hash(&b));
    }
}
