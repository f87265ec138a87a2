//! intake: being written.
