//! stdio transport: one client, the process's stdin/stdout. Logs go to stderr only.
//!
//! rmcp reads stdin itself and drops a line that is not JSON without a word (as the other
//! official SDKs do), so a client with a broken message waits until its own timeout. JSON-RPC
//! says such a message gets a parse error, and DESIGN.md says malformed messages get protocol
//! errors: a line filter in front of rmcp answers them (-32700, with the message's `id` when it
//! can still be read, else null; -32600 for a line over the size limit) and hands rmcp every
//! line that is JSON, unchanged, so that everything else stays rmcp's behaviour. The answers
//! and rmcp's own output are merged line by line onto stdout.

use std::sync::Arc;

use anyhow::Context as _;
use rmcp::ServiceExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::{ApprovalStates, StateKeys, TaskStore, WardenServer};
use crate::service::Service;

/// The longest line handed to rmcp, newline included: rmcp's own limit, which it enforces by
/// dropping longer lines silently.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// How long the end of a session waits for rmcp's last lines (it closes its output when its
/// service loop ends, so this is only a bound).
const FLUSH_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves MCP on stdin/stdout until the client disconnects.
pub async fn serve_stdio(service: Arc<Service>, keys: StateKeys) -> anyhow::Result<()> {
    let approvals = Arc::new(ApprovalStates::new(keys, service.counter_store())?);
    let tasks = TaskStore::new();
    let (to_rmcp, rmcp_input) = tokio::io::duplex(64 * 1024);
    let (rmcp_output, from_rmcp) = tokio::io::duplex(64 * 1024);
    let (lines_out, lines) = mpsc::channel::<Vec<u8>>(64);

    let (stdin, stdout) = super::std_streams::stdio();
    let filter = tokio::spawn(filter_input(stdin, to_rmcp, lines_out.clone()));
    let mut relay = tokio::spawn(relay_lines(from_rmcp, lines_out));
    let writer = tokio::spawn(write_lines(lines, stdout));

    let served = async {
        let session = WardenServer::new(service, approvals, tasks.clone())
            .serve((rmcp_input, rmcp_output))
            .await
            .context("starting the MCP session on stdio")?;
        session.waiting().await.context("serving MCP on stdio")?;
        anyhow::Ok(())
    }
    .await;
    // The session is over (stdin closed, or rmcp stopped): stop reading, then let every line
    // already produced reach stdout before the process exits.
    filter.abort();
    // The client is gone, and with it whoever could read the tasks' results.
    tasks.stop_all();
    if tokio::time::timeout(FLUSH_GRACE, &mut relay).await.is_err() {
        tracing::warn!("rmcp's output did not end after the session; not waiting for it");
        relay.abort();
    }
    let written = writer.await.context("the stdout writer task failed")?;
    served?;
    written.context("writing to stdout")
}

/// Copies JSON lines from `input` to rmcp and answers the others itself.
async fn filter_input<R: AsyncRead + Unpin>(
    input: R,
    mut to_rmcp: tokio::io::DuplexStream,
    replies: mpsc::Sender<Vec<u8>>,
) {
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut input)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut line)
            .await;
        match read {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::error!("reading stdin: {e}");
                return;
            }
        }
        if line.len() == MAX_LINE_BYTES && line.last() != Some(&b'\n') {
            let reply = oversized_line_reply(&line);
            if replies.send(reply).await.is_err() || !discard_rest_of_line(&mut input).await {
                return;
            }
            continue;
        }
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        let forwarded = match unparsable_line_reply(&line) {
            Some(reply) => replies.send(reply).await.is_ok(),
            None => to_rmcp.write_all(&line).await.is_ok(),
        };
        if !forwarded {
            return;
        }
    }
}

/// Skips input up to and including the next newline; false at the end of input or on error.
async fn discard_rest_of_line<R: AsyncRead + Unpin>(input: &mut BufReader<R>) -> bool {
    loop {
        let (consumed, done) = match input.fill_buf().await {
            Ok([]) | Err(_) => return false,
            Ok(buffer) => match buffer.iter().position(|b| *b == b'\n') {
                Some(at) => (at + 1, true),
                None => (buffer.len(), false),
            },
        };
        input.consume(consumed);
        if done {
            return true;
        }
    }
}

/// rmcp's output, one line at a time, to the writer.
async fn relay_lines(from_rmcp: tokio::io::DuplexStream, lines: mpsc::Sender<Vec<u8>>) {
    let mut from_rmcp = BufReader::new(from_rmcp);
    loop {
        let mut line = Vec::new();
        match from_rmcp.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if lines.send(line).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn write_lines<W: AsyncWrite + Unpin>(
    mut lines: mpsc::Receiver<Vec<u8>>,
    mut output: W,
) -> std::io::Result<()> {
    while let Some(line) = lines.recv().await {
        output.write_all(&line).await?;
        output.flush().await?;
    }
    Ok(())
}

/// The parse error answering `line`, or None when the line is JSON (rmcp's to handle) or
/// blank. The line is judged the way rmcp will read it: a UTF-8 byte-order mark and the
/// line end stripped, parsed into JSON values (so lone surrogates and nesting deeper than
/// serde_json's limit are errors here too).
fn unparsable_line_reply(line: &[u8]) -> Option<Vec<u8>> {
    let text = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let error = serde_json::from_slice::<Value>(text).err()?;
    Some(error_reply(
        top_level_id(text),
        -32700,
        &format!("Parse error: {error}"),
    ))
}

fn oversized_line_reply(prefix: &[u8]) -> Vec<u8> {
    error_reply(
        top_level_id(prefix),
        -32600,
        &format!(
            "Invalid Request: the message is longer than {} bytes",
            MAX_LINE_BYTES - 1
        ),
    )
}

fn error_reply(id: Value, code: i64, message: &str) -> Vec<u8> {
    let mut reply =
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
            .to_string()
            .into_bytes();
    reply.push(b'\n');
    reply
}

/// The `id` member of a JSON object that may be broken further on (truncated, nested too
/// deeply, with a bad escape somewhere): read without building the value, so depth costs
/// nothing. Null unless `id` is a number or a string seen in full at the top level.
fn top_level_id(text: &[u8]) -> Value {
    let mut scanner = Scanner { text, at: 0 };
    scanner.id().unwrap_or(Value::Null)
}

struct Scanner<'a> {
    text: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn id(&mut self) -> Option<Value> {
        self.skip_whitespace();
        self.expect(b'{')?;
        loop {
            self.skip_whitespace();
            let key_start = self.at;
            self.skip_string()?;
            let key = serde_json::from_slice::<String>(&self.text[key_start..self.at]).ok()?;
            self.skip_whitespace();
            self.expect(b':')?;
            self.skip_whitespace();
            let value_start = self.at;
            self.skip_value()?;
            if key == "id" {
                let value =
                    serde_json::from_slice::<Value>(&self.text[value_start..self.at]).ok()?;
                return (value.is_number() || value.is_string()).then_some(value);
            }
            self.skip_whitespace();
            self.expect(b',')?;
        }
    }

    fn skip_whitespace(&mut self) {
        while self.text.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.text.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// Past a string starting here, escapes included (not validated).
    fn skip_string(&mut self) -> Option<()> {
        self.expect(b'"')?;
        loop {
            match self.text.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
    }

    /// Past any value starting here, counting brackets instead of recursing.
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.text.get(self.at)? {
                b'"' => self.skip_string()?,
                b'{' | b'[' => {
                    depth += 1;
                    self.at += 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    self.at += 1;
                }
                b',' if depth == 0 => return Some(()),
                _ => self.at += 1,
            }
            if depth == 0 && matches!(self.text.get(self.at), None | Some(b',' | b'}')) {
                return Some(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(line: &str) -> Option<Value> {
        unparsable_line_reply(line.as_bytes())
            .map(|bytes| serde_json::from_slice(&bytes).expect("a reply is JSON"))
    }

    #[test]
    fn json_lines_go_to_rmcp_unanswered() {
        for line in [
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n",
            "\u{feff}{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\r\n",
            // Well-formed JSON of the wrong shape is rmcp's to refuse (it answers -32600).
            "{\"foo\": [1, 2]}\n",
            "42\n",
            "\n",
            "   \r\n",
        ] {
            assert_eq!(reply(line), None, "{line:?}");
        }
    }

    #[test]
    fn lines_that_are_not_json_get_a_parse_error_with_their_id_when_readable() {
        let deep = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\",\"params\":{}{}}}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let cases = [
            ("garbage\u{0}{\n", Value::Null),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"tools/call\",\"params\":{\n",
                json!(12),
            ),
            (
                "{\"id\":\"a\\\"b\",\"method\":\"x\",\"params\":{\"code\":\"'\\ud800'\"}}\n",
                json!("a\"b"),
            ),
            (deep.as_str(), json!(11)),
            (
                "{\"method\":\"x\",\"params\":[1,{\"id\":3}],\"id\":-7.5,}\n",
                json!(-7.5),
            ),
            // The id itself broken, or not a number or string: null.
            ("{\"id\":[1,\n", Value::Null),
            ("{\"id\":{\"x\":1},\"method\":}\n", Value::Null),
            ("[{\"id\":1},\n", Value::Null),
        ];
        for (line, id) in cases {
            let reply = reply(line).unwrap_or_else(|| panic!("no reply to {line:.60?}"));
            assert_eq!(reply["jsonrpc"], "2.0");
            assert_eq!(reply["id"], id, "{line:.60?}");
            assert_eq!(reply["error"]["code"], -32700, "{line:.60?}");
            let message = reply["error"]["message"].as_str().unwrap_or_default();
            assert!(message.starts_with("Parse error: "), "{message}");
        }
    }

    #[test]
    fn an_oversized_line_is_an_invalid_request_naming_the_limit() {
        let mut prefix =
            b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"x\":\""
                .to_vec();
        prefix.resize(4096, b'a');
        let reply: Value =
            serde_json::from_slice(&oversized_line_reply(&prefix)).expect("a reply is JSON");
        assert_eq!(reply["id"], 5);
        assert_eq!(reply["error"]["code"], -32600);
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("16777215 bytes"))
        );
    }
}
