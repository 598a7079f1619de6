//! Golden files of every SIEM format for every record kind (tests/golden/siem/*.snap, insta
//! snapshots). Regenerate after an intended change with
//! `INSTA_UPDATE=always cargo test --test siem_golden` and review the diff.

mod siem_fixtures;

use tokentrail::siem::encode::{Format, encode};
use tokentrail::siem::syslog::{SyslogHeader, format_message, frame};

/// Compares `actual` with `tests/golden/siem/<name>.snap` through insta, the project's one
/// snapshot system (`INSTA_UPDATE=always cargo test --test siem_golden` rewrites them after
/// an intended change; review the diff).
fn check(name: &str, actual: &[u8]) {
    let text = String::from_utf8(actual.to_vec()).expect("SIEM output is UTF-8");
    insta::with_settings!({
        snapshot_path => "golden/siem",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn json_formats_match_their_goldens() {
    for (stem, record) in siem_fixtures::all() {
        for format in [Format::Ocsf, Format::Ecs] {
            let enc = encode(format, &record);
            assert!(!enc.payload.contains('\n'), "payload is one line");
            let value: serde_json::Value = serde_json::from_str(&enc.payload).unwrap();
            let pretty = serde_json::to_string_pretty(&value).unwrap() + "\n";
            check(
                &format!("{stem}.{}.json", format.as_str()),
                pretty.as_bytes(),
            );
        }
    }
}

#[test]
fn cef_lines_match_their_goldens_byte_for_byte() {
    for (stem, record) in siem_fixtures::all() {
        let line = encode(Format::Cef, &record).payload;
        assert!(!line.contains(['\n', '\r']), "a CEF record is one line");
        check(&format!("{stem}.cef"), format!("{line}\n").as_bytes());
    }
}

#[test]
fn cef_escaping_is_exact() {
    let line = encode(Format::Cef, &siem_fixtures::token_use_matched()).payload;
    // Extension values: `\` → `\\`, `=` → `\=`, CR → `\r`, LF → `\n`; `|` stays as is.
    assert!(
        line.contains(r"flexString1=Zoë O'Neil | ops\=lead \\ admin\r\nsecond line ✓ "),
        "{line}"
    );
    assert!(line.contains(r"cs3=feature/a\=b|c "), "{line}");
    let alert = encode(Format::Cef, &siem_fixtures::alert()).payload;
    // Header (Name): `|` → `\|`, newline → space; `=` is not escaped in the header.
    assert!(
        alert.contains(r"|alert:cross_project_not_allowlisted|platform/deployer reached platform/secrets \| not allowlisted see details|8|"),
        "{alert}"
    );
    assert!(
        alert.contains(r#"cs4={"jobs":[777001,777003],"note":"a\=b \\\\ c ✓"}"#),
        "{alert}"
    );
}

#[test]
fn syslog_framing_matches_its_golden() {
    let header = SyslogHeader {
        facility: 10,
        hostname: "siem-test".into(),
        app_name: "tokentrail".into(),
        proc_id: "4242".into(),
    };
    let mut out = Vec::new();
    for (_, record) in siem_fixtures::all() {
        out.extend(frame(&format_message(
            &header,
            &encode(Format::Cef, &record),
        )));
    }
    check("all.cef.syslog", &out);
}
