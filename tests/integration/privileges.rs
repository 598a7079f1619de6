//! The three ClickHouse roles of docs/privileges.md on ClickHouse 18.16, as the users
//! `deploy/local/lib/clickhouse.sh` defines on the database `tt_privileges`: `tt_migrate`
//! (DDL), `tt_ingest` (`allow_ddl=0`: INSERT and SELECT) and `tt_reader` (`readonly=1`).
//! Each role runs its commands with the real binary (readers: query, report, alerts list and
//! show, export), and fails clearly outside them. One test:
//! the roles share that one database.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::*;

const DATABASE: &str = "tt_privileges";

struct Roles {
    svc: Services,
    name: String,
    dir: tempfile::TempDir,
}

impl Roles {
    /// `tokentrail ARGS` as `user`, whose password comes from a file.
    fn command(&self, user: &str, args: &[&str]) -> Command {
        let password_file = self.dir.path().join(user);
        std::fs::write(&password_file, format!("{user}-password\n")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrail"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("TOKENTRAIL__")) {
            cmd.env_remove(key);
        }
        let n = &self.name;
        cmd.args(args)
            .env("TOKENTRAIL__KAFKA__BROKERS", &self.svc.brokers)
            .env("TOKENTRAIL__KAFKA__GROUP_ID", format!("{n}_group"))
            .env("TOKENTRAIL__KAFKA__AUDIT_TOPICS", format!("{n}_audit"))
            .env("TOKENTRAIL__KAFKA__WEBHOOK_TOPICS", format!("{n}_webhooks"))
            .env("TOKENTRAIL__KAFKA__DEAD_LETTER_TOPIC", format!("{n}_dlq"))
            .env("TOKENTRAIL__ALERTING__OUTPUTS__KAFKA_TOPIC", "")
            .env("TOKENTRAIL__SIEM__KAFKA__TOPIC", format!("{n}_siem"))
            .env(
                "TOKENTRAIL__SIEM__STATE_FILE",
                self.dir.path().join("siem-state.json"),
            )
            .env("TOKENTRAIL__TELEMETRY__LISTEN", "")
            .env("TOKENTRAIL__BATCH__MAX_WAIT_MS", "200")
            .env("TOKENTRAIL__CLICKHOUSE__URL", &self.svc.clickhouse_url)
            .env("TOKENTRAIL__CLICKHOUSE__DATABASE", DATABASE)
            .env("TOKENTRAIL__CLICKHOUSE__USER", user)
            .env("TOKENTRAIL__CLICKHOUSE__PASSWORD_FILE", &password_file)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, user: &str, args: &[&str]) -> Output {
        self.command(user, args).output().expect("run tokentrail")
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, user: &str, args: &[&str]) -> String {
        let out = self.run(user, args);
        assert!(
            out.status.success(),
            "{user}: tokentrail {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and expects a failure whose message contains every one of `says`.
    fn refused(&self, user: &str, args: &[&str], says: &[&str]) {
        let out = self.run(user, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{user}: tokentrail {args:?} succeeded"
        );
        for s in says {
            assert!(
                err.contains(s),
                "{user}: tokentrail {args:?}: {s:?} not in:\n{err}"
            );
        }
    }
}

async fn fresh_database(svc: &Services) {
    let admin = clickhouse(&svc.clickhouse_url, "default");
    admin
        .query(&format!("DROP DATABASE IF EXISTS {DATABASE}"))
        .execute()
        .await
        .unwrap();
}

async fn count(svc: &Services, sql: &str) -> u64 {
    let client = clickhouse(&svc.clickhouse_url, DATABASE);
    client.query(sql).fetch_one::<u64>().await.unwrap_or(0)
}

#[tokio::test]
async fn each_role_runs_its_commands_and_is_refused_outside_them() {
    let svc = services();
    let name = unique("privileges");
    for (topic, partitions) in [("audit", 2), ("webhooks", 1), ("dlq", 1), ("siem", 1)] {
        create_topic(&svc.brokers, &format!("{name}_{topic}"), partitions).await;
    }
    fresh_database(&svc).await;
    let roles = Roles {
        svc,
        name,
        dir: tempfile::tempdir().unwrap(),
    };

    // migrate: only the migrate role may create the schema.
    roles.refused("tt_ingest", &["migrate"], &["DDL queries are prohibited"]);
    roles.refused("tt_reader", &["migrate"], &["readonly"]);
    roles.ok("tt_migrate", &["migrate"]);
    // Nothing pending: no DDL at all, so any role may check.
    for user in ["tt_ingest", "tt_reader", "tt_migrate"] {
        let out = roles.ok(user, &["migrate"]);
        assert!(out.contains("applied []"), "{user}: {out}");
    }

    // ingest: the ingest role writes; the reader is refused at the first write.
    roles.ok(
        "tt_reader",
        &["simulate", "--jobs", "40", "--seed", "16", "--to", "kafka"],
    );
    let mut ingest = KillOnDrop::new(
        roles
            .command("tt_ingest", &["ingest"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while count(&roles.svc, "SELECT count() FROM token_use").await == 0
        || count(&roles.svc, "SELECT count() FROM alerts").await == 0
    {
        assert!(
            ingest.child().try_wait().unwrap().is_none(),
            "ingest as tt_ingest exited"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no token uses and alerts stored"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let sent = Command::new("kill")
        .args(["-TERM", &ingest.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    assert!(ingest.child().wait().unwrap().success());

    // readers: query, alerts list/show, export (backfill) with readonly=1.
    let table = roles.ok("tt_reader", &["query", "actor-kinds"]);
    assert!(table.lines().count() > 1, "{table}");
    let report = roles.dir.path().join("report.json");
    roles.ok(
        "tt_reader",
        &[
            "report",
            "--from",
            "2000-01-01",
            "--format",
            "json",
            "--out",
            &report.to_string_lossy(),
        ],
    );
    assert!(std::fs::metadata(&report).unwrap().len() > 0);
    let listed = roles.ok("tt_reader", &["alerts", "list"]);
    let id = listed
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no alert listed: {listed}"))
        .to_string();
    roles.ok("tt_reader", &["alerts", "show", &id]);
    roles.ok(
        "tt_reader",
        &[
            "export",
            "--sink",
            "kafka",
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ],
    );
    // `alerts ack` writes a row: refused to readers, allowed to the ingest role.
    roles.refused("tt_reader", &["alerts", "ack", &id], &["readonly"]);
    let acked = roles.ok("tt_ingest", &["alerts", "ack", &id, "--by", "auditor"]);
    assert!(acked.contains("acknowledged"), "{acked}");
}
