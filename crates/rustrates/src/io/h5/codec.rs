//! Trace chunks encoded the way HDF5 stores them, so the worker threads can do the encoding
//! (type conversion, shuffle, deflate) in parallel and the writer only hands finished bytes
//! to `H5Dwrite_chunk`.
//!
//! The encoding is HDF5's own filter pipeline, shuffle then deflate (zlib stream), as the
//! dataset declares it: any HDF5 reader (h5py, pandas, PyTables) decodes it with no plugin.
//! Deflate is libdeflate's, several times faster than zlib at the same level on one core.

use std::cell::RefCell;

/// Traces are stored as IEEE doubles, or as singles when a user asks for half the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TraceType {
    #[default]
    Float64,
    Float32,
}

impl TraceType {
    /// The names front ends accept, as for `float_precision`: `float64` (also `double`,
    /// `f64`) and `float32` (`single`, `f32`).
    pub fn parse(name: &str) -> Option<TraceType> {
        match name {
            "float64" | "double" | "f64" => Some(TraceType::Float64),
            "float32" | "single" | "f32" => Some(TraceType::Float32),
            _ => None,
        }
    }

    /// The canonical name, as [`TraceType::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            TraceType::Float64 => "float64",
            TraceType::Float32 => "float32",
        }
    }

    /// Bytes per stored value.
    pub fn size(self) -> usize {
        match self {
            TraceType::Float64 => 8,
            TraceType::Float32 => 4,
        }
    }
}

/// How the chunks of one `/traces` dataset are laid out and encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ChunkCodec {
    /// Points per chunk; a chunk holds every sample and column of its points, so a block of
    /// consecutive points is a run of whole chunks, contiguous in the block's memory.
    pub points_per_chunk: usize,
    /// Values per point (samples × columns).
    pub per_point: usize,
    pub dtype: TraceType,
    /// Deflate level, `None`: stored raw (no filters).
    pub deflate: Option<u8>,
}

impl ChunkCodec {
    /// Values in one (full) chunk.
    pub fn chunk_values(&self) -> usize {
        self.points_per_chunk * self.per_point
    }

    /// Encodes the values of one chunk, `[point][time][column]`. A chunk at the end of the
    /// dataset may hold fewer points: HDF5 stores edge chunks at full size, so the rest is
    /// padded with NaN (never visible: readers see only the dataset's extent).
    pub fn encode(&self, values: &[f64]) -> ChunkBytes {
        self.encode_into(values, ChunkBytes::default())
    }

    /// [`ChunkCodec::encode`] into `raw`, a buffer of an earlier chunk handed back by the
    /// writer: a buffer of the chunk's size is reused as it is (no allocation, no page faults,
    /// no zeroing; every byte is overwritten).
    pub fn encode_into(&self, values: &[f64], raw: ChunkBytes) -> ChunkBytes {
        let n = self.chunk_values();
        debug_assert!(values.len() <= n, "at most one chunk of values");
        let size = self.dtype.size();
        // Into a buffer of the final size, the values then the padding: loops with no
        // capacity checks, which the compiler turns into vector code.
        let mut raw = raw.sized(n * size);
        let (head, tail) = raw.split_at_mut(values.len() * size);
        match self.dtype {
            TraceType::Float64 => {
                for (out, v) in head.chunks_exact_mut(8).zip(values) {
                    out.copy_from_slice(&v.to_le_bytes());
                }
                for out in tail.chunks_exact_mut(8) {
                    out.copy_from_slice(&f64::NAN.to_le_bytes());
                }
            }
            TraceType::Float32 => {
                for (out, v) in head.chunks_exact_mut(4).zip(values) {
                    out.copy_from_slice(&(*v as f32).to_le_bytes());
                }
                for out in tail.chunks_exact_mut(4) {
                    out.copy_from_slice(&f32::NAN.to_le_bytes());
                }
            }
        }
        let Some(level) = self.deflate else {
            return raw;
        };
        let shuffled = shuffle(&raw, size);
        ChunkBytes::Deflated(deflate(&shuffled, level))
    }
}

/// The unit of `O_DIRECT` transfers: buffers, file offsets and lengths are multiples of it
/// (4096 covers every logical block size Linux filesystems use).
pub(super) const PAGE: usize = 4096;

/// One page of a chunk buffer; the alignment is what makes the buffer usable for `O_DIRECT`.
#[repr(C, align(4096))]
#[derive(Clone, Copy)]
pub(super) struct Page([u8; PAGE]);

/// The stored bytes of one chunk of `/traces`. Raw chunks live in page-aligned memory, so the
/// writer can hand them to the disk with `O_DIRECT` as they are ([`super::direct`]); deflated
/// ones (their size varies) are ordinary vectors.
pub(super) enum ChunkBytes {
    /// `len` bytes at the start of `pages`.
    Raw {
        pages: Vec<Page>,
        len: usize,
    },
    Deflated(Vec<u8>),
}

impl Default for ChunkBytes {
    fn default() -> Self {
        ChunkBytes::Raw {
            pages: Vec::new(),
            len: 0,
        }
    }
}

impl ChunkBytes {
    /// A raw buffer of `len` bytes: this one's pages when it has as many as `len` needs (their
    /// old bytes left in place: the encoder overwrites every one), else fresh zeroed pages.
    pub(super) fn sized(self, len: usize) -> ChunkBytes {
        let needed = len.div_ceil(PAGE);
        let pages = match self {
            ChunkBytes::Raw { pages, .. } if pages.len() == needed => pages,
            _ => vec![Page([0; PAGE]); needed],
        };
        ChunkBytes::Raw { pages, len }
    }

    /// Whether the buffer is worth keeping for the next encode (deflated ones never are).
    pub(super) fn reusable(&self) -> bool {
        matches!(self, ChunkBytes::Raw { .. })
    }
}

impl std::ops::Deref for ChunkBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            // SAFETY: `pages` holds `pages.len() * PAGE` initialised bytes (`Page` is a plain
            // byte array) and `len` never exceeds that ([`ChunkBytes::sized`]).
            ChunkBytes::Raw { pages, len } => unsafe { std::slice::from_raw_parts(pages.as_ptr().cast(), *len) },
            ChunkBytes::Deflated(v) => v,
        }
    }
}

impl std::ops::DerefMut for ChunkBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            // SAFETY: as in `deref`; the borrow of `self` is exclusive.
            ChunkBytes::Raw { pages, len } => unsafe {
                std::slice::from_raw_parts_mut(pages.as_mut_ptr().cast(), *len)
            },
            ChunkBytes::Deflated(v) => v,
        }
    }
}

/// HDF5's shuffle filter: byte `j` of every element, for `j` = 0 … size − 1, one run after
/// the other (the high bytes of neighbouring samples repeat, which deflate then finds).
pub(super) fn shuffle(raw: &[u8], size: usize) -> Vec<u8> {
    let n = raw.len() / size;
    let mut out = vec![0u8; raw.len()];
    for (j, plane) in out.chunks_exact_mut(n.max(1)).take(size).enumerate() {
        for (i, b) in plane.iter_mut().enumerate() {
            *b = raw[i * size + j];
        }
    }
    out
}

thread_local! {
    /// One compressor per worker thread and level (it holds libdeflate's working memory).
    static COMPRESSOR: RefCell<Option<(u8, libdeflater::Compressor)>> = const { RefCell::new(None) };
}

/// A zlib stream of `data`, as HDF5's deflate filter writes and reads it.
fn deflate(data: &[u8], level: u8) -> Vec<u8> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let lvl = libdeflater::CompressionLvl::new(i32::from(level)).unwrap_or_default();
            *slot = Some((level, libdeflater::Compressor::new(lvl)));
        }
        let (_, compressor) = slot.as_mut().expect("set above");
        let mut out = vec![0u8; compressor.zlib_compress_bound(data.len())];
        let len = compressor
            .zlib_compress(data, &mut out)
            .expect("the output buffer has zlib_compress_bound bytes");
        out.truncate(len);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_groups_byte_planes() {
        // Two 4-byte elements: planes are (byte 0 of each), (byte 1 of each), ...
        let raw = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(shuffle(&raw, 4), vec![1, 5, 2, 6, 3, 7, 4, 8]);
    }
}
