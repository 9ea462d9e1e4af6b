//! Trace chunks written with `O_DIRECT` at the addresses HDF5 allocated (`super::super::direct`)
//! against the same files written through HDF5 and the page cache.

use super::super::direct::{Mode, MODE};
use super::super::writer;
use super::*;
use crate::solve::{Method, SimConfig};

/// Sets the direct-write mode for the files this thread creates until dropped.
struct ModeGuard;

impl ModeGuard {
    fn set(mode: Mode) -> ModeGuard {
        MODE.with(|m| m.set(Some(mode)));
        ModeGuard
    }
}

impl Drop for ModeGuard {
    fn drop(&mut self) {
        MODE.with(|m| m.set(None));
    }
}

/// The 20-point fake sweep run to `t_end` (samples every 0.1 after the cutoff 0.5), in
/// blocks of 3 points: chunks of 3 points, the last one holding 2.
fn long_spec(t_end: f64) -> SweepSpec {
    let mut s = spec();
    s.sim = SimConfig {
        cutoff: 0.5,
        ..SimConfig::new(Method::Euler, t_end, 0.05, Some(0.1))
    };
    s.block_size = 3;
    s
}

/// The bytes of one stored chunk of `/traces` (3 points, 2 columns).
fn chunk_bytes(path: &Path) -> usize {
    let ds = open_file(path).unwrap().dataset("traces").unwrap();
    let chunk = ds.chunk().unwrap();
    chunk.iter().product::<usize>() * ds.dtype().unwrap().size()
}

#[test]
fn h5_direct_chunk_writes_equal_buffered_ones() {
    // Chunks of exactly 3 pages (256 samples × 2 columns × 8 bytes × 3 points = 12,288 B),
    // of 2 pages and a 1,168-byte tail (195 samples), and the latter as float32 (4,680 B: one
    // page and a tail). Each sweep goes into one file (chunk_size 0: the writer thread writes
    // it directly) and into parts of 6 points merged (the parts written directly, the merge
    // copying their chunks), once with every chunk's whole pages required to go O_DIRECT and
    // once through HDF5. Every dataset value must agree bit for bit: a chunk written at
    // another chunk's address, or a tail written past its chunk, changes the traces (each
    // point's trace differs, and the read-back is also compared with the in-memory run).
    let dir = tempfile::tempdir().unwrap();
    let (c, solver) = fake();
    for (t_end, trace_type, expected_bytes) in [
        (26.1, TraceType::Float64, 12_288),
        (20.0, TraceType::Float64, 9_360),
        (20.0, TraceType::Float32, 4_680),
    ] {
        for chunk_size in [0, 6] {
            let mut spec = long_spec(t_end);
            spec.chunk_size = chunk_size;
            let o = FileOptions { trace_type, ..opts() };
            let mut files = Vec::new();
            for mode in [Mode::Required, Mode::Off] {
                let _mode = ModeGuard::set(mode);
                let out = dir
                    .path()
                    .join(format!("{t_end}_{}_{chunk_size}_{mode:?}.h5", trace_type.name()));
                sweep_to_file(&spec, &c, &out, &o, solving(&solver)).unwrap();
                assert_eq!(chunk_bytes(&out), expected_bytes, "{}", out.display());
                files.push(out);
            }
            let (direct, buffered) = (contents(&files[0]), contents(&files[1]));
            assert_eq!(direct, buffered, "{}", files[0].display());
            assert!(direct.iter().any(|l| l.starts_with("/traces [20, ")));
            assert_file_equals_memory(&files[0], &spec, trace_type);
        }
    }
}

#[test]
fn h5_direct_chunks_land_at_their_points_and_unwritten_ones_read_nan() {
    // One file written by hand: only chunk 1 (points 3..6) gets values, through the direct
    // path; finishing the file writes the chunks no block reached as NaN (they were allocated
    // unfilled). The reference is the values written and NaN elsewhere, and the same file
    // written through HDF5 (where NaN is the fill value).
    let dir = tempfile::tempdir().unwrap();
    let spec = long_spec(20.0);
    let (n, nt, nc) = (20, 195, 2);
    let shape = Shape {
        circuit_name: "Toy".into(),
        time: (0..nt).map(|i| 0.5 + 0.1 * i as f64).collect(),
        columns: vec![("A".into(), "x".into()), ("B".into(), "x".into())],
        stats: Vec::new(),
        keep_traces: true,
        block_size: 3,
        total_points: n,
        trace_type: TraceType::Float64,
    };
    let per_point = nt * nc;
    let values: Vec<f64> = (0..3 * per_point).map(|i| i as f64 * 0.5 - 7.0).collect();
    for mode in [Mode::Required, Mode::Off] {
        let _mode = ModeGuard::set(mode);
        let out = dir.path().join(format!("hand_{mode:?}.h5"));
        let mut open = OpenFile::create(tmp_path(&out), &shape, &spec.param_grid, 0..n, false, true).unwrap();
        let codec = open.codec().unwrap();
        assert_eq!(codec.points_per_chunk, 3);
        assert_eq!(open.direct.is_some(), mode == Mode::Required);
        let block = writer::BlockMsg {
            first: 3,
            status: vec![PointStatus::Ok; 3],
            summaries: Vec::new(),
            traces: vec![writer::TracePiece::Chunk {
                index: 1,
                bytes: codec.encode(&values),
            }],
        };
        open.write_block(block).unwrap();
        open.finish(&out, true).unwrap();
        let stored: Vec<f64> = open_file(&out).unwrap().dataset("traces").unwrap().read_raw().unwrap();
        assert_eq!(stored.len(), n * per_point);
        for (i, v) in stored.iter().enumerate() {
            let point = i / per_point;
            if (3..6).contains(&point) {
                assert_eq!(v.to_bits(), values[i - 3 * per_point].to_bits(), "{mode:?} value {i}");
            } else {
                assert!(v.is_nan(), "{mode:?} value {i} (point {point}) is {v}, not NaN");
            }
        }
    }
}
