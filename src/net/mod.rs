//! The one door out. The allowlist grammar and its matching ([`allowlist`], a pure leaf), the
//! networks no fetch may reach without a rule naming them ([`blocked`]), the `[network]`
//! settings ([`config`]), the headers the host keeps ([`headers`]), the client ([`client`])
//! and a run's fetch with its hop loop ([`fetch`]). Credentials come in through the
//! [`CredentialBroker`] trait this module defines; it knows no secret.

pub mod allowlist;
pub mod blocked;
mod client;
pub mod config;
mod credentials;
mod fetch;
pub mod headers;

pub use allowlist::{AllowList, AllowRule, Refusal};
pub use blocked::{blocked_range, check_address};
pub use client::Outbound;
pub use config::{InvalidSetting, NetworkPolicy};
pub use credentials::{CredentialBroker, Request, WithCredentials};
pub use fetch::{FetchAudit, FetchError, Narrowing, RunFetcher};
