//! A problem found in a project, located by workflow, action and JSON path.

/// One problem in a project, located as precisely as it can be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The workflow's name, or the file (`connections.json`) for project-level problems.
    pub workflow: String,
    pub action: Option<String>,
    /// A JSON path into the file, such as `$.definition.actions.Send.inputs.body`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.action {
            Some(action) => write!(
                f,
                "{}: action {action:?} at {}: {}",
                self.workflow, self.path, self.message
            ),
            None => write!(f, "{}: at {}: {}", self.workflow, self.path, self.message),
        }
    }
}
