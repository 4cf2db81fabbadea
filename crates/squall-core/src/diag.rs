//! Diagnostics: one problem in an input file, with the path of the value at
//! fault and, where the file has one, its line and column.
//!
//! Validation collects every diagnostic instead of stopping at the first, so
//! a user fixes a bad file in one round trip.

use std::fmt;

use crate::doc::{Document, Path};

/// A 1-based line and column in a source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One problem found in an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: Path,
    pub message: String,
    pub location: Option<Location>,
}

impl Diagnostic {
    pub fn at(path: Path, message: impl Into<String>) -> Self {
        Self {
            path,
            message: message.into(),
            location: None,
        }
    }

    pub fn with_location(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    /// Renders as `file:line:column: path: message` (line and column only
    /// when known), the shape editors and CI logs link to.
    pub fn render(&self, file: &str) -> String {
        let mut out = String::from(file);
        if let Some(loc) = self.location {
            out.push_str(&format!(":{}:{}", loc.line, loc.column));
        }
        if !self.path.is_root() {
            out.push_str(&format!(": {}", self.path));
        }
        out.push_str(&format!(": {}", self.message));
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Collects diagnostics against one document, filling in locations.
pub struct Sink<'a> {
    doc: &'a Document,
    pub items: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub fn new(doc: &'a Document) -> Self {
        Self {
            doc,
            items: Vec::new(),
        }
    }

    pub fn push(&mut self, path: &Path, message: impl Into<String>) {
        let loc = self.doc.location(path);
        self.items
            .push(Diagnostic::at(path.clone(), message).with_location(loc));
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_with_and_without_location() {
        let d = Diagnostic::at(Path::root().key("method").index(1), "bad")
            .with_location(Some(Location { line: 4, column: 3 }));
        assert_eq!(d.render("x.yaml"), "x.yaml:4:3: method[1]: bad");
        let d = Diagnostic::at(Path::root(), "empty");
        assert_eq!(d.render("x.json"), "x.json: empty");
    }
}
