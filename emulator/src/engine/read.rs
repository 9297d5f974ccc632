//! Reads: get and list (with selectors and limit/continue paging).

use base64::Engine as _;
use serde_json::{json, Value};

use super::{ListPage, Selectors};
use crate::error::ApiError;
use crate::meta;
use crate::state::{present, State, Target};

impl State {
    pub fn get(&self, target: &Target) -> Result<Value, ApiError> {
        let name = Self::require_name(target)?;
        let object = self.stored(target, name)?;
        Ok(present(&object, &target.info, &target.version))
    }

    pub fn list(
        &self,
        target: &Target,
        selectors: &Selectors,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<ListPage, ApiError> {
        let (list_rv, after) = match continue_token.filter(|t| !t.is_empty()) {
            Some(token) => {
                let (rv, after) = decode_continue(token)?;
                if rv < self.store.compacted_rv() {
                    return Err(ApiError::gone(
                        "The provided continue parameter is too old to display a consistent \
                         list result. You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some(after))
            }
            None => (self.store.current_rv(), None),
        };
        let namespace = target
            .namespace
            .as_deref()
            .filter(|_| target.info.namespaced);
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        // Only the page's objects are copied out; the rest are only counted
        // (remainingItemCount), and looked at only when a selector must see
        // them: a list of N objects in pages stays O(N), not O(N²/page).
        // Selectors see objects as this API shows them (field names differ
        // between the two Event APIs).
        let mut page: Vec<Value> = Vec::new();
        let mut total = 0usize;
        for stored in self.store.list(&target.key(), namespace, after.as_ref()) {
            if page.len() < limit {
                let object = present(&stored, &target.info, &target.version);
                if selectors.matches(&object) {
                    page.push(object);
                    total += 1;
                }
            } else if selectors.is_empty()
                || selectors.matches(&present(&stored, &target.info, &target.version))
            {
                total += 1;
            }
        }
        let (continue_token, remaining) = match page.last() {
            Some(last) if total > limit => (
                Some(encode_continue(
                    list_rv,
                    meta::namespace(last),
                    meta::name(last),
                )),
                Some(total - limit),
            ),
            _ => (None, None),
        };
        Ok(ListPage {
            items: page,
            resource_version: list_rv,
            continue_token,
            remaining,
        })
    }
}

fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    let token = json!({"rv": rv, "ns": namespace, "name": name}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
}

fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    let invalid = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let rv = value
        .get("rv")
        .and_then(Value::as_u64)
        .ok_or_else(invalid)?;
    let text = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok((rv, (text("ns"), text("name"))))
}
