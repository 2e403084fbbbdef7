//! What the fetch path needs from whoever holds the credentials (`crate::secrets` implements
//! it): put them into a request on its way out, and take their values out of whatever comes
//! back. Net knows no secret, placeholder syntax or encoding.

use std::borrow::Cow;

use url::Url;

/// One request on its way out, after its URL was parsed: the one shape a hop is checked,
/// given its credentials and sent in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Upper case.
    pub method: String,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A request with its credentials in place, and the names of the credentials it carries.
#[derive(Debug)]
pub struct WithCredentials {
    pub request: Request,
    pub used: Vec<String>,
}

pub trait CredentialBroker: Send + Sync {
    /// `request` (as the guest wrote it) with credentials in place. `allowed` narrows the
    /// credentials to a caller's (`None`: all); `carry` is false once a redirect changed the
    /// origin, and then no credential goes out. An `Err` refuses the request, saying why.
    fn apply(
        &self,
        request: &Request,
        allowed: Option<&[String]>,
        carry: bool,
    ) -> Result<WithCredentials, String>;

    /// `text` with every credential value (in the forms it commonly takes) replaced.
    fn redact(&self, text: &str) -> String;

    fn redact_bytes<'a>(&self, data: &'a [u8]) -> Cow<'a, [u8]>;

    /// As [`redact`](Self::redact), for text that was ASCII-lower-cased on its way here (HTTP
    /// header names, which hyper folds).
    fn redact_case_folded(&self, text: &str) -> String;

    /// Whether `text` refers to a credential (so it must not cross to another origin).
    fn refers_to_credential(&self, text: &str) -> bool;
}
