//! The pseudo-terminal the simulated modem sits behind, and the symlink the daemon opens.
//!
//! Owns the master side (non-blocking, driven through tokio's `AsyncFd`) and keeps the slave
//! side open itself, in raw mode, for the PTY's whole life. Keeping the slave open means: the
//! daemon may open and close the link as often as it likes without the master seeing `EIO`,
//! and bytes written while nobody has the port open wait in the slave's input queue — just as
//! a real modem's output waits in the USB serial driver. Dropping a [`Pty`] closes both sides,
//! so a daemon that still has the port open reads end-of-file and its writes fail with `EIO`:
//! that is how the "vanish" fault looks like a USB modem unplugged.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::termios::{self, SetArg};
use tokio::io::unix::AsyncFd;

/// A PTY whose slave is reachable through a symlink.
pub struct Pty {
    master: Arc<AsyncFd<OwnedFd>>,
    _slave: OwnedFd,
    slave_path: PathBuf,
    link: PathBuf,
}

/// Shared access to the master side for the reader and the writer task. Cloning shares the
/// descriptor; it is closed when the [`Pty`] and every clone are gone.
#[derive(Clone)]
pub struct Master(Arc<AsyncFd<OwnedFd>>);

impl Pty {
    /// Opens a PTY, puts its slave in raw mode and points `link` at the slave (replacing what
    /// was there, atomically, so a daemon polling the path never sees a half-made link).
    pub fn create(link: &Path) -> io::Result<Pty> {
        let pair = nix::pty::openpty(None, None).map_err(io::Error::from)?;
        let mut t = termios::tcgetattr(&pair.slave).map_err(io::Error::from)?;
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(&pair.slave, SetArg::TCSANOW, &t).map_err(io::Error::from)?;
        let slave_path = nix::unistd::ttyname(&pair.slave).map_err(io::Error::from)?;
        let flags = fcntl(&pair.master, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(&pair.master, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, so the descriptor stays open and
        // names the same PTY master until the `AsyncFd` is dropped.
        let master = Arc::new(unsafe { AsyncFd::register(pair.master) }.map_err(io::Error::from)?);
        if let Some(dir) = link.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = link.with_file_name(format!(
            ".{}.{}.tmp",
            link.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&slave_path, &tmp)?;
        std::fs::rename(&tmp, link)?;
        Ok(Pty {
            master,
            _slave: pair.slave,
            slave_path,
            link: link.to_path_buf(),
        })
    }

    /// The slave device (`/dev/pts/N`).
    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// A handle on the master side for reading and writing.
    pub fn master(&self) -> Master {
        Master(self.master.clone())
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // Remove the link only if it still points at this PTY (a newer one may have replaced it).
        if std::fs::read_link(&self.link).ok().as_deref() == Some(self.slave_path.as_path()) {
            let _ = std::fs::remove_file(&self.link);
        }
    }
}

impl Master {
    /// Reads what the DTE wrote; waits until something is there.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.0.readable().await?;
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(io::Error::from)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `buf`; waits while the slave's input queue is full.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let mut guard = self.0.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), buf).map_err(io::Error::from))
            {
                Ok(Ok(n)) => buf = &buf[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[tokio::test]
    async fn bytes_cross_the_pty_both_ways_through_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("modem");
        let pty = Pty::create(&link).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), pty.slave_path());
        let mut dte = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&link)
            .unwrap();
        dte.write_all(b"AT\r").unwrap();
        let m = pty.master();
        let mut buf = [0u8; 16];
        let n = m.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"AT\r");
        m.write_all(b"\r\nOK\r\n").await.unwrap();
        let mut got = [0u8; 6];
        dte.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"\r\nOK\r\n");
        drop(pty);
        assert!(
            std::fs::symlink_metadata(&link).is_err(),
            "link removed on drop"
        );
    }
}
