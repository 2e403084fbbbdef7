//! Newline-delimited JSON-RPC on a pair of byte streams, as rmcp's `Transport` (the stdio
//! transport's framing).
//!
//! rmcp's own stream transport drops a line that is not JSON without a word (as the other
//! official SDKs do), so a client with a broken message would wait until its own timeout.
//! JSON-RPC says such a message gets a parse error, and DESIGN.md says malformed messages get
//! protocol errors: a line that is not JSON is answered with -32700 (with the message's `id`
//! when it can still be read, else null), a line over the size limit with -32600, JSON that is
//! not a message of the protocol with -32600, and a notification the server cannot read is
//! dropped, as JSON-RPC asks. Every other line is parsed once and handed to rmcp.
//!
//! Each message is read, parsed and written on the task that handles it: a stdio round trip
//! crosses no relay task or in-memory pipe (docs/benchmarks.md, issue 16).

use std::future::Future;
use std::sync::Arc;

use rmcp::service::{RoleServer, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

/// The longest line read as a message, newline included (rmcp's own limit).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// The line buffer's capacity kept between messages: one large message (code or files near
/// the limit) must not leave megabytes allocated for the rest of the connection.
const KEPT_LINE_CAPACITY: usize = 64 * 1024;

pub struct LineTransport<R, W> {
    input: BufReader<R>,
    /// The line being read. It lives here, not in `receive`, because rmcp polls `receive` in a
    /// `select!` and drops it whenever something else is ready: the next call resumes the line.
    line: Vec<u8>,
    /// Set while the rest of an oversized line is skipped (for the same reason).
    discarding: bool,
    output: Output<W>,
    /// Error replies being written; `close` waits for them.
    replies: JoinSet<()>,
}

enum Read {
    Line,
    /// The line is over the limit; `line` holds its first [`MAX_LINE_BYTES`].
    Oversized,
    End,
}

enum Judged {
    Message(Box<RxJsonRpcMessage<RoleServer>>),
    Reply(Vec<u8>),
    Skip,
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    pub fn new(input: R, output: W) -> Self {
        Self {
            input: BufReader::new(input),
            line: Vec::new(),
            discarding: false,
            output: Output(Arc::new(Mutex::new(Some(output)))),
            replies: JoinSet::new(),
        }
    }

    /// Reads up to the next newline into `line`, never holding more than the limit.
    /// Cancel-safe: nothing is consumed from the input that is not in `line` already.
    async fn read_line(&mut self) -> std::io::Result<Read> {
        loop {
            let available = self.input.fill_buf().await?;
            if available.is_empty() {
                // A last line without its newline is still a message.
                let pending = !self.line.is_empty() && !self.discarding;
                return Ok(if pending { Read::Line } else { Read::End });
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |at| at + 1);
            if self.discarding {
                self.input.consume(take);
                self.discarding = newline.is_none();
                continue;
            }
            let room = MAX_LINE_BYTES - self.line.len();
            if take > room {
                self.line.extend_from_slice(&available[..room]);
                self.input.consume(room);
                self.discarding = true;
                return Ok(Read::Oversized);
            }
            self.line.extend_from_slice(&available[..take]);
            self.input.consume(take);
            if newline.is_some() {
                return Ok(Read::Line);
            }
        }
    }
}

impl<R, W> Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let line = serde_json::to_vec(&item).map(|mut line| {
            line.push(b'\n');
            line
        });
        let output = self.output.clone();
        async move { output.write_line(line?).await }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            while self.replies.try_join_next().is_some() {}
            let judged = match self.read_line().await {
                Ok(Read::Line) => judge(&self.line),
                Ok(Read::Oversized) => Judged::Reply(oversized_line_reply(&self.line)),
                Ok(Read::End) => return None,
                Err(e) => {
                    tracing::error!("reading the transport's input: {e}");
                    return None;
                }
            };
            self.line.clear();
            self.line.shrink_to(KEPT_LINE_CAPACITY);
            match judged {
                Judged::Message(message) => return Some(*message),
                Judged::Skip => {}
                Judged::Reply(reply) => {
                    let written = self.output.write_line(reply);
                    self.replies.spawn(async move {
                        if let Err(e) = written.await {
                            tracing::debug!("answering a malformed message: {e}");
                        }
                    });
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        while self.replies.join_next().await.is_some() {}
        let mut output = self.output.0.lock().await;
        match output.take() {
            Some(mut writer) => writer.flush().await,
            None => Ok(()),
        }
    }
}

/// The output, shared by every message being sent; a line is written whole under the lock.
struct Output<W>(Arc<Mutex<Option<W>>>);

impl<W> Clone for Output<W> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<W: AsyncWrite + Send + Unpin + 'static> Output<W> {
    fn write_line(
        &self,
        line: Vec<u8>,
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
        let output = self.0.clone();
        async move {
            let mut output = output.lock().await;
            let Some(writer) = output.as_mut() else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "the transport is closed",
                ));
            };
            writer.write_all(&line).await?;
            writer.flush().await
        }
    }
}

/// What to do with a line: a UTF-8 byte-order mark and the line end stripped, it is a message,
/// or an error to answer, or nothing (blank, or a notification the server cannot read).
fn judge(line: &[u8]) -> Judged {
    let text = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Judged::Skip;
    }
    let not_a_message = match serde_json::from_slice::<RxJsonRpcMessage<RoleServer>>(text) {
        Ok(message) => return Judged::Message(Box::new(message)),
        Err(e) => e,
    };
    // Read again as plain JSON (only on this error path) to tell broken JSON from a message
    // of the wrong shape; lone surrogates and nesting deeper than serde_json's limit fail here.
    match serde_json::from_slice::<Value>(text) {
        Err(e) => Judged::Reply(error_reply(
            top_level_id(text),
            -32700,
            &format!("Parse error: {e}"),
        )),
        // Neither a notification nor a response is ever answered: a reply to a broken reply
        // could start two peers feeding each other errors.
        Ok(value) if is_notification(&value) || is_response(&value) => Judged::Skip,
        Ok(value) => Judged::Reply(error_reply(
            value
                .get("id")
                .filter(|id| id.is_number() || id.is_string())
                .cloned()
                .unwrap_or(Value::Null),
            -32600,
            &format!("Invalid Request: {not_a_message}"),
        )),
    }
}

fn is_notification(value: &Value) -> bool {
    value.get("id").is_none() && value.get("method").is_some_and(Value::is_string)
}

fn is_response(value: &Value) -> bool {
    value.get("method").is_none() && (value.get("result").is_some() || value.get("error").is_some())
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
        match judge(line.as_bytes()) {
            Judged::Reply(bytes) => Some(serde_json::from_slice(&bytes).expect("a reply is JSON")),
            Judged::Message(_) | Judged::Skip => None,
        }
    }

    #[test]
    fn messages_blank_lines_and_unreadable_notifications_are_not_answered() {
        for line in [
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n",
            "\u{feff}{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\r\n",
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\",\"params\":7}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":\"x\"}}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{}}\n",
            "\n",
            "   \r\n",
        ] {
            assert_eq!(reply(line), None, "{line:?}");
        }
        assert!(matches!(
            judge(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"),
            Judged::Message(_)
        ));
    }

    #[test]
    fn json_that_is_not_a_message_is_an_invalid_request() {
        for (line, id) in [
            ("{\"foo\": [1, 2]}\n", Value::Null),
            ("42\n", Value::Null),
            ("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":42}\n", json!(7)),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"params\":{}}\n",
                json!("q"),
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"ping\"}\n",
                Value::Null,
            ),
        ] {
            let reply = reply(line).unwrap_or_else(|| panic!("no reply to {line:?}"));
            assert_eq!(reply["id"], id, "{line:?}");
            assert_eq!(reply["error"]["code"], -32600, "{line:?}");
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

    /// The transport as rmcp drives it: messages in order, each malformed line answered on the
    /// output, an oversized line skipped to its end, and a line split across reads (and across
    /// a dropped `receive`) read whole.
    #[tokio::test]
    async fn the_transport_answers_bad_lines_and_hands_on_the_rest() {
        let (mut client, server_input) = tokio::io::duplex(1 << 16);
        let (server_output, mut client_output) = tokio::io::duplex(1 << 20);
        let mut transport = LineTransport::new(server_input, server_output);
        let writer = tokio::spawn(async move {
            let mut oversized =
                b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\",\"x\":\"".to_vec();
            oversized.resize(MAX_LINE_BYTES + 10, b'a');
            oversized.extend_from_slice(b"\"}\n");
            for chunk in [
                &b"{\"jsonrpc\":\"2.0\",\"id\":1,"[..],
                b"\"method\":\"ping\"}\nnot json\n",
                &oversized,
                b"\n{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}",
            ] {
                client.write_all(chunk).await.expect("writing");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        // A receive dropped halfway through the first line (rmcp's select! does this).
        let first =
            tokio::time::timeout(std::time::Duration::from_millis(1), transport.receive()).await;
        let first = match first {
            Ok(message) => message,
            Err(_) => transport.receive().await,
        };
        let ping_id = |message: Option<RxJsonRpcMessage<RoleServer>>| match message {
            Some(rmcp::model::JsonRpcMessage::Request(request)) => request.id.to_string(),
            other => panic!("expected a request, got {other:?}"),
        };
        assert_eq!(ping_id(first), "1");
        // The last line has no newline: the end of input completes it.
        assert_eq!(ping_id(transport.receive().await), "4");
        assert!(transport.receive().await.is_none());
        writer.await.expect("the writer");
        transport.close().await.expect("closing");
        let mut replies = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut client_output, &mut replies)
            .await
            .expect("reading the replies");
        let replies: Vec<Value> = replies
            .lines()
            .map(|line| serde_json::from_str(line).expect("a reply is JSON"))
            .collect();
        let codes: Vec<(Value, Value)> = replies
            .iter()
            .map(|r| (r["id"].clone(), r["error"]["code"].clone()))
            .collect();
        assert_eq!(
            codes,
            [(Value::Null, json!(-32700)), (json!(3), json!(-32600))]
        );
    }

    #[tokio::test]
    async fn a_large_message_does_not_leave_its_buffer_behind() {
        let (mut client, server_input) = tokio::io::duplex(1 << 16);
        let mut transport = LineTransport::new(server_input, tokio::io::sink());
        let mut large = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"".to_vec();
        large.resize(4 * 1024 * 1024, b'a');
        large.extend_from_slice(b"\"}\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n");
        let writer = tokio::spawn(async move { client.write_all(&large).await });
        for _ in 0..2 {
            assert!(matches!(
                transport.receive().await,
                Some(rmcp::model::JsonRpcMessage::Request(_))
            ));
            assert!(
                transport.line.capacity() <= KEPT_LINE_CAPACITY,
                "{} bytes kept",
                transport.line.capacity()
            );
        }
        writer.await.expect("the writer").expect("writing");
    }
}
