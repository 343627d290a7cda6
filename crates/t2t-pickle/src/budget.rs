//! What interpreting a checkpoint's pickles may cost.
//!
//! Real checkpoints are mostly tensor bytes: their pickles are small next to
//! the file. A hostile pickle of a few kilobytes, though, can ask for
//! gigabytes (a memoised object referenced millions of times, a huge tuple
//! passed to a call over and over, a compressed stream of millions of
//! opcodes) or for quadratic work. So every object the interpreter makes or
//! places, every byte it copies and every step it takes is charged against
//! allowances that are a constant plus a multiple of the file's size.

use crate::error::ErrorKind;

/// One resource: how much may be used, and how much has been.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Allowance {
    /// What is counted, for the error message.
    unit: &'static str,
    limit: usize,
    used: usize,
}

impl Allowance {
    fn new(unit: &'static str, base: usize, per_file: usize) -> Self {
        Self {
            unit,
            limit: base.saturating_add(per_file),
            used: 0,
        }
    }

    pub fn charge(&mut self, amount: usize) -> Result<(), ErrorKind> {
        self.used = self.used.saturating_add(amount);
        if self.used > self.limit {
            return Err(ErrorKind::TooLarge(format!(
                "the pickle needs more than {} {}, the most a file of this size may ask for",
                self.limit, self.unit
            )));
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used
    }

    #[cfg(test)]
    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.used)
    }
}

/// The allowances for all the pickles of one file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Objects made, and references placed on the stack, in the memo, in
    /// containers and in call arguments: a memoised object counts each time
    /// it is placed somewhere.
    pub objects: Allowance,
    /// Bytes of data copied: strings, byte strings, names, array data.
    pub bytes: Allowance,
    /// Interpreter steps: opcodes, plus each reference an opcode moves.
    pub work: Allowance,
    /// Bytes of the values read out of the pickles, tensor data included.
    pub output: Allowance,
}

impl Budget {
    /// Allowances for a file of `file_len` bytes. The constants are far above
    /// what the pickle of any real checkpoint needs (a few objects and tens of
    /// bytes per tensor); the per-byte terms let a Paddle file, whose pickle
    /// carries its arrays inline, be copied a few times over, and let the
    /// values read out grow past the file (f16 storages double when widened
    /// to f32, tied weights are copied per use).
    pub fn for_file(file_len: u64) -> Self {
        let len = usize::try_from(file_len).unwrap_or(usize::MAX);
        Self {
            objects: Allowance::new("objects", 1 << 20, len / 2),
            bytes: Allowance::new("bytes", 64 << 20, len.saturating_mul(4)),
            work: Allowance::new("steps", 16 << 20, len.saturating_mul(16)),
            output: Allowance::new("bytes of values", 64 << 20, len.saturating_mul(16)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowances_grow_with_the_file_and_refuse_past_their_limit() {
        let small = Budget::for_file(0);
        let large = Budget::for_file(1 << 30);
        assert!(large.bytes.limit > small.bytes.limit + (1 << 30));
        let mut objects = small.objects;
        objects.charge(small.objects.limit).unwrap();
        let error = objects.charge(1).unwrap_err();
        assert!(matches!(error, ErrorKind::TooLarge(_)), "{error}");
        assert!(error.to_string().contains("objects"), "{error}");
    }
}
