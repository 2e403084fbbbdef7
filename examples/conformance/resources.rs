//! The fixture resources the official MCP conformance suite reads and subscribes to
//! (`test://…`), listed and read beside the files of Warden's code sessions
//! (`warden://sessions/…`). Their contents are constants: nothing changes them, so no
//! `notifications/resources/updated` is ever due for a subscription to them.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::ErrorData;
use rmcp::model::{
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate, SubscriptionFilter,
};

use crate::fixtures::PNG;

const STATIC_TEXT: &str = "test://static-text";
const STATIC_BINARY: &str = "test://static-binary";
const WATCHED: &str = "test://watched-resource";
/// `test://template/{id}/data` without its variable.
const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";

const TEXT: &str = "This is the content of the static text resource.";
const WATCHED_TEXT: &str = "Watched resource content";

/// The fixture resources (the template's instances are not listed).
pub fn list() -> Vec<Resource> {
    vec![
        Resource::new(STATIC_TEXT, "static-text")
            .with_title("Static Text Resource")
            .with_description("Conformance fixture: a static text resource")
            .with_mime_type("text/plain"),
        Resource::new(STATIC_BINARY, "static-binary")
            .with_title("Static Binary Resource")
            .with_description("Conformance fixture: a static binary resource (a PNG image)")
            .with_mime_type("image/png"),
        Resource::new(WATCHED, "watched-resource")
            .with_title("Watched Resource")
            .with_description("Conformance fixture: a resource to subscribe to (it never changes)")
            .with_mime_type("text/plain"),
    ]
}

/// The fixture resource templates.
pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(
            format!("{TEMPLATE_PREFIX}{{id}}{TEMPLATE_SUFFIX}"),
            "template",
        )
        .with_title("Resource Template")
        .with_description("Conformance fixture: JSON data for the id in the URI")
        .with_mime_type("application/json"),
    ]
}

/// The `id` of a URI of the template, if `uri` is one.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix(TEMPLATE_PREFIX)?
        .strip_suffix(TEMPLATE_SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// Reads fixture `uri`, or `None` when no fixture has that URI.
pub fn read(uri: &str) -> Option<ReadResourceResult> {
    let contents = match uri {
        STATIC_TEXT => ResourceContents::text(TEXT, uri).with_mime_type("text/plain"),
        STATIC_BINARY => ResourceContents::blob(PNG, uri).with_mime_type("image/png"),
        WATCHED => ResourceContents::text(WATCHED_TEXT, uri).with_mime_type("text/plain"),
        _ => {
            let id = template_id(uri)?;
            let data = serde_json::json!({
                "id": id,
                "templateTest": true,
                "data": format!("Data for ID: {id}"),
            });
            ResourceContents::text(data.to_string(), uri).with_mime_type("application/json")
        }
    };
    Some(ReadResourceResult::new(vec![contents]))
}

fn is_fixture(uri: &str) -> bool {
    matches!(uri, STATIC_TEXT | STATIC_BINARY | WATCHED) || template_id(uri).is_some()
}

/// The fixture URIs an MCP session subscribed to with `resources/subscribe` (up to
/// 2025-11-25).
#[derive(Clone, Default)]
pub struct Subscriptions(Arc<Mutex<BTreeSet<String>>>);

impl Subscriptions {
    /// Subscribes to fixture `uri`; Warden's own resources offer no subscriptions.
    pub fn subscribe(&self, uri: &str) -> Result<(), ErrorData> {
        if !is_fixture(uri) {
            return Err(ErrorData::invalid_params(
                format!("no subscription is offered for {uri}: only the test:// fixtures have one"),
                Some(serde_json::json!({"uri": uri})),
            ));
        }
        let mut uris = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        uris.insert(uri.to_string());
        tracing::debug!(uri, subscriptions = uris.len(), "subscribed");
        Ok(())
    }

    /// Ends the subscription to `uri`, if there is one.
    pub fn unsubscribe(&self, uri: &str) {
        let mut uris = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        uris.remove(uri);
        tracing::debug!(uri, subscriptions = uris.len(), "unsubscribed");
    }
}

/// The part of a `subscriptions/listen` filter (2026-07-28) the fixtures accept: updates of
/// fixture resources, and no list changes (the lists never change).
pub fn accepted_filter(requested: &SubscriptionFilter) -> SubscriptionFilter {
    let uris: Vec<&String> = requested
        .resource_subscriptions
        .iter()
        .flatten()
        .filter(|uri| is_fixture(uri))
        .collect();
    if uris.is_empty() {
        SubscriptionFilter::new()
    } else {
        SubscriptionFilter::builder()
            .resource_subscriptions(uris.into_iter().cloned())
            .build()
    }
}
