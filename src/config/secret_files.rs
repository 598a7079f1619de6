//! Secrets from files: any setting whose name ends in `password`, `token` or `secret` may be
//! given as `<name>_file` instead (`clickhouse.password_file`, `kafka.sasl.password_file`,
//! `collect.webhooks[].token_file`, `siem.hec.token_file`, …). The file is read once, when the
//! configuration is loaded, before deserialization: the settings structs only ever see the
//! secret itself, so every section gains the `_file` form without knowing about it.

use config::{Value, ValueKind};

use super::ConfigError;

/// Names a `_file` key may complete: a key `K_file` is a secret file when `K` ends in one.
const SECRET_SUFFIXES: [&str; 3] = ["password", "token", "secret"];

/// Replaces every `K_file = "/path"` in `root` by `K = <contents of /path>`.
pub fn resolve(root: &mut Value) -> Result<(), ConfigError> {
    walk(root, "")
}

fn walk(value: &mut Value, path: &str) -> Result<(), ConfigError> {
    match &mut value.kind {
        ValueKind::Table(table) => {
            let file_keys: Vec<String> = table
                .keys()
                .filter(|k| secret_name(k).is_some())
                .cloned()
                .collect();
            for file_key in file_keys {
                let name = secret_name(&file_key).expect("filtered").to_string();
                let key = join(path, &file_key);
                let file = table.remove(&file_key).expect("listed");
                let file = match file.kind {
                    ValueKind::String(s) => s,
                    ValueKind::Nil => continue,
                    _ => return Err(invalid(&key, "must be a file path")),
                };
                if file.is_empty() {
                    continue;
                }
                let inline_set = table.get(&name).is_some_and(|v| match &v.kind {
                    ValueKind::String(s) => !s.is_empty(),
                    ValueKind::Nil => false,
                    _ => true,
                });
                if inline_set {
                    return Err(invalid(
                        &key,
                        format!("set {} or {key}, not both", join(path, &name)),
                    ));
                }
                let secret = read(&key, &file)?;
                table.insert(name, Value::new(None, ValueKind::String(secret)));
            }
            for (k, v) in table.iter_mut() {
                // librdkafka options are passed through verbatim, `_file` or not.
                if path == "kafka" && k == "options" {
                    continue;
                }
                walk(v, &join(path, k))?;
            }
        }
        ValueKind::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &format!("{path}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `token_file` → `token`; `None` for keys that are not secret files (`ca_file`, …).
fn secret_name(key: &str) -> Option<&str> {
    let name = key.strip_suffix("_file")?;
    SECRET_SUFFIXES
        .iter()
        .any(|s| name.ends_with(s))
        .then_some(name)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The file's contents without a trailing line break; errors name the key and the path,
/// never the contents.
fn read(key: &str, file: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| invalid(key, format!("cannot read {file:?}: {e}")))?;
    let secret = text.strip_suffix('\n').unwrap_or(&text);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        return Err(invalid(key, format!("{file:?} is empty")));
    }
    Ok(secret.to_string())
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidAt {
        key: key.to_string(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_secret_names_take_a_file() {
        assert_eq!(secret_name("password_file"), Some("password"));
        assert_eq!(secret_name("key_password_file"), Some("key_password"));
        assert_eq!(secret_name("signing_secret_file"), Some("signing_secret"));
        assert_eq!(secret_name("token_file"), Some("token"));
        assert_eq!(secret_name("ca_file"), None);
        assert_eq!(secret_name("password"), None);
    }
}
