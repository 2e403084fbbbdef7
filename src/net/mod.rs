//! The one door out: the allowlist grammar and its matching ([`allowlist`]), the networks no
//! fetch may reach without a rule naming them ([`blocked`]).

pub mod allowlist;
pub mod blocked;
pub mod fetch;

pub use allowlist::{AllowList, AllowRule, Refusal};
pub use blocked::{blocked_range, check_address};
pub use fetch::{FetchAudit, Outbound, RunFetcher};
