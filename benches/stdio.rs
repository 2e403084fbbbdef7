//! MCP stdio round trip of `execute_code` `1+1`, measured from an rmcp client driving the real
//! binary. `cargo bench --bench stdio`; results in docs/benchmarks.md.

use criterion::{Criterion, criterion_group, criterion_main};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};

fn round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = rt.block_on(async {
        let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden")).configure(|cmd| {
            cmd.arg("serve").env("WARDEN_LOG", "warn");
        });
        // The server audits every call to stderr; keep that out of the bench's output.
        let (transport, _) = TokioChildProcess::builder(command)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn warden");
        ().serve(transport).await.expect("MCP handshake")
    });
    let params = CallToolRequestParams::new("execute_code").with_arguments(
        serde_json::json!({"language": "javascript", "code": "1+1"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let check = rt.block_on(client.call_tool(params.clone())).expect("call");
    assert_eq!(
        check
            .structured_content
            .as_ref()
            .map(|s| s["result"].clone()),
        Some(serde_json::json!(2))
    );

    c.bench_function("stdio_round_trip/execute_code 1+1", |b| {
        b.iter(|| rt.block_on(client.call_tool(params.clone())).expect("call"))
    });
    let _ = rt.block_on(client.cancel());
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
