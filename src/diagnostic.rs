//! Problems found in user input, located as `FILE:LINE:COL` where they have a place.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// A place in a file: 1-based line and column (the column counts characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

impl Location {
    /// The location of byte `offset` in `text`. For many lookups in one text, build a
    /// [`LineIndex`] once instead.
    pub fn of_offset(file: &Arc<str>, text: &str, offset: usize) -> Location {
        LineIndex::new(text).locate(file, offset)
    }

    /// `FILE:LINE`, the short form used to cite a rule.
    pub fn file_line(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// Where each line of a text starts, for turning byte offsets into line and column
/// without rescanning the text each time.
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    pub fn locate(&self, file: &Arc<str>, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        Location {
            file: Arc::clone(file),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(self.text[start..offset].chars().count() + 1).unwrap_or(u32::MAX),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem. Errors stop the command; warnings are reported and it goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Option<Location>,
    pub message: String,
}

impl Diagnostic {
    pub fn error(location: Option<Location>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            location,
            message: message.into(),
        }
    }

    pub fn warning(location: Option<Location>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            location,
            message: message.into(),
        }
    }
}

/// `FILE:LINE:COL: message` for errors, `FILE:LINE:COL: warning: message` for warnings.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The JSON form: `{"file","line","col","message"}`, with nulls where there is no place.
impl Serialize for Diagnostic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Diagnostic", 4)?;
        st.serialize_field("file", &self.location.as_ref().map(|l| &*l.file))?;
        st.serialize_field("line", &self.location.as_ref().map(|l| l.line))?;
        st.serialize_field("col", &self.location.as_ref().map(|l| l.col))?;
        st.serialize_field("message", &self.message)?;
        st.end()
    }
}

/// The known key nearest to a typo, if it is near enough to be a likely meaning.
pub fn closest<'k>(typo: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(typo, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_offsets_by_line_and_character() {
        let file: Arc<str> = "f.toml".into();
        let text = "a = 1\nb = \"é\" x\n";
        assert_eq!(
            Location::of_offset(&file, text, 0).to_string(),
            "f.toml:1:1"
        );
        assert_eq!(
            Location::of_offset(&file, text, 6).to_string(),
            "f.toml:2:1"
        );
        // "é" is two bytes; the column after it counts it once.
        let x = text.find('x').unwrap();
        assert_eq!(
            Location::of_offset(&file, text, x).to_string(),
            "f.toml:2:9"
        );
    }
}
