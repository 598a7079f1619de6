//! The built-in rules' identities. A leaf: settings, rules and the engine all name rules by
//! it, and it names nothing.

/// Declares [`RuleId`] with its names from one list, so the `rule` column, the metric label
/// and the settings keys cannot drift apart.
macro_rules! rule_ids {
    ($($id:ident => $name:literal),* $(,)?) => {
        /// The built-in rules; `as_str` is the `rule` column, the metric label and the
        /// `[alerting.rules.<name>]` table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RuleId {
            $($id),*
        }

        impl RuleId {
            pub const ALL: [RuleId; [$($name),*].len()] = [$(RuleId::$id),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(RuleId::$id => $name),*
                }
            }

            /// The settings key of the rule's exceptions, for validation errors.
            pub fn exceptions_key(self) -> &'static str {
                match self {
                    $(RuleId::$id => concat!("alerting.rules.", $name, ".exceptions")),*
                }
            }
        }
    };
}

rule_ids! {
    NotAllowlisted => "not_allowlisted",
    AllowlistWeakened => "allowlist_weakened",
    NewEdge => "new_edge",
    Push => "push",
    CrownJewel => "crown_jewel",
    UnexpectedActor => "unexpected_actor",
    TokenLifecycle => "token_lifecycle",
    AllowlistDrift => "allowlist_drift",
    CoverageGap => "coverage_gap",
}
