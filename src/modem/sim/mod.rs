//! modem::sim: being written.
