//! Human output: aligned columns from JSON rows.

use serde_json::Value;

/// `columns` are (heading, JSON pointer) pairs; a missing value prints as `-`.
pub fn render(rows: &[Value], columns: &[(&str, &str)]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|(_, ptr)| cell(r.pointer(ptr)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        let mut l = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        l.truncate(l.trim_end().len());
        l.push('\n');
        l
    };
    let mut out = line(columns.iter().map(|(h, _)| (*h).to_owned()).collect());
    for row in cells {
        out.push_str(&line(row));
    }
    out
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| cell(Some(v)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// A JSON value as the `--json` output prints it.
pub fn json(v: &Value) -> String {
    format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aligns_and_fills_gaps() {
        let rows = [
            json!({"id": "ep_1", "events": ["a", "b"]}),
            json!({"id": "ep_22"}),
        ];
        let out = render(&rows, &[("ID", "/id"), ("EVENTS", "/events")]);
        assert_eq!(out, "ID     EVENTS\nep_1   a,b\nep_22  -\n");
    }
}
