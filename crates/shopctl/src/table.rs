//! A tiny plain-text table formatter: padded columns, two spaces apart, no trailing blanks.

use std::fmt;

/// How the cells of a column line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text columns: padded on the right.
    Left,
    /// Number columns: padded on the left.
    Right,
}

/// Columns with a header line, filled row by row, rendered with `Display`.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

const GAP: &str = "  ";

impl Table {
    /// A table with these `(header, alignment)` columns and no rows yet.
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Self {
            headers: columns.iter().map(|(h, _)| clean(h)).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells are blank, cells beyond the last column are dropped.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut row: Vec<String> =
            cells.into_iter().take(self.headers.len()).map(|c| clean(c.as_ref())).collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// Whether no row has been added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        widths
    }

    fn write_line(
        &self,
        f: &mut fmt::Formatter<'_>,
        widths: &[usize],
        cells: &[String],
    ) -> fmt::Result {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                line.push_str(GAP);
            }
            push_padded(&mut line, cell, widths[i], self.align[i]);
        }
        writeln!(f, "{}", line.trim_end())
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.widths();
        self.write_line(f, &widths, &self.headers)?;
        for row in &self.rows {
            self.write_line(f, &widths, row)?;
        }
        Ok(())
    }
}

/// `key  value` lines with the values lined up, one pair per line.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let keys: Vec<String> = pairs.iter().map(|(k, _)| format!("{}:", clean(k))).collect();
    let key_width = keys.iter().map(|k| width(k)).max().unwrap_or(0);
    let mut out = String::new();
    for (key, (_, value)) in keys.iter().zip(pairs) {
        let line = format!("{key:<key_width$}{GAP}{}", clean(value));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One line of cells padded to fixed widths, for output that streams (no later row can widen
/// a column): a longer cell pushes the rest to the right. Cells are cleaned as in [`Table`];
/// no trailing blanks.
pub fn fixed_line(cells: &[(&str, usize, Align)]) -> String {
    let mut line = String::new();
    for (i, (cell, cell_width, align)) in cells.iter().enumerate() {
        if i > 0 {
            line.push_str(GAP);
        }
        push_padded(&mut line, &clean(cell), *cell_width, *align);
    }
    let mut line = line.trim_end().to_owned();
    line.push('\n');
    line
}

/// Appends `cell` padded to `cell_width` on the side `align` says.
fn push_padded(line: &mut String, cell: &str, cell_width: usize, align: Align) {
    let pad = " ".repeat(cell_width.saturating_sub(width(cell)));
    match align {
        Align::Left => {
            line.push_str(cell);
            line.push_str(&pad);
        }
        Align::Right => {
            line.push_str(&pad);
            line.push_str(cell);
        }
    }
}

/// Display width of a cell; counts chars, which is right for the ASCII ids we show.
fn width(s: &str) -> usize {
    s.chars().count()
}

/// Control characters (a newline in a SKU, an escape sequence) would break the layout or
/// the terminal, so they are shown escaped.
fn clean(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
            .collect()
    } else {
        s.to_owned()
    }
}

/// `s`, or `-` for an empty value (a table cell is never blank in the middle of a line).
pub fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// An amount in minor units as `19.99 EUR` (two decimals), as the tables print money.
pub fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", abs / 100, abs % 100).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_the_widest_cell() {
        let mut t = Table::new(&[("SKU", Align::Left), ("ON_HAND", Align::Right)]);
        t.row(["MUG-CLASSIC", "100"]);
        t.row(["CAP", "7"]);
        assert_eq!(
            t.to_string(),
            "SKU          ON_HAND\n\
             MUG-CLASSIC      100\n\
             CAP                7\n"
        );
    }

    #[test]
    fn trailing_blanks_are_trimmed_and_short_rows_padded() {
        let mut t = Table::new(&[("A", Align::Left), ("B", Align::Left), ("C", Align::Right)]);
        t.row(["x"]);
        t.row(["", "", "12"]);
        assert_eq!(t.to_string(), "A  B   C\nx\n      12\n");
    }

    #[test]
    fn extra_cells_are_dropped() {
        let mut t = Table::new(&[("A", Align::Left)]);
        t.row(["1", "2", "3"]);
        assert_eq!(t.to_string(), "A\n1\n");
    }

    #[test]
    fn an_empty_table_is_its_header() {
        let t = Table::new(&[("SKU", Align::Left), ("QTY", Align::Right)]);
        assert!(t.is_empty());
        assert_eq!(t.to_string(), "SKU  QTY\n");
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut t = Table::new(&[("SKU", Align::Left), ("N", Align::Right)]);
        t.row(["A\nB", "1"]);
        assert_eq!(t.to_string(), "SKU   N\nA\\nB  1\n");
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        let mut t = Table::new(&[("W", Align::Left), ("N", Align::Right)]);
        t.row(["münchen", "1"]);
        t.row(["east", "2"]);
        assert_eq!(t.to_string(), "W        N\nmünchen  1\neast     2\n");
    }

    #[test]
    fn fixed_lines_pad_to_their_widths_and_long_cells_push() {
        let cells =
            |a: &'static str, b| [(a, 4, Align::Right), (b, 5, Align::Left), ("x", 1, Align::Left)];
        assert_eq!(fixed_line(&cells("7", "ab")), "   7  ab     x\n");
        assert_eq!(fixed_line(&cells("12345", "abcdefg")), "12345  abcdefg  x\n");
        assert_eq!(fixed_line(&[("a\nb", 2, Align::Left)]), "a\\nb\n");
    }

    #[test]
    fn key_values_line_up() {
        let out = key_values(&[("sku", "MUG".into()), ("available", "3".into()), ("x", "".into())]);
        assert_eq!(out, "sku:        MUG\navailable:  3\nx:\n");
    }
}
