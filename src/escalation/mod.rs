//! escalation: being written.
