//! Buffers whose first value starts a cache line (64 bytes), for the arrays the generated
//! loops read in rows of lanes.
//!
//! A block of 16 double lanes is a row of 128 bytes: two cache lines when the buffer starts
//! on a line, three (and every 64-byte vector load split across two lines) when it starts 16
//! bytes in, which is where a large `Vec` lands (the allocator's header before an `mmap`ed
//! block). `network_grid.c` aligns its ring and coupling rows to 64 bytes; the same program
//! with its ring and its coupling sums moved 16 bytes off took 1.5–1.65× as long at
//! N = 200 × 16 with delays.

use std::ops::{Deref, DerefMut};

/// Bytes of a cache line: every row of lanes starts on one when a row is a whole number of lines.
pub(crate) const LINE: usize = 64;

/// `len` values from a 64-byte boundary (a `Vec` holding up to one line more, the values from
/// the first boundary in it). Never resized, so the values never move.
pub(crate) struct LineAligned<T> {
    buf: Vec<T>,
    start: usize,
    len: usize,
}

impl<T: Copy + Default> LineAligned<T> {
    /// `len` copies of `value`.
    pub(crate) fn new(len: usize, value: T) -> Self {
        let per_line = (LINE / std::mem::size_of::<T>().max(1)).max(1);
        let buf = vec![value; len + per_line - 1];
        // The boundary is at most `per_line - 1` values on, as the values are at least
        // `size_of::<T>()`-aligned; `align_offset` may decline (then: from the start).
        let start = match buf.as_ptr().align_offset(LINE) {
            s if s < per_line => s,
            _ => 0,
        };
        LineAligned { buf, start, len }
    }

    /// The values of `values`, in a buffer of their own.
    pub(crate) fn from_slice(values: &[T]) -> Self {
        let mut out = Self::new(values.len(), T::default());
        out.copy_from_slice(values);
        out
    }
}

impl<T> Deref for LineAligned<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl<T> DerefMut for LineAligned<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

impl<T: Copy + Default> Clone for LineAligned<T> {
    /// A new buffer, aligned on its own (a cloned `Vec` may start anywhere).
    fn clone(&self) -> Self {
        Self::from_slice(self)
    }
}

impl<T> Default for LineAligned<T> {
    fn default() -> Self {
        LineAligned {
            buf: Vec::new(),
            start: 0,
            len: 0,
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for LineAligned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every buffer starts on a 64-byte boundary and holds exactly its values, whatever the
    /// allocator returned (small ones from the heap, large ones `mmap`ed 16 bytes into a page).
    #[test]
    fn values_start_on_a_cache_line_and_keep_their_length() {
        for len in [0usize, 1, 7, 8, 9, 100, 1 << 20] {
            let a = LineAligned::new(len, 2.5f64);
            assert_eq!(a.len(), len);
            assert!(a.iter().all(|&x| x == 2.5));
            if len > 0 {
                assert_eq!(a.as_ptr() as usize % LINE, 0, "f64 × {len}");
            }
            let b = LineAligned::new(len, 1.5f32);
            if len > 0 {
                assert_eq!(b.as_ptr() as usize % LINE, 0, "f32 × {len}");
            }
            let c = a.clone();
            assert_eq!(&c[..], &a[..]);
            if len > 0 {
                assert_eq!(c.as_ptr() as usize % LINE, 0, "clone of f64 × {len}");
            }
        }
        let from: Vec<f64> = (0..1000).map(|i| f64::from(i) * 0.5).collect();
        let a = LineAligned::from_slice(&from);
        assert_eq!(&a[..], &from[..]);
        assert_eq!(a.as_ptr() as usize % LINE, 0);
    }
}
