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
    /// The location of byte `offset` in `text`.
    pub fn of_offset(file: &Arc<str>, text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            file: Arc::clone(file),
            line: u32::try_from(before.matches('\n').count() + 1).unwrap_or(u32::MAX),
            col: u32::try_from(before[line_start..].chars().count() + 1).unwrap_or(u32::MAX),
        }
    }

    /// `FILE:LINE`, the short form used to cite a rule.
    pub fn file_line(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
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
