//! modem::pdu: being written.
