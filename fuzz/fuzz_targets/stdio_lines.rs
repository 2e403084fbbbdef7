//! Warden's stdio framing (src/mcp/line_transport.rs) under arbitrary bytes, delivered in
//! arbitrary chunks while the transport is being read, as a client's pipe delivers them.
//!
//! Asserts:
//! - nothing panics, and the transport ends when the input does;
//! - every line that is a JSON-RPC message of the protocol is handed on, once, in order (no
//!   line is lost, merged with its neighbour or split, whatever the chunking);
//! - everything the transport writes back is, line by line, a JSON-RPC error object with code
//!   -32700 or -32600 and an id that is null, a number or a string; never more answers than
//!   lines.

#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rmcp::service::{RoleServer, RxJsonRpcMessage};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warden::mcp::LineTransport;

#[derive(Debug, Arbitrary)]
struct Input {
    /// Lines, each written with its newline (or, for the last, maybe without one).
    lines: Vec<Line>,
    last_without_newline: bool,
    /// Where the byte stream is cut into writes.
    cuts: Vec<u16>,
}

#[derive(Debug, Arbitrary)]
enum Line {
    Raw(Vec<u8>),
    Ping { id: i64, bom: bool, crlf: bool },
    Text(String),
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
});

fuzz_target!(|input: Input| {
    let mut bytes = Vec::new();
    let mut lines = Vec::new();
    for (index, line) in input.lines.iter().enumerate() {
        let mut text = match line {
            Line::Raw(raw) => raw.clone(),
            Line::Text(text) => text.clone().into_bytes(),
            Line::Ping { id, bom, crlf } => {
                let mut text = if *bom {
                    b"\xEF\xBB\xBF".to_vec()
                } else {
                    Vec::new()
                };
                text.extend(format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#).bytes());
                if *crlf {
                    text.push(b'\r');
                }
                text
            }
        };
        // A line is what lies between newlines.
        text.retain(|b| *b != b'\n');
        bytes.extend_from_slice(&text);
        let last = index + 1 == input.lines.len();
        if !(last && input.last_without_newline) {
            bytes.push(b'\n');
        }
        lines.push(text);
    }
    let expected: Vec<Value> = lines.iter().filter_map(|line| as_message(line)).collect();

    let (received, replies) = RUNTIME.block_on(async {
        let (mut client, server_input) = tokio::io::duplex(4096);
        let (server_output, mut client_output) = tokio::io::duplex(1 << 20);
        let mut transport = LineTransport::new(server_input, server_output);
        let mut cuts: Vec<usize> = input
            .cuts
            .iter()
            .map(|c| usize::from(*c) % (bytes.len() + 1))
            .collect();
        cuts.sort_unstable();
        let writer = async move {
            let mut from = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                if cut > from {
                    client.write_all(&bytes[from..cut]).await.expect("writing");
                    from = cut;
                }
                tokio::task::yield_now().await;
            }
        };
        let reader = async {
            let mut received = Vec::new();
            while let Some(message) = rmcp::transport::Transport::receive(&mut transport).await {
                received.push(serde_json::to_value(&message).expect("a message serializes"));
            }
            rmcp::transport::Transport::close(&mut transport)
                .await
                .expect("closing");
            received
        };
        // Read while the transport writes: `close` waits for every answer to be written.
        let output = async move {
            let mut replies = String::new();
            client_output
                .read_to_string(&mut replies)
                .await
                .expect("the replies are UTF-8");
            replies
        };
        let ((), received, replies) = tokio::join!(writer, reader, output);
        (received, replies)
    });

    assert_eq!(received, expected, "messages lost, merged or split");
    let mut answered = 0;
    for reply in replies.lines() {
        let reply: Value = serde_json::from_str(reply).expect("a reply is JSON");
        assert_eq!(reply["jsonrpc"], "2.0", "{reply}");
        assert!(reply.get("result").is_none(), "{reply}");
        let code = reply["error"]["code"].as_i64();
        assert!(matches!(code, Some(-32700 | -32600)), "{reply}");
        let id = &reply["id"];
        assert!(id.is_null() || id.is_number() || id.is_string(), "{reply}");
        answered += 1;
    }
    assert!(answered + expected.len() <= lines.len().max(1));
});

/// The line as rmcp would receive it, if it is a message (read the way the transport reads:
/// byte-order mark and carriage return stripped).
fn as_message(line: &[u8]) -> Option<Value> {
    let text = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    let message = serde_json::from_slice::<RxJsonRpcMessage<RoleServer>>(text).ok()?;
    serde_json::to_value(&message).ok()
}
