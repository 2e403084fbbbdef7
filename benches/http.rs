//! Streamable HTTP throughput and latency of `execute_code` `1+1` with 1, 8 and 32 concurrent
//! rmcp clients (2025-11-25 sessions) against the real binary. Not a criterion bench: what is
//! measured is a fixed number of calls spread over N clients, reported as calls/s with p50 and
//! p99 latency. `cargo bench --bench http`; results in docs/benchmarks.md.

use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

const CALLS_PER_LEVEL: usize = 4000;
const WARMUP_CALLS: usize = 200;

fn main() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--http", "127.0.0.1:0"])
        .env("WARDEN_LOG", "error")
        .stdout(std::process::Stdio::piped())
        // The server audits every call to stderr; keep that out of the bench's output.
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn warden");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("read the listening line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("| clients | calls | calls/s | p50 | p99 |");
    println!("|---:|---:|---:|---:|---:|");
    for clients in [1usize, 8, 32] {
        let (elapsed, mut latencies) = rt.block_on(level(&url, clients));
        latencies.sort();
        let pct =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        println!(
            "| {clients} | {} | {:.0} | {:.0} µs | {:.0} µs |",
            latencies.len(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e6,
            pct(0.99).as_secs_f64() * 1e6,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn level(url: &str, clients: usize) -> (Duration, Vec<Duration>) {
    let params = CallToolRequestParams::new("execute_code").with_arguments(
        serde_json::json!({"language": "javascript", "code": "1+1"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let mut connected = Vec::new();
    for _ in 0..clients {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(url.to_string()),
        );
        let client = ().serve(transport).await.expect("MCP handshake");
        for _ in 0..WARMUP_CALLS / clients {
            let r = client.call_tool(params.clone()).await.expect("call");
            assert_eq!(
                r.structured_content.as_ref().map(|s| s["result"].clone()),
                Some(serde_json::json!(2))
            );
        }
        connected.push(client);
    }
    let started = Instant::now();
    let tasks: Vec<_> = connected
        .into_iter()
        .map(|client| {
            let params = params.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(CALLS_PER_LEVEL / clients);
                for _ in 0..CALLS_PER_LEVEL / clients {
                    let t = Instant::now();
                    client.call_tool(params.clone()).await.expect("call");
                    latencies.push(t.elapsed());
                }
                let _ = client.cancel().await;
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    (started.elapsed(), latencies)
}
