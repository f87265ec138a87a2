//! notify: being written.
