//! incident: being written.
