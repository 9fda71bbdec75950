//! What the wallet prints on stdout: one JSON document per command with `--json`, aligned
//! tables otherwise. Errors go to stderr from `main`, never here.

use std::io::{self, Write};

use anyhow::Result;
use serde::Serialize;

/// Where and how results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json`.
    pub json: bool,
}

impl Output {
    /// Prints `value` as one line of JSON.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let text = serde_json::to_string(value)?;
        line(&text)
    }

    /// Prints either `value` as JSON or the human form `human` builds.
    pub fn show<T: Serialize + ?Sized>(
        &self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> Result<()> {
        if self.json {
            self.json(value)
        } else {
            let text = human();
            write_out(&text)
        }
    }

    /// A progress note: on stdout for people, on stderr with `--json` (so stdout stays one
    /// JSON document).
    pub fn note(&self, text: &str) -> Result<()> {
        if self.json {
            eprintln!("{text}");
            Ok(())
        } else {
            line(text)
        }
    }
}

/// Writes `text` and a newline to stdout, flushing (so `watch` lines appear at once).
pub fn line(text: &str) -> Result<()> {
    if cfg!(test) {
        // Let the test harness capture it.
        println!("{text}");
        return Ok(());
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

fn write_out(text: &str) -> Result<()> {
    if cfg!(test) {
        print!("{text}");
        return Ok(());
    }
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// `key  value` rows with the values aligned.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        out.push_str(&format!("{key:<width$}  {value}\n"));
    }
    out
}

/// A table with a header row. A header starting with `>` marks a right-aligned (number)
/// column; the `>` is not printed.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let right: Vec<bool> = headers.iter().map(|h| h.starts_with('>')).collect();
    let headers: Vec<&str> = headers.iter().map(|h| h.trim_start_matches('>')).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let render = |cells: &mut dyn Iterator<Item = (usize, &str)>, out: &mut String| {
        let mut line = String::new();
        for (i, cell) in cells {
            let width = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                line.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                line.push_str(&format!("{cell:>width$}"));
            } else {
                line.push_str(&format!("{cell:<width$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    let mut out = String::new();
    render(&mut headers.iter().copied().enumerate(), &mut out);
    for row in rows {
        render(&mut row.iter().map(String::as_str).enumerate(), &mut out);
    }
    out
}

/// The first 12 hex digits of a long id, for tables (`--json` always has the whole id).
pub fn short(hex: &str) -> String {
    hex.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_right_align_numbers() {
        let text = table(
            &["BANK", ">POOL", ">POSITION"],
            &[
                vec!["BANK_A".into(), "1000.00".into(), "-5.00".into()],
                vec!["B".into(), "7.50".into(), "12.00".into()],
            ],
        );
        assert_eq!(
            text,
            "BANK       POOL  POSITION\n\
             BANK_A  1000.00     -5.00\n\
             B          7.50     12.00\n"
        );
        assert_eq!(
            fields(&[("a", "1".into()), ("long", "2".into())]),
            "a     1\nlong  2\n"
        );
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
    }
}
