//! Parsing a spec ([`GroupSpec::parse`]) and its errors, each with the field and the line.

use super::GroupSpec;
use std::fmt;

/// A spec error: the field and, where known, the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// Field path, e.g. `replicas[2].memory` (empty if unknown).
    pub field: String,
    /// 1-based line in the spec file.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for SpecError {}

/// All errors of one spec, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}
impl GroupSpec {
    /// Parse and validate a spec; every error names its field (and line where possible).
    pub fn parse(text: &str) -> Result<GroupSpec, SpecErrors> {
        let spec: GroupSpec = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            let msg = e.to_string();
            // yaml_serde prefixes the path of the offending field ("replicas[2]: missing field ...").
            let (field, message) = match msg.split_once(": ") {
                Some((f, m)) if !f.contains(' ') => (f.to_string(), m.to_string()),
                _ => (String::new(), msg.clone()),
            };
            let message = match message.split_once(" at line ") {
                Some((m, _)) => m.to_string(),
                None => message,
            };
            SpecErrors(vec![SpecError {
                field,
                line,
                message,
            }])
        })?;
        spec.validate(text)?;
        Ok(spec)
    }
}
