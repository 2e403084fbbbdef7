//! The contract's result as an MCP tool result.

use rmcp::model::{CallToolResult, ContentBlock};

use crate::contract::{ErrorInfo, ErrorKind, ExecutionResult, Status};

/// The contract's MCP result: `structuredContent`, one readable text block, `isError`.
pub fn to_call_tool_result(result: &ExecutionResult) -> CallToolResult {
    let structured = match serde_json::to_value(result) {
        Ok(v) => v,
        Err(e) => {
            // Cannot happen for these types; keep the contract even so.
            let fallback = ExecutionResult::without_run(
                Status::Error,
                ErrorInfo::new(
                    ErrorKind::InternalError,
                    format!("encoding the result failed: {e}"),
                ),
            );
            return to_call_tool_result(&fallback);
        }
    };
    let mut call_result = if result.is_error() {
        CallToolResult::structured_error(structured)
    } else {
        CallToolResult::structured(structured)
    };
    call_result.content = vec![ContentBlock::text(result.to_text())];
    call_result
        .content
        .extend(super::files::file_blocks(result));
    call_result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ok_results_are_errors_with_structured_content() {
        let r = ExecutionResult::without_run(
            Status::Timeout,
            ErrorInfo::new(ErrorKind::Timeout, "slow"),
        );
        let c = to_call_tool_result(&r);
        assert_eq!(c.is_error, Some(true));
        assert_eq!(c.structured_content.as_ref().unwrap()["status"], "timeout");
        assert_eq!(c.content.len(), 1);
    }

    #[test]
    fn ok_result_is_not_an_error() {
        let mut r =
            ExecutionResult::without_run(Status::Ok, ErrorInfo::new(ErrorKind::InternalError, "y"));
        r.error = None;
        r.result = serde_json::json!(2);
        let c = to_call_tool_result(&r);
        assert_eq!(c.is_error, Some(false));
        assert_eq!(c.structured_content.unwrap()["result"], 2);
    }
}
