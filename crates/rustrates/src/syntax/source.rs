//! Files, byte ranges and line/column lookup.

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A half-open byte range `[start, end)` inside one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TextRange {
    pub start: u32,
    pub end: u32,
}

impl TextRange {
    pub fn new(start: u32, end: u32) -> Self {
        Self { start, end }
    }
    /// Shift a range that is relative to a string's start by that string's offset in the file.
    pub fn offset(self, by: u32) -> Self {
        Self {
            start: self.start + by,
            end: self.end + by,
        }
    }
    pub fn cover(self, other: Self) -> Self {
        Self {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
    pub fn len(self) -> u32 {
        self.end - self.start
    }
    pub fn is_empty(self) -> bool {
        self.end <= self.start
    }
}

/// A byte range in a known file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub range: TextRange,
}

impl Span {
    pub fn new(file: FileId, start: u32, end: u32) -> Self {
        Self {
            file,
            range: TextRange::new(start, end),
        }
    }
}

/// Start offsets of every line, for byte offset → (line, column) conversion.
#[derive(Clone, Debug, Default)]
pub struct LineIndex {
    line_starts: Vec<u32>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut line_starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i as u32 + 1);
            }
        }
        Self { line_starts }
    }
    /// One-based line and column (column counted in characters) of a byte offset.
    pub fn line_col(&self, text: &str, offset: u32) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(l) => l,
            Err(l) => l - 1,
        };
        let start = self.line_starts[line] as usize;
        let end = (offset as usize).min(text.len());
        let col = text.get(start..end).map_or(end - start, |s| s.chars().count());
        (line + 1, col + 1)
    }
    /// Byte range of a one-based line, without its newline.
    pub fn line_range(&self, text: &str, line: usize) -> (usize, usize) {
        let start = self.line_starts[line - 1] as usize;
        let end = self.line_starts.get(line).map_or(text.len(), |&e| e as usize);
        let end = if end > start && text.as_bytes().get(end - 1) == Some(&b'\n') {
            end - 1
        } else {
            end
        };
        (start, end)
    }
}

/// A loaded file: its display name (path as the user wrote it, or `<builtin>/...`) and text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    pub line_index: LineIndex,
}

/// Every file read while loading one model, so spans can be rendered later.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let text = text.into();
        let line_index = LineIndex::new(&text);
        self.files.push(SourceFile {
            name: name.into(),
            text,
            line_index,
        });
        FileId(self.files.len() as u32 - 1)
    }
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }
    pub fn find(&self, name: &str) -> Option<FileId> {
        self.files.iter().position(|f| f.name == name).map(|i| FileId(i as u32))
    }
    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(i, f)| (FileId(i as u32), f))
    }
    /// One-based (line, column) of a span's start.
    pub fn line_col(&self, span: Span) -> (usize, usize) {
        let f = self.file(span.file);
        f.line_index.line_col(&f.text, span.range.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_and_in_characters() {
        let text = "ab\ncdé\nf";
        let li = LineIndex::new(text);
        assert_eq!(li.line_col(text, 0), (1, 1));
        assert_eq!(li.line_col(text, 3), (2, 1));
        assert_eq!(li.line_col(text, 8), (3, 1));
        assert_eq!(li.line_range(text, 2), (3, 7));
    }
}
