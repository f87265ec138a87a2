//! panel: being written.
