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
            Some(name) => {
                // Triggers are located like actions (by name), but are not called actions.
                let what = if self.path.starts_with("$.definition.triggers.") {
                    "trigger"
                } else {
                    "action"
                };
                write!(
                    f,
                    "{}: {what} {name:?} at {}: {}",
                    self.workflow, self.path, self.message
                )
            }
            None => write!(f, "{}: at {}: {}", self.workflow, self.path, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Problem;

    #[test]
    fn a_trigger_is_called_a_trigger() {
        let problem = |path: &str| Problem {
            workflow: "orders".into(),
            action: Some("every".into()),
            path: path.into(),
            message: "wrong".into(),
        };
        assert_eq!(
            problem("$.definition.triggers.every.recurrence").to_string(),
            "orders: trigger \"every\" at $.definition.triggers.every.recurrence: wrong"
        );
        assert_eq!(
            problem("$.definition.actions.every.inputs").to_string(),
            "orders: action \"every\" at $.definition.actions.every.inputs: wrong"
        );
    }
}
