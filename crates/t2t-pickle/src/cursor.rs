//! Bounds-checked reads from an in-memory byte stream.

use crate::error::ErrorKind;

pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8], pos: usize) -> Self {
        Self { data, pos }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The next `len` bytes. Lengths come from the file, so they are checked
    /// against what is left before anything is sliced or allocated.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], ErrorKind> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let bytes = rest.get(..len).ok_or(ErrorKind::Truncated)?;
        self.pos += len;
        Ok(bytes)
    }

    /// Like [`Cursor::take`] for a 64-bit length field.
    pub fn take_u64(&mut self, len: u64) -> Result<&'a [u8], ErrorKind> {
        self.take(usize::try_from(len).map_err(|_| ErrorKind::Truncated)?)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], ErrorKind> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, ErrorKind> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u32(&mut self) -> Result<u32, ErrorKind> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, ErrorKind> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// The bytes up to the next newline, which is consumed but not returned.
    pub fn line(&mut self) -> Result<&'a [u8], ErrorKind> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(ErrorKind::Truncated)?;
        self.pos += len + 1;
        Ok(&rest[..len])
    }
}
