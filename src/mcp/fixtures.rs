//! Test mode only (`warden serve --http ... --conformance-fixtures`): the fixture tools the
//! official MCP conformance suite calls (`test_*`), so that its tool scenarios exercise the
//! transport and the protocol handling Warden ships. They run no code and touch nothing;
//! without the flag they do not exist.

// The suite still exercises logging and sampling, which SEP-2577 deprecates; so do these
// fixtures (and nothing else in Warden).
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolResult, ContentBlock, JsonObject, LoggingLevel, LoggingMessageNotificationParam,
    ProgressNotificationParam, ResourceContents, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

/// A 1×1 red PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A WAV header with no samples.
const WAV: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=";

const FIXTURES: [(&str, &str); 10] = [
    (
        "test_tool_with_logging",
        "Conformance fixture: sends three log messages",
    ),
    (
        "test_sampling",
        "Conformance fixture: asks the client's LLM (argument `prompt`)",
    ),
    (
        "test_elicitation",
        "Conformance fixture: asks the user (argument `message`)",
    ),
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

fn internal(message: String) -> ErrorData {
    ErrorData::internal_error(message, None)
}

fn argument(arguments: Option<&JsonObject>, name: &str) -> String {
    arguments
        .and_then(|a| a.get(name))
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// Runs fixture `name`, or `None` when no fixture has that name.
pub async fn call(
    name: &str,
    arguments: Option<&JsonObject>,
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
        "test_tool_with_logging" => {
            for (i, text) in [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            ]
            .into_iter()
            .enumerate()
            {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let note = LoggingMessageNotificationParam::new(LoggingLevel::Info, text.into());
                if let Err(e) = context.peer.notify_logging_message(note).await {
                    return Some(Err(internal(format!("sending a log message failed: {e}"))));
                }
            }
            CallToolResult::success(vec![ContentBlock::text("Logging complete")])
        }
        "test_sampling" => {
            let prompt = argument(arguments, "prompt");
            let request = serde_json::json!({
                "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
                "maxTokens": 100
            });
            let params = match serde_json::from_value(request) {
                Ok(params) => params,
                Err(e) => return Some(Err(internal(format!("building the request failed: {e}")))),
            };
            match context.peer.create_message(params).await {
                Ok(answer) => {
                    let answer = serde_json::to_value(&answer).unwrap_or_default();
                    let text = answer["content"]["text"].as_str().unwrap_or_default();
                    CallToolResult::success(vec![ContentBlock::text(format!(
                        "LLM response: {text}"
                    ))])
                }
                Err(e) => {
                    CallToolResult::error(vec![ContentBlock::text(format!("sampling failed: {e}"))])
                }
            }
        }
        "test_elicitation" => {
            let request = serde_json::json!({
                "mode": "form",
                "message": argument(arguments, "message"),
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "username": {"type": "string", "description": "User's response"},
                        "email": {"type": "string", "description": "User's email address"}
                    },
                    "required": ["username", "email"]
                }
            });
            let params = match serde_json::from_value(request) {
                Ok(params) => params,
                Err(e) => return Some(Err(internal(format!("building the request failed: {e}")))),
            };
            match context.peer.create_elicitation(params).await {
                Ok(answer) => {
                    let answer = serde_json::to_value(&answer).unwrap_or_default();
                    CallToolResult::success(vec![ContentBlock::text(format!(
                        "User response: {answer}"
                    ))])
                }
                Err(e) => CallToolResult::error(vec![ContentBlock::text(format!(
                    "elicitation failed: {e}"
                ))]),
            }
        }
        "test_tool_with_progress" => {
            if let Some(token) = context.meta.get_progress_token() {
                for step in [0.0, 50.0, 100.0] {
                    let note = ProgressNotificationParam::new(token.clone(), step)
                        .with_total(100.0)
                        .with_message(format!("step {step}"));
                    if let Err(e) = context.peer.notify_progress(note).await {
                        return Some(Err(internal(format!("sending progress failed: {e}"))));
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
