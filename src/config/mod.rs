//! config: being written.
