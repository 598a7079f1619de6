//! Query results: parsed from ClickHouse's `JSONCompact` output (same shape on 18.16 and
//! 26.x) and rendered as an aligned table, CSV (RFC 4180) or JSON. Table and CSV cells go
//! through [`crate::output_escape`] first (stored values come from GitLab payloads); JSON
//! output does not need to.

use serde_json::Value;

use crate::output_escape::{csv_text_cell, escape_controls};

/// Column names and rows of one answer. Values keep their JSON type (numbers stay numbers).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err(format!("unknown format {s:?}: table, csv or json")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unexpected JSONCompact output: {0}")]
pub struct ParseError(String);

/// Types whose JSON output servers quote by default (`output_format_json_quote_64bit_integers`).
fn is_wide_integer(ty: &str) -> bool {
    let inner = ty
        .trim_start_matches("Nullable(")
        .trim_start_matches("LowCardinality(")
        .trim_end_matches(')');
    matches!(inner, "Int64" | "UInt64")
}

impl ResultSet {
    /// Parses `FORMAT JSONCompact` output, turning quoted 64-bit integers back into numbers
    /// so both engines (and both quoting settings) give the same values.
    pub fn from_json_compact(bytes: &[u8]) -> Result<ResultSet, ParseError> {
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| ParseError(e.to_string()))?;
        let meta = doc["meta"]
            .as_array()
            .ok_or_else(|| ParseError("no meta".into()))?;
        let columns: Vec<String> = meta
            .iter()
            .map(|m| m["name"].as_str().unwrap_or_default().to_string())
            .collect();
        let wide: Vec<bool> = meta
            .iter()
            .map(|m| is_wide_integer(m["type"].as_str().unwrap_or_default()))
            .collect();
        let data = doc["data"]
            .as_array()
            .ok_or_else(|| ParseError("no data".into()))?;
        let rows = data
            .iter()
            .map(|row| {
                let cells = row
                    .as_array()
                    .ok_or_else(|| ParseError("row is not an array".into()))?;
                Ok(cells
                    .iter()
                    .zip(&wide)
                    .map(|(v, &wide)| match v {
                        Value::String(s) if wide => s
                            .parse::<i64>()
                            .map(Value::from)
                            .or_else(|_| s.parse::<u64>().map(Value::from))
                            .unwrap_or_else(|_| v.clone()),
                        _ => v.clone(),
                    })
                    .collect())
            })
            .collect::<Result<Vec<Vec<Value>>, ParseError>>()?;
        Ok(ResultSet { columns, rows })
    }

    /// Every cell as display text: the form compared across engines and shown to users.
    pub fn text_rows(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| r.iter().map(cell_text).collect())
            .collect()
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.to_table(),
            Format::Csv => self.to_csv(),
            Format::Json => self.to_json(),
        }
    }

    fn to_table(&self) -> String {
        let shown = |cells: &[String]| -> Vec<String> {
            cells
                .iter()
                .map(|c| escape_controls(c).into_owned())
                .collect()
        };
        let columns = shown(&self.columns);
        let rows: Vec<Vec<String>> = self.text_rows().iter().map(|r| shown(r)).collect();
        let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let numeric: Vec<bool> = (0..self.columns.len())
            .map(|i| !self.rows.is_empty() && self.rows.iter().all(|r| r[i].is_number()))
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .zip(&numeric)
                .map(|((c, &w), &num)| {
                    let pad = " ".repeat(w - c.chars().count());
                    if num {
                        format!("{pad}{c}")
                    } else {
                        format!("{c}{pad}")
                    }
                })
                .collect();
            padded.join("  ").trim_end().to_string() + "\n"
        };
        let mut out = line(&columns);
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        out.push_str(&line(&rule));
        for row in &rows {
            out.push_str(&line(row));
        }
        out.push_str(&format!("({} rows)\n", rows.len()));
        out
    }

    fn to_csv(&self) -> String {
        let header: Vec<String> = self.columns.iter().map(|c| csv_text_cell(c)).collect();
        let mut out = csv_line(&header);
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(csv_cell).collect();
            out.push_str(&csv_line(&cells));
        }
        out
    }

    /// A JSON array of objects, keys in column order.
    fn to_json(&self) -> String {
        let objects: Vec<String> = self
            .rows
            .iter()
            .map(|row| {
                let fields: Vec<String> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), v))
                    .collect();
                format!("  {{{}}}", fields.join(", "))
            })
            .collect();
        if objects.is_empty() {
            "[]\n".to_string()
        } else {
            format!("[\n{}\n]\n", objects.join(",\n"))
        }
    }
}

/// Display text of one cell: strings unquoted, null empty, arrays/objects as JSON.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One CSV cell before quoting: numbers as they are (they cannot hold a formula, and `-5`
/// must stay a number), everything else neutralised by [`csv_text_cell`].
fn csv_cell(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        other => csv_text_cell(&cell_text(other)),
    }
}

/// One RFC 4180 record: fields with a comma, quote, CR or LF are quoted, quotes doubled.
pub fn csv_line(fields: &[String]) -> String {
    let escaped: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    escaped.join(",") + "\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> ResultSet {
        ResultSet {
            columns: vec!["project".into(), "uses".into(), "policies".into()],
            rows: vec![
                vec![json!("a/b"), json!(12), json!(["read_jobs"])],
                vec![json!("say \"hi\", bye"), json!(3), Value::Null],
            ],
        }
    }

    #[test]
    fn csv_quotes_only_when_needed_and_doubles_quotes() {
        let csv = sample().render(Format::Csv);
        assert_eq!(
            csv,
            "project,uses,policies\r\na/b,12,\"[\"\"read_jobs\"\"]\"\r\n\"say \"\"hi\"\", bye\",3,\r\n"
        );
        assert_eq!(csv_line(&["line\nbreak".into()]), "\"line\nbreak\"\r\n");
        assert_eq!(csv_line(&["plain".into(), String::new()]), "plain,\r\n");
    }

    #[test]
    fn table_aligns_and_right_aligns_numbers() {
        let t = sample().render(Format::Table);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "project        uses  policies");
        assert_eq!(lines[1], "-------------  ----  -------------");
        assert_eq!(lines[2], "a/b              12  [\"read_jobs\"]");
        assert_eq!(lines[3], "say \"hi\", bye     3");
        assert_eq!(lines[4], "(2 rows)");
    }

    fn hostile() -> ResultSet {
        ResultSet {
            columns: vec!["author_name".into(), "entity_path".into(), "uses".into()],
            rows: vec![
                vec![
                    json!("\u{1b}[31mroot\u{1b}[0m\u{7}"),
                    json!("g/a"),
                    json!(-1),
                ],
                vec![
                    json!("=HYPERLINK(\"http://evil\",\"x\")"),
                    json!("g/b\r\nforged  row"),
                    json!(2),
                ],
            ],
        }
    }

    #[test]
    fn table_escapes_control_characters() {
        let t = hostile().render(Format::Table);
        assert!(!t.contains(['\u{1b}', '\u{7}', '\r']), "{t:?}");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert_eq!(
            lines[2],
            "\\x1b[31mroot\\x1b[0m\\x07        g/a                   -1"
        );
        assert_eq!(
            lines[3],
            "=HYPERLINK(\"http://evil\",\"x\")  g/b\\r\\nforged  row     2"
        );
    }

    #[test]
    fn csv_neutralises_formulas_and_escapes_control_characters() {
        let csv = hostile().render(Format::Csv);
        assert_eq!(
            csv,
            "author_name,entity_path,uses\r\n\
             \\x1b[31mroot\\x1b[0m\\x07,g/a,-1\r\n\
             \"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",g/b\\r\\nforged  row,2\r\n"
        );
    }

    #[test]
    fn json_output_is_not_escaped_twice() {
        let j = hostile().render(Format::Json);
        let parsed: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(
            parsed[0]["author_name"],
            json!("\u{1b}[31mroot\u{1b}[0m\u{7}")
        );
        assert_eq!(
            parsed[1]["author_name"],
            json!("=HYPERLINK(\"http://evil\",\"x\")")
        );
    }

    #[test]
    fn json_keeps_column_order_and_types() {
        let j = sample().render(Format::Json);
        let parsed: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(parsed[0]["uses"], json!(12));
        assert_eq!(parsed[1]["policies"], Value::Null);
        assert!(j.find("\"project\"").unwrap() < j.find("\"uses\"").unwrap());
        let empty = ResultSet {
            columns: vec!["a".into()],
            rows: vec![],
        };
        assert_eq!(empty.render(Format::Json), "[]\n");
    }

    #[test]
    fn parses_json_compact_with_quoted_64_bit_integers() {
        let body = br#"{"meta":[{"name":"n","type":"UInt64"},{"name":"j","type":"Nullable(Int64)"},
            {"name":"s","type":"String"}],"data":[["18446744073709551615","-5","7"]],"rows":1}"#;
        let rs = ResultSet::from_json_compact(body).unwrap();
        assert_eq!(rs.columns, ["n", "j", "s"]);
        assert_eq!(
            rs.rows[0],
            [json!(18446744073709551615u64), json!(-5), json!("7")]
        );
    }
}
