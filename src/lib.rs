//! Warden: an MCP `execute_code` server that runs untrusted JavaScript, TypeScript and Python
//! in a fresh wasmtime sandbox per call, with its limits and policy inside.
//!
//! Modules, in the order their dependencies point (DESIGN.md has the graph; `make lint`
//! checks it): [`contract`] (the tool's arguments and result) ; [`metrics`], [`audit`],
//! [`sandbox`] and [`runtimes`] ; [`net`] (allowlist, blocked networks, the client) ;
//! [`secrets`] (credentials behind net's trait) ; [`policy`] (document, grants, engine) ;
//! [`auth`] (callers' tokens) ; [`counters`] (where rate-limit counters live: SQLite, Redis) ; [`service`] (the pipeline: decide -> approve -> admit -> run) ;
//! [`mcp`] (the transports and the approval UX). [`workspace`] (files under quotas, through
//! cap-std) is a leaf.

pub mod audit;
pub mod auth;
pub mod contract;
pub mod counters;
pub mod mcp;
pub mod metrics;
pub mod net;
pub mod policy;
pub mod runtimes;
pub mod sandbox;
pub mod secrets;
pub mod service;
pub mod upstream;
pub mod workspace;
