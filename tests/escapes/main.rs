//! The adversarial suite: every escape, exfiltration and exhaustion attempt we know of, one
//! table per category. Each case names what it tries and what must hold; each category's test
//! runs its table against one environment, reports every failing case by name, and checks that
//! the next request is unaffected. Cases that demonstrate a known, unfixed bug are kept in the
//! tables and run by the ignored `*_known_bugs` tests.
//!
//! `cargo test --release --test escapes -- --nocapture suite_has` prints the per-category counts.

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod arguments;
mod cancellation;
mod cpu;
mod credentials;
mod filesystem;
mod gateway;
mod host_bridge;
mod introspection;
mod memory;
mod network;
mod output;
mod packages;
mod ssrf;
mod stack;
mod state;
mod tasks;
mod tools;
mod workspace;

use harness::Ports;

/// Every category with its table (the ports do not matter for counting).
fn tables() -> Vec<(&'static str, Vec<harness::Case>)> {
    let p = Ports::default();
    vec![
        ("filesystem and environment", filesystem::cases(&p)),
        ("sockets and raw network", network::cases(&p)),
        ("SSRF and allowlist bypasses", ssrf::cases(&p)),
        ("credential exfiltration", credentials::cases(&p)),
        (
            "CPU exhaustion",
            cpu::cases(&p)
                .into_iter()
                .chain(cpu::deadline_cases(&p))
                .collect(),
        ),
        ("memory exhaustion", memory::cases(&p)),
        ("stack exhaustion", stack::cases(&p)),
        ("output floods", output::cases(&p)),
        ("huge and malformed arguments", arguments::cases(&p)),
        ("host-bridge abuse", host_bridge::cases(&p)),
        ("introspection escapes", introspection::cases(&p)),
        ("timing of cancellation", cancellation::cases(&p)),
        ("gateway policy bypasses", gateway::cases(&p)),
        ("workspace and sessions", workspace::cases(&p)),
        ("tools from code", tools::cases(&p)),
        ("counter store", state::cases(&p)),
        ("python packages", packages::cases(&p)),
        ("tasks", tasks::cases(&p)),
    ]
}

#[test]
fn suite_has_at_least_100_cases() {
    let tables = tables();
    let mut total = 0;
    let mut bugs = 0;
    println!("| category | cases | known bugs |\n|---|---:|---:|");
    for (category, cases) in &tables {
        let known = cases.iter().filter(|c| c.bug.is_some()).count();
        println!("| {category} | {} | {known} |", cases.len());
        total += cases.len();
        bugs += known;
        let mut names = std::collections::HashSet::new();
        for case in cases {
            assert!(
                !case.must.is_empty(),
                "{category}: {} says nothing about what must hold",
                case.name
            );
            assert!(
                names.insert(case.name.clone()),
                "{category}: duplicate case {}",
                case.name
            );
        }
    }
    println!("| **total** | **{total}** | **{bugs}** |");
    assert!(total >= 100, "the suite has only {total} cases");
}
