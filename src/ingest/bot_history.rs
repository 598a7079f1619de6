//! Restores the known bot users from the stored job webhooks at start-up, so audit events by
//! bots are classified the same after a restart (a replayed token-lifecycle event must raise
//! the same alert as before).

use serde::Deserialize;

use crate::correlate::actors::{KnownBots, MAX_KNOWN_BOTS};
use crate::store::read::{ReadError, classify_read};
use crate::store::tables::quote_ident;

#[derive(clickhouse::Row, Deserialize)]
struct UserRow {
    user_id: Option<i64>,
    bot_username: Option<String>,
}

/// Learns every bot-named user of the `jobs` table; returns how many were learned.
pub async fn restore(
    client: &clickhouse::Client,
    database: &str,
    bots: &mut KnownBots,
) -> Result<usize, ReadError> {
    // A coarse filter; `KnownBots::learn` applies GitLab's exact naming rules.
    let sql = format!(
        "SELECT user_id, any(username) AS bot_username FROM {}.jobs \
         WHERE user_id > 0 AND (username LIKE '%bot%' OR username LIKE 'service%') \
         GROUP BY user_id ORDER BY max(updated_at_ms) DESC LIMIT {MAX_KNOWN_BOTS}",
        quote_ident(database)
    );
    let rows: Vec<UserRow> = client
        .query_raw(&sql)
        .fetch_all()
        .await
        .map_err(|e| classify_read(&e))?;
    let mut learned = 0;
    // Oldest first, so the cap forgets the same users it would have forgotten live.
    for row in rows.into_iter().rev() {
        if let (Some(id), Some(name)) = (row.user_id, row.bot_username)
            && bots.learn(id, &name)
        {
            learned += 1;
        }
    }
    Ok(learned)
}
