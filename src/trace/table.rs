//! Aligned text tables for terminal output: one header line (name and unit of each column),
//! a rule, then the rows. Every human-readable table the CLI prints goes through here, so
//! headers always line up with their numbers and every quantity names its unit.
//!
//! ```text
//! model          TTFT    TPOT   energy / token
//!                  ms      ms               mJ
//! ─────────────────────────────────────────────
//! smollm2-135m   35.4    5.59             1.21
//! ```

use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table as Inner, presets};

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: names, labels.
    Left,
    /// Numbers.
    Right,
}

/// One column: its name, its unit (empty for none) and its alignment.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub unit: String,
    pub align: Align,
}

impl Column {
    /// A left-aligned text column without a unit.
    pub fn text(name: &str) -> Column {
        Column {
            name: name.to_string(),
            unit: String::new(),
            align: Align::Left,
        }
    }

    /// A right-aligned number column; `unit` is printed under the name (may be empty).
    pub fn number(name: &str, unit: &str) -> Column {
        Column {
            name: name.to_string(),
            unit: unit.to_string(),
            align: Align::Right,
        }
    }
}

/// A table built row by row and rendered once.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
    indent: usize,
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
            indent: 0,
        }
    }

    /// Indent every line by `n` spaces.
    pub fn indent(mut self, n: usize) -> Table {
        self.indent = n;
        self
    }

    /// Appends a row; missing cells are blank, extra cells are dropped.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).collect();
        row.resize(self.columns.len(), String::new());
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rendered table, each line ending in a newline, no trailing spaces.
    pub fn render(&self) -> String {
        let mut inner = Inner::new();
        inner
            .load_preset(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled);
        let has_units = self.columns.iter().any(|c| !c.unit.is_empty());
        let header: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
        inner.add_row(header);
        if has_units {
            inner.add_row(self.columns.iter().map(|c| c.unit.clone()).collect::<Vec<_>>());
        }
        for row in &self.rows {
            inner.add_row(row.clone());
        }
        for (i, c) in self.columns.iter().enumerate() {
            if let Some(col) = inner.column_mut(i) {
                col.set_cell_alignment(match c.align {
                    Align::Left => CellAlignment::Left,
                    Align::Right => CellAlignment::Right,
                });
                col.set_padding((0, 2));
                col.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
        let pad = " ".repeat(self.indent);
        let lines: Vec<String> = inner.lines().map(|l| l.trim_end().to_string()).collect();
        let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        let head = if has_units { 2 } else { 1 };
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            if i == head {
                out.push_str(&pad);
                out.push_str(&"─".repeat(width));
                out.push('\n');
            }
            out.push_str(&pad);
            out.push_str(line);
            out.push('\n');
        }
        if lines.len() == head {
            out.push_str(&pad);
            out.push_str(&"─".repeat(width));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_units_and_numbers_line_up() {
        let mut t = Table::new(vec![
            Column::text("model"),
            Column::number("TTFT", "ms"),
            Column::number("energy / token", "mJ"),
        ]);
        t.row(["smollm2-135m", "35.4", "1.21"]);
        t.row(["a", "1234.5", "0.5"]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        // Right-aligned columns end at the same character on every line.
        let end_of = |line: &str, needle: &str| line.find(needle).unwrap() + needle.len();
        assert_eq!(end_of(lines[0], "TTFT"), end_of(lines[1], "ms"));
        assert_eq!(end_of(lines[0], "TTFT"), end_of(lines[3], "35.4"));
        assert_eq!(end_of(lines[0], "TTFT"), end_of(lines[4], "1234.5"));
        assert_eq!(end_of(lines[0], "energy / token"), end_of(lines[3], "1.21"));
        assert!(lines[2].starts_with('─'));
        assert!(text.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn no_unit_row_when_no_column_has_a_unit() {
        let mut t = Table::new(vec![Column::text("a"), Column::text("b")]).indent(2);
        t.row(["x"]);
        let text = t.render();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.lines().all(|l| l.starts_with("  ")));
    }
}
