//! The `[network]`, `[credentials]` and `[grants]` sections: parsing, round trips, and errors
//! located at their line and column.

use super::*;

const GOOD: &str = r#"
[network]
allow = [
  "https://api.github.com",
  { url = "https://api.example.com/v1/", methods = ["GET", "post"] },
  "http://127.0.0.1:8000-8100",
]
max_fetches = 10

[credentials.github]
env = "GITHUB_TOKEN"
hosts = ["https://api.github.com"]
inject = { header = "Authorization", value = "Bearer {secret}" }

[credentials.example-key]
file = "/run/secrets/example"
hosts = ["https://api.example.com"]

[grants.ci]
token_env = "WARDEN_TOKEN_CI"
languages = ["typescript"]
credentials = ["github"]
hosts = ["https://api.github.com"]
max_concurrent_runs = 2
limits = { fuel = 1000000, default_timeout_ms = 1000 }

[grants.bot]
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

[grants.local]
languages = ["javascript"]
"#;

#[test]
fn a_full_document_parses_and_round_trips() {
    let p = Policy::parse(GOOD, "p.toml").unwrap();
    assert_eq!(p.network.allow.len(), 3);
    assert_eq!(p.network.max_fetches, 10);
    assert_eq!(p.network.max_redirects, 5, "defaults fill the rest");
    assert_eq!(
        p.network.allow[1].methods(),
        Some(&["GET".to_string(), "POST".to_string()][..])
    );
    let github = &p.credentials["github"];
    assert_eq!(github.env.as_deref(), Some("GITHUB_TOKEN"));
    assert_eq!(github.inject.as_ref().unwrap().value, "Bearer {secret}");
    assert_eq!(p.credentials["example-key"].inject, None);
    let ci = &p.grants["ci"];
    assert_eq!(ci.limits.fuel, Some(1_000_000));
    let narrowed = ci.limits.narrow(&p.limits);
    assert_eq!(narrowed.fuel, 1_000_000);
    assert_eq!(narrowed.memory_bytes, p.limits.memory_bytes);
    let normalized = p.to_normalized_toml().unwrap();
    assert_eq!(Policy::parse(&normalized, "n").unwrap(), p, "{normalized}");
}

#[test]
fn the_redacted_form_hides_token_hashes_and_names_sources() {
    let p = Policy::parse(GOOD, "p.toml").unwrap();
    let shown = p.to_redacted_toml().unwrap();
    assert!(!shown.contains("9f86d081"), "{shown}");
    assert!(shown.contains("<redacted>"));
    assert!(shown.contains("GITHUB_TOKEN"));
    assert!(shown.contains("/run/secrets/example"));
}

#[test]
fn bad_sections_say_where_and_what() {
    let cases = [
        // Rule grammar errors are reported at the rule.
        (
            "[network]\nallow = [\"ftp://x.example\"]\n",
            "line 2, column 10",
        ),
        (
            "[network]\nallow = [\"ftp://x.example\"]\n",
            "scheme \"ftp\" is not supported",
        ),
        (
            "[network]\nallow = [{ url = \"https://x.example\", verbs = [\"GET\"] }]\n",
            "unknown field `verbs`",
        ),
        (
            "[network]\nallow = [{ url = \"https://x.example\", methods = [] }]\n",
            "`methods` is empty",
        ),
        ("[network]\nallow = [3]\n", "a rule such as"),
        (
            "[network]\nmax_redirects = 50\n",
            "max_redirects may not exceed 20",
        ),
        ("[network]\nfetch_timeout_ms = 0\n", "greater than 0"),
        ("[network]\nproxy = \"x\"\n", "unknown field `proxy`"),
        (
            "[credentials.gh]\nhosts = [\"https://a.example\"]\n",
            "exactly one source",
        ),
        (
            "[credentials.gh]\nenv = \"A\"\nfile = \"/f\"\nhosts = [\"https://a.example\"]\n",
            "exactly one source",
        ),
        (
            "[credentials.gh]\nvalue = \"hunter2\"\nhosts = []\n",
            "unknown field `value`",
        ),
        (
            "[credentials.gh]\nenv = \"GH TOKEN\"\nhosts = [\"https://a.example\"]\n",
            "not an environment variable name",
        ),
        (
            "[credentials.gh]\nenv = \"A\"\nhosts = []\n",
            "`hosts` is empty",
        ),
        (
            "[credentials.GitHub]\nenv = \"A\"\nhosts = [\"https://a.example\"]\n",
            "a credential name uses",
        ),
        (
            "[credentials.a__b]\nenv = \"A\"\nhosts = [\"https://a.example\"]\n",
            "a credential name uses",
        ),
        (
            "[credentials.gh]\nenv = \"A\"\nhosts = [\"https://a.example\"]\ninject = { header = \"Host\" }\n",
            "the host controls the Host header",
        ),
        (
            "[credentials.gh]\nenv = \"A\"\nhosts = [\"https://a.example\"]\ninject = { header = \"Auth orization\" }\n",
            "is not a header name",
        ),
        (
            "[credentials.gh]\nenv = \"A\"\nhosts = [\"https://a.example\"]\ninject = { header = \"X-Key\", value = \"Bearer\" }\n",
            "exactly once",
        ),
        (
            "[credentials.gh]\nenv = \"A\"\nhosts = [\"https://a.example\"]\ninject = { header = \"X-Key\", value = \"{secret}\\r\\nX: {secret}\" }\n",
            "exactly once",
        ),
        (
            "[credentials.gh]\nenv = \"A\"\nhosts = [\"https://a.example\"]\ninject = { header = \"X-Key\", value = \"{secret}\\r\\n\" }\n",
            "control character",
        ),
        (
            "[grants.ci]\nlanguages = [\"javascript\"]\n",
            "exactly one of token_env",
        ),
        (
            "[grants.ci]\ntoken_env = \"A\"\ntoken_sha256 = \"00\"\n",
            "exactly one of token_env",
        ),
        (
            "[grants.ci]\ntoken_sha256 = \"abc\"\n",
            "64 hexadecimal digits",
        ),
        ("[grants.ci]\ntoken = \"s3cret\"\n", "unknown field `token`"),
        (
            "[grants.ci]\ntoken_env = \"A\"\nlanguages = [\"ruby\"]\n",
            "unknown language \"ruby\"",
        ),
        (
            "[grants.ci]\ntoken_env = \"A\"\ncredentials = [\"nope\"]\n",
            "no credential named \"nope\"",
        ),
        (
            "[grants.ci]\ntoken_env = \"A\"\nlimits = { fuel = 99999999999999 }\n",
            "a grant can only narrow",
        ),
        (
            "[grants.ci]\ntoken_env = \"A\"\nlimits = { wasm_stack_bytes = 1 }\n",
            "unknown field `wasm_stack_bytes`",
        ),
        (
            "[grants.ci]\ntoken_env = \"A\"\nlimits = { fuel = 0 }\n",
            "greater than 0",
        ),
        (
            "[grants.ci]\ntoken_env = \"A\"\nmax_concurrent_runs = 0\n",
            "greater than 0",
        ),
        (
            "[grants.ci]\ntoken_env = \"A\"\nhosts = [\"https://*.*\"]\n",
            "`*` may only be",
        ),
        ("[grants.local]\ntoken_env = \"A\"\n", "has no token"),
        ("[grants.\"a b\"]\ntoken_env = \"A\"\n", "a grant name uses"),
    ];
    for (doc, needle) in cases {
        let e = Policy::parse(doc, "p.toml").unwrap_err().to_string();
        assert!(e.contains(needle), "{doc:?}: {e}");
        assert!(e.contains("p.toml"), "{e}");
    }
}
