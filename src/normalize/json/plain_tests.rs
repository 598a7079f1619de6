use proptest::prelude::*;

use super::super::{Arena, Value, from_slice, leaked_arena};

/// The plain parser's reading of `text`.
fn parse(text: &str) -> Option<Value<'_>> {
    super::parse(text, leaked_arena())
}

/// serde_json's reading of `text`, through the same visitor as always.
fn serde_reading(text: &str) -> serde_json::Result<Value<'_>> {
    super::super::parse(serde_json::Deserializer::from_str(text), leaked_arena())
}

/// Whenever the plain parser answers, serde_json reads the same value; whenever serde_json
/// refuses, the plain parser does not answer.
fn agrees(text: &str) -> Result<(), TestCaseError> {
    let (ours, theirs) = (Arena::new(), Arena::new());
    let serde = super::super::parse(serde_json::Deserializer::from_str(text), &theirs);
    match (super::parse(text, &ours), serde) {
        (Some(plain), Ok(serde)) => prop_assert_eq!(plain, serde, "{:?}", text),
        (Some(plain), Err(e)) => prop_assert!(false, "{text:?}: read {plain:?}, serde_json: {e}"),
        (None, _) => {}
    }
    Ok(())
}

fn fixture_texts() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitlab");
    let mut texts = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                texts.push(std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    assert!(texts.len() > 10, "fixtures: {}", texts.len());
    texts
}

/// GitLab's documents are read by the plain parser itself, to serde_json's tree.
#[test]
fn reads_gitlab_documents_as_serde_json_does() {
    for text in fixture_texts() {
        let plain = parse(&text).unwrap_or_else(|| panic!("not read: {text}"));
        assert_eq!(plain, serde_reading(&text).unwrap());
    }
}

#[test]
fn reads_the_plain_cases_itself() {
    for text in [
        r#"{"a":1,"b":[true,false,null],"c":{"d":"e"},"e":[],"f":{}}"#,
        " \t\r\n[ 0 , 9999999999999999999 , \"x\" ] \n",
        r#"{"esc":"a\"b\\c\/d\u00e9\ud83d\ude00\n","k\u0061y":1}"#,
        r#"[-1,-0,0.5,1e3,-2.5E-3,18446744073709551615,18446744073709551616,-9223372036854775809]"#,
        r#"{"a":1,"a":2}"#,
        "\"é ü ✓ 😀\"",
    ] {
        let plain = parse(text).unwrap_or_else(|| panic!("not read: {text}"));
        assert_eq!(plain, serde_reading(text).unwrap(), "{text}");
    }
}

/// Each of these is refused by serde_json; the plain parser leaves it to it.
#[test]
fn leaves_what_serde_json_refuses_to_it() {
    let deep = format!("{}{}", "[".repeat(70), "]".repeat(70));
    for text in [
        "",
        " ",
        "{",
        "}",
        "[1,]",
        "{\"a\":1,}",
        "{,}",
        "[,1]",
        "{\"a\" 1}",
        "{\"a\":}",
        "{1:2}",
        "[01]",
        "[1.]",
        "[.5]",
        "[1e]",
        "[+1]",
        "[--1]",
        "[1-2]",
        "[0x10]",
        "[1e400]",
        "[NaN]",
        "[tru]",
        "[nulll]",
        "[True]",
        "\"a\u{1}b\"",
        "\"tab\there\"",
        "\"a\\qb\"",
        "\"\\u12\"",
        "\"\\ud800\"",
        "\"open",
        "[1] [2]",
        "[1]x",
        "{\"a\":1}}",
        "\u{feff}[1]",
        "[\u{a0}1]",
        "[1,\u{c}2]",
        &deep,
    ] {
        assert_eq!(parse(text), None, "{text:?}");
        if text != deep {
            assert!(serde_reading(text).is_err(), "{text:?}");
        }
    }
    // Deeper than the plain parser goes, within serde_json's limit: serde_json reads it.
    assert!(serde_reading(&deep).is_ok());
    assert!(super::super::from_str_leaking(&deep).is_ok());
}

/// The escape scan stops at each kind of byte at every position of an 8-byte word.
#[test]
fn the_scan_stops_at_every_position() {
    for at in 0..20 {
        for stop_byte in [b'"', b'\\', 0u8, 0x1f] {
            let mut bytes = vec![b'a'; 24];
            bytes[at] = stop_byte;
            assert_eq!(super::stop(&bytes, 0), at, "{stop_byte:#x} at {at}");
        }
        // Bytes that are not stops, including the UTF-8 ones above 0x7f and 0x20 itself.
        let bytes: Vec<u8> = (0..at)
            .map(|i| [b' ', 0x7f, 0x80, 0xff, b'!', b']'][i % 6])
            .collect();
        assert_eq!(super::stop(&bytes, 0), at);
    }
}

fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::String),
        "[a-z\"\\\\/\u{0}-\u{1f}\u{e9}\u{1f600}]{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::vec(("[a-z\"\\\\\u{1}]{0,6}", inner), 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any document serde_json writes, compact or pretty, is read by the plain parser to the
    /// tree serde_json reads.
    #[test]
    fn reads_every_written_document(value in any_json(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            serde_json::to_string(&value).unwrap()
        };
        let plain = parse(&text);
        prop_assert!(plain.is_some(), "not read: {}", text);
        agrees(&text)?;
    }

    /// A written document with one byte replaced, inserted or removed: whatever the plain
    /// parser reads, serde_json reads the same; whatever serde_json refuses, it does not read.
    #[test]
    fn agrees_on_corrupted_documents(
        value in any_json(),
        at in any::<prop::sample::Index>(),
        byte in prop::sample::select(b"\"\\{}[],: \t\n0-.eE+a\x01\x7f".to_vec()),
        edit in 0..3u8,
    ) {
        let mut bytes = serde_json::to_vec(&value).unwrap();
        let i = at.index(bytes.len() + 1);
        match edit {
            0 if i < bytes.len() => bytes[i] = byte,
            1 => bytes.insert(i, byte),
            _ if i < bytes.len() => { bytes.remove(i); }
            _ => bytes.push(byte),
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            agrees(text)?;
        } else {
            prop_assert!(from_slice(&bytes, &Arena::new()).is_err());
        }
    }
}
