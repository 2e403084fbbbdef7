//! The languages the contract names.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum Language {
    Javascript,
    Typescript,
    Python,
}

impl Language {
    /// Every language the contract names, in the order the tool lists them.
    pub const ALL: [Language; 3] = [Language::Javascript, Language::Typescript, Language::Python];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Javascript => "javascript",
            Language::Typescript => "typescript",
            Language::Python => "python",
        }
    }

    /// Exactly the contract's names (`"javascript"`, `"typescript"`, `"python"`).
    pub fn from_contract_name(name: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.as_str() == name)
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_names_round_trip() {
        for l in Language::ALL {
            assert_eq!(Language::from_contract_name(l.as_str()), Some(l));
        }
        assert_eq!(Language::from_contract_name("JavaScript"), None);
        assert_eq!(Language::from_contract_name("js"), None);
    }
}
