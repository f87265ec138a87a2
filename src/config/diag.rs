//! Diagnostics that point at a place in the config file.
//!
//! A typo in a rotation must fail at `pagerbox check`, not at 3 a.m., and the person reading the
//! error must not have to hunt for it: every problem carries `file:line:column`.

use std::fmt;
use std::ops::Range;

/// How serious a diagnostic is. Errors make the file unusable; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    /// A problem the running daemon survives but a person must fix: an optional channel that
    /// cannot be set up (a missing secret or CA file), or a config that pages nobody. At start
    /// the daemon runs with it, loudly, so the other channels keep paging; `pagerbox check` and
    /// a SIGHUP reload refuse the file, since there a working config is already at hand.
    Impaired,
    Warning,
}

/// One problem in a config file, located by line and column (both 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub level: Level,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.level {
            Level::Error | Level::Impaired => "",
            Level::Warning => "warning: ",
        };
        write!(
            f,
            "{}:{}:{}: {}{}",
            self.file, self.line, self.column, prefix, self.message
        )
    }
}

/// Maps byte offsets in a source text to 1-based line and column (columns count characters).
pub(crate) struct SourceMap<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { text, line_starts }
    }

    /// 1-based (line, column) of a byte offset; offsets past the end point at the last line.
    pub(crate) fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(0);
        (line + 1, column + 1)
    }
}

/// Collects diagnostics for one file.
pub(crate) struct Reporter<'a> {
    file: String,
    map: SourceMap<'a>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(file: &str, text: &'a str) -> Self {
        Self {
            file: file.to_string(),
            map: SourceMap::new(text),
            diagnostics: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        self.push(Level::Error, span, message.into());
    }

    /// Records a [`Level::Impaired`] problem.
    pub(crate) fn impaired(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        self.push(Level::Impaired, span, message.into());
    }

    #[allow(dead_code)] // used by gap warnings once schedules land
    pub(crate) fn warning(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        self.push(Level::Warning, span, message.into());
    }

    fn push(&mut self, level: Level, span: Option<Range<usize>>, message: String) {
        let (line, column) = span.map(|s| self.map.locate(s.start)).unwrap_or((1, 1));
        self.diagnostics.push(Diagnostic {
            level,
            file: self.file.clone(),
            line,
            column,
            message,
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.level == Level::Error)
    }
}

/// Finds the span of the key at a serde_ignored path such as `users.0.phnoe` in a parsed
/// document, so an unknown key can be reported where it stands. Falls back to the nearest
/// enclosing key or table that can be found.
pub(crate) fn key_span(doc: &toml_edit::ImDocument<&str>, path: &[String]) -> Option<Range<usize>> {
    item_key_span(doc.as_item(), path, None)
}

fn item_key_span(
    item: &toml_edit::Item,
    path: &[String],
    best: Option<Range<usize>>,
) -> Option<Range<usize>> {
    let Some((segment, rest)) = path.split_first() else {
        return best;
    };
    if let Ok(index) = segment.parse::<usize>() {
        return match item {
            toml_edit::Item::ArrayOfTables(a) => match a.get(index) {
                Some(t) => table_key_span(t, rest, t.span().or(best)),
                None => best,
            },
            toml_edit::Item::Value(v) => value_key_span(v, path, best),
            _ => best,
        };
    }
    match item {
        toml_edit::Item::Table(t) => table_key_span(t, path, best),
        toml_edit::Item::Value(v) => value_key_span(v, path, best),
        _ => best,
    }
}

fn table_key_span(
    table: &toml_edit::Table,
    path: &[String],
    best: Option<Range<usize>>,
) -> Option<Range<usize>> {
    let Some((segment, rest)) = path.split_first() else {
        return best;
    };
    match table.get_key_value(segment) {
        Some((key, value)) => item_key_span(value, rest, key.span().or(best)),
        None => best,
    }
}

fn value_key_span(
    value: &toml_edit::Value,
    path: &[String],
    best: Option<Range<usize>>,
) -> Option<Range<usize>> {
    let Some((segment, rest)) = path.split_first() else {
        return best;
    };
    match value {
        toml_edit::Value::Array(a) => match segment.parse::<usize>().ok().and_then(|i| a.get(i)) {
            Some(v) => value_key_span(v, rest, v.span().or(best)),
            None => best,
        },
        toml_edit::Value::InlineTable(t) => match t.get_key_value(segment) {
            Some((key, v)) => item_key_span(v, rest, key.span().or(best)),
            None => best,
        },
        _ => best,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_columns() {
        let text = "a = 1\nbé = 2\n\nc = 3";
        let map = SourceMap::new(text);
        assert_eq!(map.locate(0), (1, 1));
        assert_eq!(map.locate(6), (2, 1));
        // Column counts characters, not bytes: 'é' is two bytes.
        assert_eq!(map.locate(text.find("= 2").unwrap()), (2, 4));
        assert_eq!(map.locate(text.find('c').unwrap()), (4, 1));
        assert_eq!(map.locate(10_000), (4, 6));
    }

    #[test]
    fn finds_nested_keys() {
        let text = "[daemon]\nx = 1\n[[users]]\nid = \"a\"\n[[users]]\nid = \"b\"\nphnoe = \"+1\"\n[routes.match]\nsevrity = 1\n";
        let doc = toml_edit::ImDocument::parse(text).unwrap();
        let span = key_span(&doc, &["daemon".into(), "x".into()]).unwrap();
        assert_eq!(&text[span], "x");
        let span = key_span(&doc, &["users".into(), "1".into(), "phnoe".into()]).unwrap();
        assert_eq!(&text[span.clone()], "phnoe");
        assert_eq!(SourceMap::new(text).locate(span.start), (7, 1));
    }
}
