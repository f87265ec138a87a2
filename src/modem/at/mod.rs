//! modem::at: being written.
