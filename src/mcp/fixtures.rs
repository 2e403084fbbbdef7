//! Test mode only (`warden serve --http ... --conformance-fixtures`): the fixture tools the
//! official MCP conformance suite calls (`test_*`), so that its tool scenarios exercise the
//! transport and the protocol handling Warden ships. They run no code and touch nothing;
//! without the flag they do not exist.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolResult, ContentBlock, JsonObject, ProgressNotificationParam, ResourceContents, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

/// A 1×1 red PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A WAV header with no samples.
const WAV: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=";

const FIXTURES: [(&str, &str); 7] = [
    ("test_simple_text", "Conformance fixture: returns text"),
    (
        "test_image_content",
        "Conformance fixture: returns an image",
    ),
    ("test_audio_content", "Conformance fixture: returns audio"),
    (
        "test_embedded_resource",
        "Conformance fixture: returns an embedded resource",
    ),
    (
        "test_multiple_content_types",
        "Conformance fixture: returns text, an image and a resource",
    ),
    (
        "test_error_handling",
        "Conformance fixture: returns a tool error",
    ),
    (
        "test_tool_with_progress",
        "Conformance fixture: reports progress three times",
    ),
];

/// The fixture tools' definitions.
pub fn tools() -> Vec<Tool> {
    let mut schema = JsonObject::new();
    schema.insert("type".into(), "object".into());
    let schema = Arc::new(schema);
    FIXTURES
        .iter()
        .map(|(name, description)| Tool::new(*name, *description, schema.clone()))
        .collect()
}

fn embedded() -> ContentBlock {
    ContentBlock::resource(ResourceContents::text(
        "This is an embedded resource content.",
        "test://embedded-resource",
    ))
}

/// Runs fixture `name`, or `None` when no fixture has that name.
pub async fn call(
    name: &str,
    context: &RequestContext<RoleServer>,
) -> Option<Result<CallToolResult, ErrorData>> {
    let result = match name {
        "test_simple_text" => CallToolResult::success(vec![ContentBlock::text(
            "This is a simple text response for testing.",
        )]),
        "test_image_content" => {
            CallToolResult::success(vec![ContentBlock::image(PNG, "image/png")])
        }
        "test_audio_content" => {
            CallToolResult::success(vec![ContentBlock::audio(WAV, "audio/wav")])
        }
        "test_embedded_resource" => CallToolResult::success(vec![embedded()]),
        "test_multiple_content_types" => CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(PNG, "image/png"),
            embedded(),
        ]),
        "test_error_handling" => CallToolResult::error(vec![ContentBlock::text(
            "This tool intentionally returns an error for testing",
        )]),
        "test_tool_with_progress" => {
            if let Some(token) = context.meta.get_progress_token() {
                for step in [0.0, 50.0, 100.0] {
                    let note = ProgressNotificationParam::new(token.clone(), step)
                        .with_total(100.0)
                        .with_message(format!("step {step}"));
                    if let Err(e) = context.peer.notify_progress(note).await {
                        return Some(Err(ErrorData::internal_error(
                            format!("sending progress failed: {e}"),
                            None,
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            CallToolResult::success(vec![ContentBlock::text("Progress complete")])
        }
        _ => return None,
    };
    Some(Ok(result))
}
