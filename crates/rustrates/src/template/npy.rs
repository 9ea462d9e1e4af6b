//! The `.npy` reader (format versions 1–3, as `np.save` writes them): the engine's one reader
//! for connectivity matrices and the CLI's signals.
//!
//! A 1000 × 1000 matrix is 8 MB. [`read_npy`] reads a float64 file in the machine's byte order
//! and C order (what `np.save` writes on every common machine) straight from the file into the
//! shared buffer the circuit keeps (no per-value work, no second copy); any other layout
//! (other byte order, Fortran order, float32, integers) is read whole and converted in one
//! pass. Values arrive exactly: float32 and integers up to 2⁵³ in size are exact in float64,
//! larger integers are refused.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

/// What a `.npy` file's header says.
struct Header {
    dims: Vec<usize>,
    dtype: Dtype,
    fortran: bool,
    /// Offset of the first data byte.
    data_start: usize,
}

impl Header {
    fn count(&self) -> usize {
        self.dims.iter().product()
    }

    fn data_len(&self) -> usize {
        self.count() * self.dtype.size
    }

    /// Column-major data of a matrix, to be transposed into rows.
    fn transposed(&self) -> bool {
        self.fortran && self.dims.len() == 2
    }

    fn check_data_len(&self, found: usize) -> Result<(), String> {
        let need = self.data_len();
        if found != need {
            return Err(format!(
                "the .npy data has {found} bytes, its shape {:?} needs {need}",
                self.dims
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Float,
    Int,
    Uint,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Dtype {
    kind: Kind,
    /// Bytes per value.
    size: usize,
    little_endian: bool,
}

impl Dtype {
    /// float64 in this machine's byte order: the bytes are the values.
    fn is_native_f64(&self) -> bool {
        self.kind == Kind::Float && self.size == 8 && self.little_endian == cfg!(target_endian = "little")
    }
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Largest integer magnitude every smaller one of which float64 holds exactly.
const EXACT_INT: u64 = 1 << 53;

/// A `.npy` file: its shape and its values (float64, float32 or integers; a 2-D array in C or
/// Fortran order) as float64 in row-major order.
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Arc<[f64]>), String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    // The magic, the version and the header's length, then the header (a few hundred bytes).
    let mut head = vec![0u8; 12.min(file_len as usize)];
    file.read_exact(&mut head).map_err(|e| e.to_string())?;
    let (header_len, start) = header_extent(&head)?;
    let already = head.len();
    head.resize((start + header_len).max(already), 0);
    let got = read_up_to(&mut file, &mut head[already..]).map_err(|e| e.to_string())?;
    let header = parse_header(&head[..already + got], header_len, start)?;
    let data_len = (file_len as usize).saturating_sub(header.data_start);
    header.check_data_len(data_len)?;
    file.seek(SeekFrom::Start(header.data_start as u64))
        .map_err(|e| e.to_string())?;
    let values = Arc::<[f64]>::new_zeroed_slice(header.count());
    // SAFETY: zero bytes are the float64 0.0, a valid value.
    let mut values = unsafe { values.assume_init() };
    let out = Arc::get_mut(&mut values).expect("a new Arc has no other owner");
    if header.dtype.is_native_f64() && !header.transposed() {
        // SAFETY: `out` is `data_len` bytes of initialised f64s, borrowed exclusively here;
        // every bit pattern is a valid f64, so writing bytes into it is sound.
        let bytes = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), data_len) };
        file.read_exact(bytes).map_err(|e| e.to_string())?;
    } else {
        let mut raw = vec![0u8; data_len];
        file.read_exact(&mut raw).map_err(|e| e.to_string())?;
        decode(&header, &raw, out)?;
    }
    Ok((header.dims, values))
}

/// [`read_npy`] of a file's bytes.
pub fn parse_npy(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f64>), String> {
    let (header_len, start) = header_extent(bytes)?;
    let header = parse_header(bytes, header_len, start)?;
    let data = &bytes[header.data_start..];
    header.check_data_len(data.len())?;
    let mut values = vec![0.0; header.count()];
    decode(&header, data, &mut values)?;
    Ok((header.dims, values))
}

/// Fills `buf` from `r` as far as the reader has bytes; returns how many it read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The header's length and where it starts, from the first 12 bytes.
fn header_extent(bytes: &[u8]) -> Result<(usize, usize), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY header)".into());
    }
    match bytes[6] {
        1 => Ok((u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)),
        2 | 3 if bytes.len() >= 12 => Ok((
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )),
        v => Err(format!(".npy format version {v} is not supported")),
    }
}

fn parse_header(bytes: &[u8], header_len: usize, start: usize) -> Result<Header, String> {
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("the .npy header is cut short")?;
    let field = |name: &str| -> Option<&str> {
        let at = header.find(&format!("'{name}'"))? + name.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    let descr = field("descr").ok_or("the .npy header has no 'descr'")?;
    let dtype = parse_dtype(descr)?;
    let fortran = field("fortran_order").is_some_and(|s| s.starts_with("True"));
    let shape_text = field("shape").ok_or("the .npy header has no 'shape'")?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split_once(')'))
        .map(|(s, _)| s)
        .ok_or("the .npy shape is not a tuple")?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad .npy shape ({inner})")))
        .collect::<Result<_, _>>()?;
    dims.iter()
        .try_fold(8usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("the .npy shape ({inner}) is too large"))?;
    Ok(Header {
        dims,
        dtype,
        fortran,
        data_start: start + header_len,
    })
}

/// `'<f8'`, `'>i4'`, `'|u1'`, …: float64/32, signed and unsigned integers of 1–8 bytes.
fn parse_dtype(descr: &str) -> Result<Dtype, String> {
    let found = descr.split([',', '}']).next().unwrap_or(descr).trim();
    let unsupported =
        || format!("values are {found}, expected float64 ('<f8'), float32 ('<f4') or integers ('<i8', '<u4', …)");
    let code = found
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .ok_or_else(unsupported)?;
    let (order, rest) = match code.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &code[1..]),
        _ => ('=', code),
    };
    let little_endian = match order {
        '<' => true,
        '>' => false,
        _ => cfg!(target_endian = "little"),
    };
    let (kind, size) = match rest {
        "f8" => (Kind::Float, 8),
        "f4" => (Kind::Float, 4),
        "i1" | "i2" | "i4" | "i8" => (Kind::Int, rest[1..].parse().expect("a digit")),
        "u1" | "u2" | "u4" | "u8" => (Kind::Uint, rest[1..].parse().expect("a digit")),
        _ => return Err(unsupported()),
    };
    Ok(Dtype {
        kind,
        size,
        little_endian,
    })
}

/// `data` (the header's dtype and order) as float64 in row-major order into `out`.
fn decode(header: &Header, data: &[u8], out: &mut [f64]) -> Result<(), String> {
    if header.transposed() {
        let mut column_major = vec![0.0; out.len()];
        convert(header.dtype, data, &mut column_major)?;
        let (rows, cols) = (header.dims[0], header.dims[1]);
        for (i, row) in out.chunks_exact_mut(cols.max(1)).enumerate().take(rows) {
            for (j, x) in row.iter_mut().enumerate() {
                *x = column_major[j * rows + i];
            }
        }
        return Ok(());
    }
    convert(header.dtype, data, out)
}

/// Each value of `data` (of `dtype`, in file order) as a float64.
fn convert(dtype: Dtype, data: &[u8], out: &mut [f64]) -> Result<(), String> {
    fn each<const W: usize>(data: &[u8], out: &mut [f64], f: impl Fn([u8; W]) -> f64) {
        for (x, b) in out.iter_mut().zip(data.chunks_exact(W)) {
            *x = f(b.try_into().expect("chunks of W bytes"));
        }
    }
    let le = dtype.little_endian;
    let int = |v: i128| v as f64;
    match (dtype.kind, dtype.size) {
        (Kind::Float, 8) => each::<8>(data, out, |b| {
            if le {
                f64::from_le_bytes(b)
            } else {
                f64::from_be_bytes(b)
            }
        }),
        (Kind::Float, 4) => each::<4>(data, out, |b| {
            f64::from(if le {
                f32::from_le_bytes(b)
            } else {
                f32::from_be_bytes(b)
            })
        }),
        (Kind::Int, 1) | (Kind::Uint, 1) => {
            let signed = dtype.kind == Kind::Int;
            each::<1>(
                data,
                out,
                |b| if signed { f64::from(b[0] as i8) } else { f64::from(b[0]) },
            )
        }
        (Kind::Int, 2) => each::<2>(data, out, |b| {
            f64::from(if le {
                i16::from_le_bytes(b)
            } else {
                i16::from_be_bytes(b)
            })
        }),
        (Kind::Uint, 2) => each::<2>(data, out, |b| {
            f64::from(if le {
                u16::from_le_bytes(b)
            } else {
                u16::from_be_bytes(b)
            })
        }),
        (Kind::Int, 4) => each::<4>(data, out, |b| {
            f64::from(if le {
                i32::from_le_bytes(b)
            } else {
                i32::from_be_bytes(b)
            })
        }),
        (Kind::Uint, 4) => each::<4>(data, out, |b| {
            f64::from(if le {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            })
        }),
        (Kind::Int, 8) | (Kind::Uint, 8) => {
            let signed = dtype.kind == Kind::Int;
            let value = |b: [u8; 8]| -> i128 {
                match (signed, le) {
                    (true, true) => i64::from_le_bytes(b).into(),
                    (true, false) => i64::from_be_bytes(b).into(),
                    (false, true) => u64::from_le_bytes(b).into(),
                    (false, false) => u64::from_be_bytes(b).into(),
                }
            };
            if let Some((k, v)) = data
                .chunks_exact(8)
                .map(|b| value(b.try_into().expect("chunks of 8 bytes")))
                .enumerate()
                .find(|(_, v)| v.unsigned_abs() > u128::from(EXACT_INT))
            {
                return Err(format!(
                    "value {v} (the {}th in the file) is not exactly a float64 (integers up to 2^53 are)",
                    k + 1
                ));
            }
            each::<8>(data, out, |b| int(value(b)));
        }
        (kind, size) => return Err(format!("values of {size} bytes ({kind:?}) are not supported")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::test_models::{npy_bytes, npy_file_bytes};

    /// The 2 × 3 matrix `[[1, -2, 3], [4, -5, 127]]` (absolute values for unsigned types) in
    /// the bytes of `descr`, C or Fortran order: what `np.save(m.astype(descr))` writes,
    /// encoded by the standard library's conversions of each Rust type.
    fn matrix_file(descr: &str, fortran: bool) -> (Vec<u8>, Vec<f64>) {
        let signed = !descr.contains('u');
        let rows: Vec<f64> = [1.0, -2.0, 3.0, 4.0, -5.0, 127.0]
            .iter()
            .map(|&x: &f64| if signed { x } else { x.abs() })
            .collect();
        let order: Vec<f64> = if fortran {
            (0..6).map(|k| rows[(k % 2) * 3 + k / 2]).collect()
        } else {
            rows.clone()
        };
        let big = descr.starts_with('>');
        let mut data = Vec::new();
        for &x in &order {
            macro_rules! put {
                ($v:expr) => {
                    data.extend(if big {
                        $v.to_be_bytes().to_vec()
                    } else {
                        $v.to_le_bytes().to_vec()
                    })
                };
            }
            match &descr[1..] {
                "f8" => put!(x),
                "f4" => put!(x as f32),
                "i1" => put!(x as i8),
                "u1" => put!(x as u8),
                "i2" => put!(x as i16),
                "u2" => put!(x as u16),
                "i4" => put!(x as i32),
                "u4" => put!(x as u32),
                "i8" => put!(x as i64),
                "u8" => put!(x as u64),
                other => panic!("no writer for {other}"),
            }
        }
        (npy_file_bytes(&format!("'{descr}'"), &[2, 3], fortran, &data), rows)
    }

    /// A matrix read: its shape and values, or the error.
    type Matrix = Result<(Vec<usize>, Vec<f64>), String>;

    /// Reads `bytes` both ways: from memory and from a file (the bulk read).
    fn both(bytes: &[u8]) -> (Matrix, Matrix) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("m.npy");
        std::fs::write(&path, bytes).expect("write");
        let from_file = read_npy(&path).map(|(dims, values)| (dims, values.to_vec()));
        (parse_npy(bytes), from_file)
    }

    #[test]
    fn npy_of_every_number_type_byte_order_and_order_reads_the_values_written() {
        let descrs = [
            "<f8", ">f8", "<f4", ">f4", "|i1", "|u1", "<i2", ">i2", "<u2", ">u2", "<i4", ">i4", "<u4", ">u4", "<i8",
            ">i8", "<u8", ">u8",
        ];
        for descr in descrs {
            for fortran in [false, true] {
                let (bytes, want) = matrix_file(descr, fortran);
                let (memory, file) = both(&bytes);
                let want = Ok((vec![2, 3], want));
                assert_eq!(memory, want, "{descr}, fortran {fortran}, from memory");
                assert_eq!(file, want, "{descr}, fortran {fortran}, from the file");
            }
        }
    }

    #[test]
    fn npy_float64_arrives_bit_for_bit_through_the_bulk_read() {
        // Values no decimal round trip is needed for: a subnormal, −0, the extremes.
        let values = [0.1, -0.0, 5e-324, f64::MAX, -f64::MIN_POSITIVE, 1.0 / 3.0];
        for (fortran, file_order) in [
            (false, values),
            (true, [0.1, f64::MAX, -0.0, -f64::MIN_POSITIVE, 5e-324, 1.0 / 3.0]),
        ] {
            let bytes = npy_bytes(2, 3, &file_order, fortran);
            let (memory, file) = both(&bytes);
            for got in [memory, file] {
                let (dims, got) = got.expect("reads");
                assert_eq!(dims, [2, 3]);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&values), "fortran {fortran}");
            }
        }
    }

    #[test]
    fn npy_integers_beyond_2_pow_53_are_refused_not_rounded() {
        let exact = (1i64 << 53).to_le_bytes();
        let (memory, file) = both(&npy_file_bytes("'<i8'", &[1], false, &exact));
        assert_eq!(memory, Ok((vec![1], vec![9007199254740992.0])));
        assert_eq!(file, memory);
        for (descr, data) in [
            ("'<i8'", ((1i64 << 53) + 1).to_le_bytes()),
            ("'<i8'", (-(1i64 << 53) - 1).to_le_bytes()),
            ("'>u8'", u64::MAX.to_be_bytes()),
        ] {
            let (memory, file) = both(&npy_file_bytes(descr, &[1], false, &data));
            for e in [memory.unwrap_err(), file.unwrap_err()] {
                assert!(e.contains("is not exactly a float64"), "{descr}: {e}");
            }
        }
    }

    #[test]
    fn npy_bad_headers_and_lengths_say_what_is_wrong() {
        let good = npy_bytes(1, 2, &[1.0, 2.0], false);
        let replaced = |from: &[u8], to: &[u8]| {
            let mut b = good.clone();
            let at = b.windows(from.len()).position(|w| w == from).expect("in the header");
            b[at..at + from.len()].copy_from_slice(to);
            b
        };
        let cases: [(Vec<u8>, &str); 7] = [
            (b"hello".to_vec(), "not a .npy file"),
            (
                good[..good.len() - 3].to_vec(),
                "the .npy data has 13 bytes, its shape [1, 2] needs 16",
            ),
            (replaced(b"<f8", b"<c8"), "values are '<c8', expected float64"),
            (
                replaced(b"\x01\x00", b"\x04\x00"),
                ".npy format version 4 is not supported",
            ),
            (replaced(b"(1, 2)", b"[1, 2]"), "the .npy shape is not a tuple"),
            (replaced(b"'descr'", b"'dtype'"), "the .npy header has no 'descr'"),
            (good[..40].to_vec(), "the .npy header is cut short"),
        ];
        for (bytes, want) in cases {
            let (memory, file) = both(&bytes);
            for e in [memory.unwrap_err(), file.unwrap_err()] {
                assert!(e.contains(want), "want `{want}`, got `{e}`");
            }
        }
    }
}
