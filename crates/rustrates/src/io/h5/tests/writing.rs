//! A sweep written to its results file: the direct and the parts route, compression, trace
//! precision, block and chunk alignment; interrupted runs and writer errors leave no file.

use super::*;

#[test]
fn h5_file_round_trips_to_the_in_memory_result() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.h5");
    let mut spec = spec();
    let drive: Vec<f64> = (0..40).map(|i| f64::from(i) * 0.25).collect();
    spec.inputs = vec![("A/op/inp".into(), crate::solve::Signal::Shared(drive.clone().into()))];
    let (c, solver) = fake();
    let ctrl = solving(&solver);
    sweep_to_file(&spec, &c, &out, &opts(), ctrl).unwrap();
    let back = read_results(&out).unwrap();
    let mem = in_memory(&spec);
    assert!(same_result(&back, &mem), "file:\n{back:?}\nmemory:\n{mem:?}");
    assert_eq!(back.status.iter().filter(|s| **s != PointStatus::Ok).count(), 5);
    assert!(
        !dir.path().join("results.h5.parts").exists(),
        "parts are removed after the merge"
    );
    let f = File::open(&out).unwrap();
    assert_eq!(read_str_attr(&f, "template_path", &out).unwrap(), "toy.yaml/Toy");
    let settings: serde_json::Value = serde_json::from_str(&read_str_attr(&f, "settings", &out).unwrap()).unwrap();
    assert_eq!(settings["sampling_step_size"], 0.1);
    assert_eq!(f.dataset("traces").unwrap().shape(), vec![20, 15, 2]);
    let stored: Vec<f64> = f.dataset("inputs/A%2Fop%2Finp").unwrap().read_raw().unwrap();
    assert_eq!(stored, drive, "time-series inputs travel with the file");
}

#[test]
fn h5_one_chunk_direct_write_equals_parts_route() {
    // One chunk (chunk_size 0) with a time-series input, every summary, traces and a
    // diverging row. The direct route must give the very file the parts route gives
    // (`keep_parts` forces that route), compressed or not.
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec();
    spec.chunk_size = 0;
    let drive: Vec<f64> = (0..40).map(|i| f64::from(i) * 0.5).collect();
    spec.inputs = vec![("A/op/inp".into(), crate::solve::Signal::Shared(drive.into()))];
    let (c, solver) = fake();
    // These traces (20 × 15 × 2 doubles) are far below the size that is deflated: lower
    // the threshold so that both routes really compress.
    MIN_COMPRESSED.with(|m| m.set(0));
    for compression in [true, false] {
        let ctrl = solving(&solver);
        let o = FileOptions { compression, ..opts() };
        let direct = dir.path().join(format!("direct_{compression}.h5"));
        sweep_to_file(&spec, &c, &direct, &o, ctrl).unwrap();
        assert!(
            !dir.path().join(format!("direct_{compression}.h5.parts")).exists(),
            "no part directory on the direct route"
        );
        let via_parts = dir.path().join(format!("parts_{compression}.h5"));
        let kept = FileOptions { keep_parts: true, ..o };
        sweep_to_file(&spec, &c, &via_parts, &kept, ctrl).unwrap();
        assert!(dir
            .path()
            .join(format!("parts_{compression}.h5.parts/manifest.jsonl"))
            .is_file());
        let (a, b) = (contents(&direct), contents(&via_parts));
        assert_eq!(a, b);
        // The walk saw what matters: traces with their filters, summaries, inputs, status.
        let traces = a.iter().find(|l| l.starts_with("/traces ")).unwrap();
        assert_eq!(traces.contains("Deflate"), compression, "{traces}");
        assert!(a.iter().any(|l| l.starts_with("/inputs/A%2Fop%2Finp ")));
        assert!(a.iter().any(|l| l.starts_with("/summaries/dom_power ")));
        assert!(a.iter().any(|l| l.starts_with("@complete ")));
        assert!(same_result(&read_results(&direct).unwrap(), &in_memory(&spec)));
    }
}

#[test]
fn h5_small_traces_are_stored_uncompressed() {
    // 4,800 bytes of traces: compression on, yet no filter; the threshold itself is
    // inclusive.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small.h5");
    let (c, solver) = fake();
    let ctrl = solving(&solver);
    let o = FileOptions {
        compression: true,
        ..opts()
    };
    sweep_to_file(&spec(), &c, &out, &o, ctrl).unwrap();
    let f = open_file(&out).unwrap();
    let traces = f.dataset("traces").unwrap();
    assert_eq!(traces.shape(), vec![20, 15, 2]);
    assert_eq!(traces.filters(), vec![]);
    assert!(traces.chunk().is_some(), "still chunked, so h5py reads points lazily");
    assert!(deflate_traces(true, MIN_COMPRESSED_TRACE_BYTES));
    assert!(!deflate_traces(true, MIN_COMPRESSED_TRACE_BYTES - 1));
    assert!(!deflate_traces(false, usize::MAX));
}

#[test]
fn h5_interrupted_direct_write_leaves_no_file_and_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.h5");
    let mut spec = spec();
    (spec.chunk_size, spec.threads) = (0, Some(1));
    let (c, solver) = fake();
    let cancel = AtomicBool::new(false);
    let progress = |p: crate::sweep::Progress| {
        if p.points_done >= 6 {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let ctrl = RunControl {
        cancel: Some(&cancel),
        progress: Some(&progress),
        ..solving(&solver)
    };
    let err = sweep_to_file(&spec, &c, &out, &opts(), ctrl).unwrap_err();
    assert!(matches!(err, IoError::Sweep(SweepError::Cancelled { .. })), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "neither the file, its .tmp nor parts: {left:?}");
    // A killed run leaves its `.tmp` (no destructor runs): the next run overwrites it.
    std::fs::write(tmp_path(&out), b"torn").unwrap();
    let ctrl = solving(&solver);
    sweep_to_file(&spec, &c, &out, &opts(), ctrl).unwrap();
    assert!(!tmp_path(&out).exists());
    assert!(same_result(&read_results(&out).unwrap(), &in_memory(&spec)));
}

#[test]
fn h5_summaries_only_without_compression_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.h5");
    let mut spec = spec();
    spec.keep_traces = false;
    let (c, solver) = fake();
    let o = FileOptions {
        compression: false,
        ..opts()
    };
    sweep_to_file(&spec, &c, &out, &o, solving(&solver)).unwrap();
    let back = read_results(&out).unwrap();
    assert!(back.traces.is_none());
    assert!(same_result(&back, &in_memory(&spec)));
}

#[test]
fn h5_qif_sweep_file_equals_memory_run() {
    // The real solver on the reference circuit, 4 × 4 grid, summaries and traces, three
    // chunks written as parts and merged.
    use crate::sweep::tests::{qif_spec, reference_qif};
    let c = reference_qif();
    let mut spec = qif_spec(4);
    spec.summaries = Statistic::ALL.to_vec();
    spec.chunk_size = 6;
    let mut sink = MemorySink::new();
    crate::sweep::run(&spec, &c, &mut sink).unwrap();
    let mem = sink.into_result().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("qif.h5");
    sweep_to_file(&spec, &c, &out, &opts(), RunControl::default()).unwrap();
    assert!(same_result(&read_results(&out).unwrap(), &mem));
    assert!(mem.traces.as_ref().unwrap().iter().all(|x| x.is_finite()));
}

#[test]
fn h5_traces_equal_memory_for_any_block_chunk_alignment_compression_and_type() {
    // Blocks that fill whole chunks (written encoded from the workers), blocks that share a
    // chunk (assembled by the writer), short last chunks, the direct and the parts route,
    // each compressed and not, as doubles and singles: every value read back through HDF5's
    // own filters equals the in-memory run's.
    let dir = tempfile::tempdir().unwrap();
    let (c, solver) = fake();
    MIN_COMPRESSED.with(|m| m.set(0));
    let mut n = 0;
    // (block_size, chunk_size, threads): 20 points.
    for (block, chunk, threads) in [(2, 6, 2), (4, 6, 2), (16, 0, 2), (3, 0, 1), (7, 8, 2), (64, 0, 2)] {
        for compression in [true, false] {
            for trace_type in [TraceType::Float64, TraceType::Float32] {
                let mut spec = spec();
                (spec.block_size, spec.chunk_size, spec.threads) = (block, chunk, Some(threads));
                let ctrl = solving(&solver);
                let o = FileOptions {
                    compression,
                    trace_type,
                    ..opts()
                };
                n += 1;
                let out = dir.path().join(format!("r{n}.h5"));
                sweep_to_file(&spec, &c, &out, &o, ctrl).unwrap();
                assert_file_equals_memory(&out, &spec, trace_type);
                let f = open_file(&out).unwrap();
                let traces = f.dataset("traces").unwrap();
                assert_eq!(traces.dtype().unwrap().size(), trace_type.size());
                // Chunks hold whole points: `block_size` of them (at most all 20).
                assert_eq!(traces.chunk(), Some(vec![block.min(20), 15, 2]));
                let filters = traces.filters();
                if compression {
                    // HDF5's standard filters, so any reader decodes them with no plugin.
                    assert_eq!(
                        filters,
                        vec![
                            hdf5::filters::Filter::Shuffle,
                            hdf5::filters::Filter::Deflate(DEFLATE_LEVEL)
                        ],
                    );
                } else {
                    assert_eq!(filters, vec![]);
                }
            }
        }
    }
}

#[test]
fn h5_writer_error_stops_the_sweep_and_leaves_no_file() {
    // The writer fails on the first file (its directory vanished under it): the error reaches
    // the caller, typed, and neither a results file nor a temporary one is left.
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("gone");
    std::fs::create_dir(&sub).unwrap();
    let out = sub.join("r.h5");
    let (c, solver) = fake();
    let removed = AtomicBool::new(false);
    let progress = |_: crate::sweep::Progress| {
        if !removed.swap(true, Ordering::Relaxed) {
            std::fs::remove_dir_all(&sub).unwrap();
        }
    };
    let mut spec = spec();
    spec.chunk_size = 0;
    let ctrl = RunControl {
        progress: Some(&progress),
        ..solving(&solver)
    };
    let err = sweep_to_file(&spec, &c, &out, &opts(), ctrl).unwrap_err();
    assert!(matches!(err, IoError::Fs { .. } | IoError::Hdf5 { .. }), "{err}");
    assert!(!out.exists() && !tmp_path(&out).exists());
}

/// A file's blocks are computed in point order, whatever thread takes them, so its chunks
/// reach the writer (and the disk) in ascending offsets: one stream, not one per thread. The
/// k-th block to start is one of the first k + threads (the other threads may each hold one
/// block they have taken and not yet started); rayon's halving of the list would start block
/// 10 of 20 second. The file still equals the in-memory run.
#[test]
fn h5_blocks_of_a_file_start_in_point_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ordered.h5");
    let mut spec = spec();
    // One chunk of 20 one-point blocks on 2 threads.
    (spec.chunk_size, spec.block_size) = (0, 1);
    let threads = spec.threads.unwrap();
    let (c, inner) = fake();
    let started = std::sync::Mutex::new(Vec::new());
    let recording: Box<BlockSolver<'_>> = Box::new(|k, cfg, i, o, b, s| {
        started.lock().unwrap().push(b.first_point);
        inner(k, cfg, i, o, b, s)
    });
    sweep_to_file(&spec, &c, &out, &opts(), solving(&recording)).unwrap();
    let started = std::mem::take(&mut *started.lock().unwrap());
    assert_eq!(started.len(), 20, "{started:?}");
    for (k, &first) in started.iter().enumerate() {
        assert!(first < k + threads, "block {first} started {k}th: {started:?}");
    }
    let back = read_results(&out).unwrap();
    assert!(same_result(&back, &in_memory(&spec)));
}
