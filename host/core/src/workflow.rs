//! The parts of a workflow definition that are pure parsing: the definition itself, ISO 8601
//! durations, recurrences, retry policies, and the Table action's CSV and HTML. The engine that runs them is in cordon-host.

pub mod definition;
pub mod duration;
pub mod recurrence;
pub mod retry;
pub mod table;
