//! The fixture prompts the official MCP conformance suite gets (`test_*`). The `warden`
//! binary offers no prompts; the test server has these so that the prompt scenarios exercise
//! rmcp's prompt handling (and, for `test_input_required_result_prompt`, SEP-2322's
//! `InputRequiredResult` on a request other than `tools/call`).

use std::collections::BTreeMap;

use rmcp::ErrorData;
use rmcp::model::{
    ContentBlock, GetPromptRequestParams, GetPromptResponse, GetPromptResult, InputRequiredResult,
    JsonObject, Prompt, PromptArgument, PromptMessage, ResourceContents, Role,
};

use crate::{fixtures, input_required};

const SIMPLE: &str = "test_simple_prompt";
const WITH_ARGUMENTS: &str = "test_prompt_with_arguments";
const WITH_EMBEDDED_RESOURCE: &str = "test_prompt_with_embedded_resource";
const WITH_IMAGE: &str = "test_prompt_with_image";
const INPUT_REQUIRED: &str = "test_input_required_result_prompt";

fn required(name: &str, description: &str) -> PromptArgument {
    PromptArgument::new(name)
        .with_description(description)
        .with_required(true)
}

/// The fixture prompts' definitions.
pub fn list() -> Vec<Prompt> {
    vec![
        Prompt::new(
            SIMPLE,
            Some("Conformance fixture: a prompt without arguments"),
            None,
        ),
        Prompt::new(
            WITH_ARGUMENTS,
            Some("Conformance fixture: a prompt with two arguments"),
            Some(vec![
                required("arg1", "First test argument"),
                required("arg2", "Second test argument"),
            ]),
        ),
        Prompt::new(
            WITH_EMBEDDED_RESOURCE,
            Some("Conformance fixture: a prompt embedding a resource"),
            Some(vec![required(
                "resourceUri",
                "URI of the resource to embed",
            )]),
        ),
        Prompt::new(
            WITH_IMAGE,
            Some("Conformance fixture: a prompt with an image"),
            None,
        ),
        Prompt::new(
            INPUT_REQUIRED,
            Some("Conformance fixture: asks for context through inputRequests (2026-07-28)"),
            None,
        ),
    ]
}

fn user(content: ContentBlock) -> PromptMessage {
    PromptMessage::new(Role::User, content)
}

/// A required argument; its absence is the caller's invalid params.
fn argument<'a>(arguments: Option<&'a JsonObject>, name: &str) -> Result<&'a str, ErrorData> {
    arguments
        .and_then(|a| a.get(name))
        .and_then(|v| v.as_str())
        .ok_or_else(|| ErrorData::invalid_params(format!("missing argument `{name}`"), None))
}

/// Gets fixture `request.name`, or `None` when it is not one of these.
pub fn get(request: &GetPromptRequestParams) -> Option<Result<GetPromptResponse, ErrorData>> {
    let arguments = request.arguments.as_ref();
    let messages = match request.name.as_str() {
        SIMPLE => Ok(vec![user(ContentBlock::text(
            "This is a simple prompt for testing.",
        ))]),
        WITH_ARGUMENTS => argument(arguments, "arg1").and_then(|arg1| {
            let arg2 = argument(arguments, "arg2")?;
            Ok(vec![user(ContentBlock::text(format!(
                "Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
            )))])
        }),
        WITH_EMBEDDED_RESOURCE => argument(arguments, "resourceUri").map(|uri| {
            vec![
                user(ContentBlock::resource(ResourceContents::text(
                    "Embedded resource content for testing.",
                    uri,
                ))),
                user(ContentBlock::text(
                    "Please process the embedded resource above.",
                )),
            ]
        }),
        WITH_IMAGE => Ok(vec![
            user(ContentBlock::image(fixtures::PNG, "image/png")),
            user(ContentBlock::text("Please analyze the image above.")),
        ]),
        INPUT_REQUIRED => return Some(input_required_prompt(request)),
        _ => return None,
    };
    Some(messages.map(|m| GetPromptResult::new(m).into()))
}

/// Asks for the context until an answer has one, as the tool fixtures of
/// `input_required.rs` do; nothing needs remembering between the rounds, so no state.
fn input_required_prompt(request: &GetPromptRequestParams) -> Result<GetPromptResponse, ErrorData> {
    let responses = request.input_responses.as_ref();
    if let Some(context) = input_required::elicited(responses, "user_context", "context") {
        return Ok(GetPromptResult::new(vec![user(ContentBlock::text(format!(
            "Answer using this context: {context}"
        )))])
        .into());
    }
    let ask = input_required::elicit("What context should the prompt use?", "context")?;
    let requests = BTreeMap::from([("user_context".to_string(), ask)]);
    Ok(InputRequiredResult::new(Some(requests), None).into())
}
