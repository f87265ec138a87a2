//! Opening the modem's port: the narrow trait the driver reopens through, and the serial
//! implementation.
//!
//! The driver reopens after every loss (USB replug, far side closed), so opening is a trait:
//! [`SerialOpener`] in production, `fake::ScriptedOpener` in unit tests.
//!
//! Facts measured with tokio-serial on a PTY: modem-control ioctls (DTR/RTS) fail with
//! ENOTTY, so none are required here; the port is opened exclusively, so a second pagerbox on
//! the same device fails to open instead of interleaving commands; bytes the modem sent while
//! the port was closed are still buffered on reopen, which is why the engine drains and resyncs
//! after every open.

use std::future::Future;
use std::io;
use std::path::PathBuf;

use super::engine::Port;

/// Opens (and reopens) the modem's byte stream.
pub trait PortOpener: Send + 'static {
    /// The stream type.
    type Port: Port;

    /// Opens the port. Errors mean "not there now" (device missing, busy, permission); the
    /// driver retries with backoff.
    fn open(&mut self) -> impl Future<Output = io::Result<Self::Port>> + Send;

    /// What is being opened, for logs and health reasons.
    fn describe(&self) -> String;
}

/// Opens a serial device (or PTY) with tokio-serial.
#[derive(Debug, Clone)]
pub struct SerialOpener {
    /// Device path, e.g. `/dev/ttyUSB2` or a simulator's PTY link.
    pub device: PathBuf,
    /// Baud rate (ignored by PTYs and USB CDC ports, used by real UARTs).
    pub baud: u32,
}

impl PortOpener for SerialOpener {
    type Port = tokio_serial::SerialStream;

    async fn open(&mut self) -> io::Result<Self::Port> {
        let path = self.device.to_string_lossy().into_owned();
        let builder = tokio_serial::new(path, self.baud)
            .data_bits(tokio_serial::DataBits::Eight)
            .parity(tokio_serial::Parity::None)
            .stop_bits(tokio_serial::StopBits::One)
            .flow_control(tokio_serial::FlowControl::None);
        let mut port = tokio_serial::SerialStream::open(&builder).map_err(io::Error::from)?;
        // Exclusive access is what we want; a PTY may refuse the ioctl, which is harmless.
        let _ = port.set_exclusive(true);
        Ok(port)
    }

    fn describe(&self) -> String {
        self.device.display().to_string()
    }
}
