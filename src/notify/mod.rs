//! notify: being written.

pub mod email;
pub mod smtp_test_server;
