//! A bounds-checked cursor over PDU octets, and hex conversion.
//!
//! Every decoder reads through [`Reader`], so no decoder indexes a slice directly: running out
//! of input is always a [`PduError::Truncated`] that names the field and the offset, never a
//! panic.

use super::PduError;

/// Cursor over the octets of one PDU. Offsets in errors are relative to the start of the
/// slice given to [`Reader::new`].
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Offset of the next octet.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Octets not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Read one octet.
    pub(crate) fn octet(&mut self, what: &'static str) -> Result<u8, PduError> {
        Ok(self.take(1, what)?[0])
    }

    /// Read `n` octets.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PduError> {
        if self.remaining() < n {
            return Err(PduError::Truncated {
                what,
                offset: self.pos,
                needed: n,
                available: self.remaining(),
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Read exactly seven octets (timestamps, absolute and enhanced validity).
    pub(crate) fn seven(&mut self, what: &'static str) -> Result<[u8; 7], PduError> {
        let mut out = [0u8; 7];
        out.copy_from_slice(self.take(7, what)?);
        Ok(out)
    }
}

/// Parse hex text (either case, surrounding whitespace ignored) into octets.
pub(crate) fn from_hex(hex: &str) -> Result<Vec<u8>, PduError> {
    let hex = hex.trim();
    let mut nibbles = Vec::with_capacity(hex.len());
    for (position, found) in hex.chars().enumerate() {
        match found.to_digit(16) {
            Some(d) => nibbles.push(d as u8),
            None => return Err(PduError::InvalidHex { position, found }),
        }
    }
    if nibbles.len() % 2 != 0 {
        return Err(PduError::OddHexLength { len: nibbles.len() });
    }
    Ok(nibbles.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
}

/// Format octets as uppercase hex, as AT+CMGS expects.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(from_hex(" 00aBff\r\n").unwrap(), vec![0x00, 0xAB, 0xFF]);
        assert_eq!(to_hex(&[0x00, 0xAB, 0xFF]), "00ABFF");
        assert_eq!(
            from_hex("0").unwrap_err(),
            PduError::OddHexLength { len: 1 }
        );
        assert_eq!(
            from_hex("0G").unwrap_err(),
            PduError::InvalidHex {
                position: 1,
                found: 'G'
            }
        );
        assert_eq!(from_hex("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn reader_reports_truncation_with_context() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.octet("first").unwrap(), 1);
        let err = r.take(5, "body").unwrap_err();
        assert_eq!(
            err,
            PduError::Truncated {
                what: "body",
                offset: 1,
                needed: 5,
                available: 2
            }
        );
        assert!(err.is_truncated());
        assert_eq!(r.take(2, "rest").unwrap(), &[2, 3]);
        assert_eq!(r.remaining(), 0);
    }
}
