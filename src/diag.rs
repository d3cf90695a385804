//! A located diagnostic for description files: file, line, column, what was expected.
//!
//! Every loader (model descriptions, HF configs, substrates, search spaces) reports problems
//! as [`LocatedError`]s, rendered by miette with the offending source line underlined.

use miette::{Diagnostic, NamedSource, SourceSpan};

/// One problem at one place in one file.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("{file}:{line}:{column}: {message}")]
pub struct LocatedError {
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    pub message: String,
    #[help]
    pub help: Option<String>,
    #[source_code]
    src: NamedSource<String>,
    #[label("here")]
    span: SourceSpan,
}

impl LocatedError {
    /// An error at byte range `(offset, len)` of `src`.
    pub fn new(file: &str, src: &str, span: (usize, usize), message: String, help: Option<String>) -> Self {
        let offset = floor_char_boundary(src, span.0.min(src.len()));
        let len = span.1.min(src.len() - offset);
        let (line, column) = line_col(src, offset);
        LocatedError {
            file: file.to_string(),
            line,
            column,
            message,
            help,
            src: NamedSource::new(file, src.to_string()),
            span: (offset, len).into(),
        }
    }

    /// An error at a 1-based line and column (as serde_json and YAML parsers report them).
    pub fn from_line_col(
        file: &str,
        src: &str,
        line: usize,
        column: usize,
        message: String,
        help: Option<String>,
    ) -> Self {
        let offset = offset_of(src, line, column);
        let len = src[offset..].chars().next().map_or(0, char::len_utf8);
        LocatedError::new(file, src, (offset, len), message, help)
    }

    /// Byte offset of the error in its source.
    pub fn offset(&self) -> usize {
        self.span.offset()
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// 1-based (line, column) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Byte offset of a 1-based (line, column); clamps to the source.
pub fn offset_of(src: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in src.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let col_bytes: usize = l.chars().take(column.saturating_sub(1)).map(char::len_utf8).sum();
            return (offset + col_bytes).min(src.len());
        }
        offset += l.len();
    }
    src.len()
}

/// Several problems found at once (validation collects every one).
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{} problem(s) in {file}", related.len())]
pub struct Diagnostics {
    pub file: String,
    #[related]
    pub related: Vec<LocatedError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_round_trip() {
        let src = "a: 1\nbé: 2\nc: 3\n";
        for (line, col) in [(1, 1), (2, 1), (2, 3), (3, 2)] {
            let off = offset_of(src, line, col);
            assert_eq!(line_col(src, off), (line, col));
        }
        let e = LocatedError::from_line_col("f.yaml", src, 2, 4, "bad".into(), None);
        assert_eq!((e.line, e.column), (2, 4));
        assert_eq!(e.to_string(), "f.yaml:2:4: bad");
    }
}
