//! Bot users learned from webhooks.
//!
//! An audit event names its author by id and display name only, and a project or group
//! access token's bot is a `User` whose display name is whatever the token was called, so
//! the normalizer classifies it as a human (docs/gitlab-events.md §7: "bot-ness not in payload").
//! Job webhooks do carry the user's `username`, where GitLab's bot naming (`project_<id>_bot…`,
//! `group_<id>_bot…`, `service_account_…`) shows. Once a webhook has shown that user id N is a bot,
//! audit events authored by N are re-classified, so the token-lifecycle and unexpected-actor rules
//! see a bot.

use std::collections::VecDeque;

use crate::hashing::HashMap;

use crate::model::ActorKind;
use crate::normalize::actor::classify_actor;

/// More bot users than any GitLab instance has; the oldest learned is forgotten first.
pub const MAX_KNOWN_BOTS: usize = 100_000;

/// The kind GitLab's naming gives user `user_id` called `username`: a bot or service
/// account by its `project_<id>_bot…`-style name, else a human.
pub fn kind_from_username(user_id: i64, username: &str) -> ActorKind {
    classify_actor(user_id, "", Some(username), None)
}

#[derive(Debug, Default)]
pub struct KnownBots {
    kinds: HashMap<i64, ActorKind>,
    order: VecDeque<i64>,
}

impl KnownBots {
    /// Records `user_id` if `username` follows GitLab's bot or service-account naming.
    /// Returns whether it was new.
    pub fn learn(&mut self, user_id: i64, username: &str) -> bool {
        if user_id <= 0 {
            return false;
        }
        let kind = kind_from_username(user_id, username);
        if kind == ActorKind::Human || self.kinds.contains_key(&user_id) {
            return false;
        }
        if self.kinds.len() >= MAX_KNOWN_BOTS
            && let Some(oldest) = self.order.pop_front()
        {
            self.kinds.remove(&oldest);
        }
        self.kinds.insert(user_id, kind);
        self.order.push_back(user_id);
        true
    }

    /// The kind of author `author_id`, given what the event itself said. Only a plain
    /// "human" (a positive id with no stronger evidence) is overridden.
    pub fn refine(&self, author_id: i64, kind: ActorKind) -> ActorKind {
        if kind != ActorKind::Human {
            return kind;
        }
        self.kinds.get(&author_id).copied().unwrap_or(kind)
    }

    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_bots_from_usernames_and_reclassifies_their_authors() {
        let mut bots = KnownBots::default();
        assert!(bots.learn(90_011, "project_42_bot_3f2a9c"));
        assert!(bots.learn(90_022, "group_7_bot"));
        assert!(bots.learn(90_033, "service_account_group_7_a1b2"));
        assert!(!bots.learn(17, "alice"), "humans are not remembered");
        assert!(
            !bots.learn(90_011, "project_42_bot_3f2a9c"),
            "already known"
        );
        assert_eq!(bots.len(), 3);

        assert_eq!(bots.refine(90_011, ActorKind::Human), ActorKind::ProjectBot);
        assert_eq!(bots.refine(90_022, ActorKind::Human), ActorKind::GroupBot);
        assert_eq!(
            bots.refine(90_033, ActorKind::Human),
            ActorKind::ServiceAccount
        );
        assert_eq!(bots.refine(17, ActorKind::Human), ActorKind::Human);
        // Stronger evidence in the event itself is kept.
        assert_eq!(
            bots.refine(90_011, ActorKind::DeployToken),
            ActorKind::DeployToken
        );
    }

    #[test]
    fn forgets_the_oldest_bot_beyond_the_cap() {
        let mut bots = KnownBots::default();
        for id in 1..=(MAX_KNOWN_BOTS as i64 + 1) {
            bots.learn(id, &format!("project_{id}_bot"));
        }
        assert_eq!(bots.len(), MAX_KNOWN_BOTS);
        assert_eq!(bots.refine(1, ActorKind::Human), ActorKind::Human);
        assert_eq!(bots.refine(2, ActorKind::Human), ActorKind::ProjectBot);
    }
}
