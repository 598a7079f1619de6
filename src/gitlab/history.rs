//! What tokentrail's history says of the allowlists a sync reads: `allowlist_state` and
//! `allowlist_inbound` (schemas/clickhouse/0010), keyed by protected project id.

use std::collections::HashMap;

use serde::Deserialize;

use super::api::MemberKind;
use super::snapshot::{Known, KnownEntry};
use crate::store::read::{ReadError, classify_read};
use crate::store::tables::quote_ident;

#[derive(clickhouse::Row, Deserialize)]
struct EntryRow {
    protected_project_id: Option<i64>,
    member_type: String,
    member_id: Option<i64>,
    member_path: String,
    present: u8,
    policies: Vec<String>,
    default_permissions: Option<u8>,
}

#[derive(clickhouse::Row, Deserialize)]
struct InboundRow {
    protected_project_id: Option<i64>,
    inbound_enabled: u8,
}

/// The history of every protected project named by id.
pub async fn load(
    client: &clickhouse::Client,
    database: &str,
) -> Result<HashMap<i64, Known>, ReadError> {
    let db = quote_ident(database);
    let entries: Vec<EntryRow> = client
        .query_raw(&format!(
            "SELECT protected_project_id, member_type, member_id, ifNull(member_path, '') AS member_path, \
             present, policies, default_permissions FROM {db}.allowlist_state"
        ))
        .fetch_all()
        .await
        .map_err(|e| classify_read(&e))?;
    let inbound: Vec<InboundRow> = client
        .query_raw(&format!(
            "SELECT protected_project_id, inbound_enabled FROM {db}.allowlist_inbound"
        ))
        .fetch_all()
        .await
        .map_err(|e| classify_read(&e))?;
    let mut out: HashMap<i64, Known> = HashMap::new();
    for r in entries {
        let (Some(pid), Some(mid)) = (r.protected_project_id, r.member_id) else {
            continue; // rows without ids cannot be matched to GitLab's entries (ids)
        };
        let kind = if r.member_type.eq_ignore_ascii_case("group") {
            MemberKind::Group
        } else {
            MemberKind::Project
        };
        out.entry(pid).or_default().entries.insert(
            (kind, mid),
            KnownEntry {
                present: r.present == 1,
                path: r.member_path,
                default_permissions: r.default_permissions.map(|d| d == 1),
                policies: r.policies,
            },
        );
    }
    for r in inbound {
        if let Some(pid) = r.protected_project_id {
            out.entry(pid).or_default().inbound_enabled = Some(r.inbound_enabled == 1);
        }
    }
    Ok(out)
}
