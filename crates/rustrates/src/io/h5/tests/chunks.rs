//! The chunk protocol: part files and their manifest, shards, merges (at once, incremental,
//! marking failed chunks), resuming, and the checks that refuse another sweep's or a
//! corrupted part.

use std::path::PathBuf;

use super::*;

#[test]
fn h5_one_chunk_sweep_reuses_parts_already_in_its_directory() {
    // A previous run finished the chunk but not the merge: the rerun takes the parts route
    // and computes nothing.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.h5");
    let mut spec = spec();
    spec.chunk_size = 0;
    let first = AtomicUsize::new(0);
    parts(&spec, &dir.path().join("r.h5.parts"), RunControl::default(), &first).unwrap();
    assert_eq!(first.load(Ordering::Relaxed), 20);
    let (c, solver) = fake();
    let counted = AtomicUsize::new(0);
    let counting = counting(&solver, &counted);
    let ctrl = solving(&counting);
    let summary = sweep_to_file(&spec, &c, &out, &opts(), ctrl).unwrap();
    assert_eq!((counted.load(Ordering::Relaxed), summary.points_skipped), (0, 20));
    assert!(!dir.path().join("r.h5.parts").exists());
    assert!(same_result(&read_results(&out).unwrap(), &in_memory(&spec)));
}

#[test]
fn h5_shards_then_merge_equal_single_run() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec();
    let n = AtomicUsize::new(0);
    let (d0, d1) = (tmp.path().join("s0"), tmp.path().join("s1"));
    let shard = |i| RunControl {
        shard: Some(crate::sweep::Shard { index: i, count: 2 }),
        ..RunControl::default()
    };
    assert_eq!(parts(&spec, &d0, shard(0), &n).unwrap(), 2);
    // Merging one shard alone must refuse: half the chunks are missing.
    let err = merge(&[d0.as_path()], &tmp.path().join("half.h5")).unwrap_err();
    assert!(
        matches!(&err, IoError::MissingChunksIn { missing, total: 4, .. } if missing == &vec![(6, 12), (18, 20)]),
        "{err}"
    );
    assert!(!tmp.path().join("half.h5").exists());
    assert_eq!(parts(&spec, &d1, shard(1), &n).unwrap(), 2);
    assert_eq!(n.load(Ordering::Relaxed), 20, "each point computed once");
    let out = tmp.path().join("merged.h5");
    merge(&[d0.as_path(), d1.as_path()], &out).unwrap();
    assert!(same_result(&read_results(&out).unwrap(), &in_memory(&spec)));
}

/// Shard 0 of 2 of [`spec`] run into `tmp/sweep` (chunks 0 and 2), counting its points in
/// `n`; chunks 1 and 3 reported as failed on every try, one error with a NUL byte. The
/// directory, the spec and the failed chunks.
fn shard_0_with_chunks_1_and_3_failed(tmp: &Path, n: &AtomicUsize) -> (PathBuf, SweepSpec, Vec<FailedChunk>) {
    let (dir, spec) = (tmp.join("sweep"), spec());
    let shard0 = RunControl {
        shard: Some(crate::sweep::Shard { index: 0, count: 2 }),
        ..RunControl::default()
    };
    parts(&spec, &dir, shard0, n).unwrap();
    let failed = vec![
        FailedChunk {
            chunk: 1,
            error: "RuntimeError: worker lost".into(),
        },
        FailedChunk {
            chunk: 3,
            error: "nul\0byte".into(),
        },
    ];
    (dir, spec, failed)
}

#[test]
fn h5_failed_chunks_are_marked_and_a_rerun_completes() {
    // Shard 0 of 2 computes chunks 0 and 2 (points 0..6, 12..18); chunks 1 and 3 count
    // as failed (as a cluster task raising on every try) and are merged as such.
    let tmp = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    let (dir, spec, failed) = shard_0_with_chunks_1_and_3_failed(tmp.path(), &n);
    let out = tmp.path().join("marked.h5");
    // Every missing chunk must be accounted for.
    let err = merge_marking_failed(&[dir.as_path()], &out, &spec.param_grid, &failed[..1]).unwrap_err();
    assert!(
        matches!(&err, IoError::MissingChunks { missing } if missing == &vec![(18, 20)]),
        "{err}"
    );
    // The grid must be this sweep's.
    let other = fake_spec(&[1.0, -2.0, 500.0, 3.5], &[0.0, 1.0, 2.0, 3.0, 4.0]).param_grid;
    let err = merge_marking_failed(&[dir.as_path()], &out, &other, &failed).unwrap_err();
    assert!(matches!(err, IoError::FingerprintMismatch { .. }), "{err}");
    assert!(!out.exists());

    assert_eq!(
        merge_marking_failed(&[dir.as_path()], &out, &spec.param_grid, &failed).unwrap(),
        8
    );
    let back = read_results(&out).unwrap();
    let mem = in_memory(&spec);
    let failed_points: Vec<usize> = (6..12).chain(18..20).collect();
    let (nt, nc) = (mem.time.len(), mem.columns.len());
    assert_eq!(back.labels, mem.labels);
    assert_eq!(
        back.grid_values, mem.grid_values,
        "failed points keep their grid values"
    );
    let (bt, mt) = (back.traces.as_ref().unwrap(), mem.traces.as_ref().unwrap());
    let (bs, ms) = (back.summaries.as_ref().unwrap(), mem.summaries.as_ref().unwrap());
    for p in 0..20 {
        let tr = p * nt * nc..(p + 1) * nt * nc;
        let sm = p * nc..(p + 1) * nc;
        if failed_points.contains(&p) {
            assert_eq!(back.status[p], PointStatus::Failed, "point {p}");
            assert!(bt[tr].iter().all(|x| x.is_nan()), "point {p}: traces NaN");
            assert!(bs.values.iter().all(|v| v[sm.clone()].iter().all(|x| x.is_nan())));
        } else {
            // Bit for bit what the in-memory run gives (NaN where it diverged).
            assert_eq!(back.status[p], mem.status[p], "point {p}");
            let same = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same(&bt[tr.clone()], &mt[tr]), "point {p}: traces");
            assert!(bs
                .values
                .iter()
                .zip(&ms.values)
                .all(|(x, y)| same(&x[sm.clone()], &y[sm.clone()])));
        }
    }
    let f = File::open(&out).unwrap();
    let failed_attr: u64 = f.attr("failed_points").unwrap().read_scalar().unwrap();
    assert_eq!(failed_attr, 8);
    let errors = read_strings(&f.group("status").unwrap(), "error", &out).unwrap();
    assert_eq!(errors[5], "");
    assert_eq!(errors[6], "RuntimeError: worker lost");
    assert_eq!(
        errors[19], "nul\\0byte",
        "NUL, which HDF5 strings cannot hold, is escaped"
    );
    drop(f);

    // The marked file does not make the chunks done: the rest of the sweep resumes, and
    // the plain merge gives the complete file.
    assert!(!Manifest::load(&dir).unwrap().contains(1));
    let before = n.load(Ordering::Relaxed);
    parts(&spec, &dir, RunControl::default(), &n).unwrap();
    assert_eq!(n.load(Ordering::Relaxed) - before, 8, "only the failed chunks' points");
    merge(&[dir.as_path()], &out).unwrap();
    assert!(same_result(&read_results(&out).unwrap(), &mem));
    let f = File::open(&out).unwrap();
    assert_eq!(f.attr("failed_points").unwrap().read_scalar::<u64>().unwrap(), 0);
    assert!(!f.group("status").unwrap().link_exists("error"));
}

#[test]
fn h5_merge_into_existing_file_keeps_its_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sweep");
    let spec = spec();
    write_all_parts(&spec, &dir);
    let staging = tmp.path().join("staging.h5");
    {
        let f = create_file(&staging).unwrap();
        let g = f.create_group("Config").unwrap();
        write_f64s(&g, "dt", &[1e-3], &staging).unwrap();
    }
    assert_eq!(
        merge_marking_failed_into(&[dir.as_path()], &staging, &spec.param_grid, &[]).unwrap(),
        0
    );
    assert!(same_result(&read_results(&staging).unwrap(), &in_memory(&spec)));
    let f = File::open(&staging).unwrap();
    assert_eq!(f.dataset("Config/dt").unwrap().read_raw::<f64>().unwrap(), vec![1e-3]);
    assert!(!tmp_path(&staging).exists(), "written in place");
}

#[test]
fn h5_incremental_merge_equals_the_merge_at_once() {
    // Shard 0 of 2 computes chunks 0 and 2; chunk 1 failed, chunk 3 never came. Added in
    // arrival order (2 before 0), the incremental merge must give the very file the
    // merge of everything at once gives; it refuses to finish with a chunk unaccounted
    // for, and a part whose bytes changed.
    let tmp = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    let (dir, spec, failed) = shard_0_with_chunks_1_and_3_failed(tmp.path(), &n);
    let staging = |name: &str| {
        let p = tmp.path().join(name);
        create_file(&p).unwrap().close().unwrap();
        p
    };
    let at_once = staging("at_once.h5");
    merge_marking_failed_into(&[dir.as_path()], &at_once, &spec.param_grid, &failed).unwrap();

    let inc = staging("incremental.h5");
    let mut m = IncrementalMerge::new(&dir, &inc, &spec.param_grid).unwrap();
    m.add(2).unwrap();
    assert!(m.add(1).is_err(), "chunk 1 has no part");
    m.add(0).unwrap();
    let err = m.finish(&spec.param_grid, &failed[..1]).unwrap_err();
    assert!(
        matches!(&err, IoError::MissingChunks { missing } if missing == &vec![(18, 20)]),
        "{err}"
    );

    let inc = staging("incremental.h5");
    let mut m = IncrementalMerge::new(&dir, &inc, &spec.param_grid).unwrap();
    m.add(2).unwrap();
    m.add(0).unwrap();
    let merged = m.finish(&spec.param_grid, &failed).unwrap();
    assert_eq!(merged.failed_points, 8);
    assert_eq!(contents(&inc), contents(&at_once));
    // What it kept is what the file holds: status codes and (traces being kept) no
    // summaries copy.
    let back = read_results(&inc).unwrap();
    let codes: Vec<u8> = back.status.iter().map(|s| status_code(s).0).collect();
    assert_eq!(merged.status_codes, codes);
    assert_eq!(merged.columns, back.columns);
    assert!(merged.summaries.is_none(), "the traces hold the results");

    // Without failures, after the rest of the sweep ran: the complete file.
    parts(&spec, &dir, RunControl::default(), &n).unwrap();
    let full = staging("full.h5");
    let mut m = IncrementalMerge::new(&dir, &full, &spec.param_grid).unwrap();
    for chunk in [3, 1, 0, 2] {
        m.add(chunk).unwrap();
    }
    assert_eq!(m.finish(&spec.param_grid, &[]).unwrap().failed_points, 0);
    assert!(same_result(&read_results(&full).unwrap(), &in_memory(&spec)));

    // Summaries only: the copy it keeps is the file's summaries, [point][column][stat].
    let sdir = tmp.path().join("summaries_only");
    let mut sspec = spec.clone();
    sspec.keep_traces = false;
    parts(&sspec, &sdir, RunControl::default(), &n).unwrap();
    let sfile = staging("summaries.h5");
    let mut m = IncrementalMerge::new(&sdir, &sfile, &sspec.param_grid).unwrap();
    for chunk in 0..4 {
        m.add(chunk).unwrap();
    }
    let merged = m.finish(&sspec.param_grid, &[]).unwrap();
    let back = read_results(&sfile).unwrap();
    let summ = back.summaries.as_ref().unwrap();
    let (nc, ns) = (back.columns.len(), summ.stats.len());
    let kept = merged.summaries.as_ref().unwrap();
    assert_eq!(kept.len(), 20 * nc * ns);
    for p in 0..20 {
        for c in 0..nc {
            for (si, vals) in summ.values.iter().enumerate() {
                let (x, y) = (kept[(p * nc + c) * ns + si], vals[p * nc + c]);
                assert_eq!(x.to_bits(), y.to_bits(), "point {p} column {c} statistic {si}");
            }
        }
    }
    assert_eq!(
        merged.statistics,
        summ.stats.iter().map(|s| s.name()).collect::<Vec<_>>()
    );

    // A part changed after it was recorded is refused.
    let entry = Manifest::load(&dir).unwrap().entries[0].clone();
    std::fs::write(dir.join(&entry.file), b"not the part").unwrap();
    let mut m = IncrementalMerge::new(&dir, &staging("bad.h5"), &spec.param_grid).unwrap();
    assert!(matches!(m.add(entry.chunk), Err(IoError::CorruptPart { .. })));
    // Another sweep's grid is refused.
    let other = fake_spec(&[1.0, -2.0, 500.0, 3.5], &[0.0, 1.0, 2.0, 3.0, 4.0]).param_grid;
    assert!(matches!(
        IncrementalMerge::new(&dir, &staging("other.h5"), &other),
        Err(IoError::FingerprintMismatch { .. })
    ));
}

#[test]
fn h5_every_chunk_failed_is_an_error_not_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec();
    // The sweep directory exists (sweep.json) but no chunk was computed.
    let rec_dir = tmp.path().join("sweep");
    let cancel = AtomicBool::new(true);
    let n = AtomicUsize::new(0);
    let ctrl = RunControl {
        cancel: Some(&cancel),
        ..RunControl::default()
    };
    assert!(parts(&spec, &rec_dir, ctrl, &n).is_err());
    assert_eq!(n.load(Ordering::Relaxed), 0);
    let failed: Vec<FailedChunk> = (0..4)
        .map(|chunk| FailedChunk {
            chunk,
            error: "x".into(),
        })
        .collect();
    let out = tmp.path().join("none.h5");
    let err = merge_marking_failed(&[rec_dir.as_path()], &out, &spec.param_grid, &failed).unwrap_err();
    assert!(matches!(err, IoError::NoChunkComputed { chunks: 4 }), "{err}");
    assert!(!out.exists());
}

#[test]
fn h5_interrupted_rerun_computes_only_missing_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sweep");
    let mut spec = spec();
    spec.threads = Some(1);
    let cancel = AtomicBool::new(false);
    // Stop once two chunks (12 points) are done: the flag is read before the next block.
    let progress = |p: crate::sweep::Progress| {
        if p.points_done >= 12 {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let first = AtomicUsize::new(0);
    let ctrl = RunControl {
        cancel: Some(&cancel),
        progress: Some(&progress),
        ..RunControl::default()
    };
    let err = parts(&spec, &dir, ctrl, &first).unwrap_err();
    assert!(
        matches!(err, IoError::Sweep(SweepError::Cancelled { points_done: 12 })),
        "{err}"
    );
    assert_eq!(first.load(Ordering::Relaxed), 12);
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("parts"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "two finished parts, no .tmp: {leftovers:?}");
    let err = merge(&[dir.as_path()], &tmp.path().join("x.h5")).unwrap_err();
    assert!(matches!(err, IoError::MissingChunksIn { .. }));

    let second = AtomicUsize::new(0);
    assert_eq!(parts(&spec, &dir, RunControl::default(), &second).unwrap(), 2);
    assert_eq!(
        second.load(Ordering::Relaxed),
        8,
        "only the 8 points of the unfinished chunks"
    );
    let out = tmp.path().join("resumed.h5");
    merge(&[dir.as_path()], &out).unwrap();
    assert!(same_result(&read_results(&out).unwrap(), &in_memory(&spec)));
}

#[test]
fn h5_reused_dir_with_other_sweep_is_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_all_parts(&spec(), tmp.path());
    let mut other = spec();
    other.sim.cutoff = 0.0;
    let err = parts(&other, tmp.path(), RunControl::default(), &AtomicUsize::new(0)).unwrap_err();
    assert!(matches!(err, IoError::FingerprintMismatch { .. }), "{err}");
}

#[test]
fn h5_resume_with_another_trace_precision_is_another_sweep() {
    // Parts written as float64, then the same sweep asked as float32 into the same
    // directory: refused (the parts would mix types), and the record says which it is.
    let tmp = tempfile::tempdir().unwrap();
    let (c, solver) = fake();
    let ctrl = || solving(&solver);
    run_parts(&spec(), &c, tmp.path(), &opts(), ctrl()).unwrap();
    let single = FileOptions {
        trace_type: TraceType::Float32,
        ..opts()
    };
    let err = run_parts(&spec(), &c, tmp.path(), &single, ctrl()).unwrap_err();
    assert!(matches!(err, IoError::FingerprintMismatch { .. }), "{err}");
    // Float32 parts in a fresh directory merge into a float32 file whose settings say so.
    let dir32 = tmp.path().join("f32");
    run_parts(&spec(), &c, &dir32, &single, ctrl()).unwrap();
    let out = tmp.path().join("f32.h5");
    merge(&[dir32.as_path()], &out).unwrap();
    assert_file_equals_memory(&out, &spec(), TraceType::Float32);
    let settings: serde_json::Value =
        serde_json::from_str(&read_str_attr(&open_file(&out).unwrap(), "settings", &out).unwrap()).unwrap();
    assert_eq!(settings["trace_precision"], "float32");
}

#[test]
fn h5_part_file_is_not_a_complete_result() {
    let tmp = tempfile::tempdir().unwrap();
    write_all_parts(&spec(), tmp.path());
    let part = tmp.path().join(part_file(0, 6));
    let err = read_results(&part).unwrap_err();
    assert!(matches!(err, IoError::Incomplete { .. }), "{err}");
}

#[test]
fn h5_corrupted_part_is_detected_at_merge() {
    let tmp = tempfile::tempdir().unwrap();
    write_all_parts(&spec(), tmp.path());
    let part = tmp.path().join(part_file(6, 12));
    let mut bytes = std::fs::read(&part).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&part, bytes).unwrap();
    let err = merge(&[tmp.path()], &tmp.path().join("out.h5")).unwrap_err();
    assert!(matches!(err, IoError::CorruptPart { .. }), "{err}");
}

#[test]
fn h5_merge_copies_aligned_part_chunks_as_stored() {
    // Parts are encoded as the merged file is: where a part's chunks are chunks of the merged
    // file, the merge copies their stored bytes (libdeflate's stream, not zlib's re-encoding
    // of it) and the values still equal the in-memory run's.
    let dir = tempfile::tempdir().unwrap();
    let (c, solver) = fake();
    MIN_COMPRESSED.with(|m| m.set(0));
    let spec = spec(); // chunks of 6 points, blocks (and trace chunks) of 2
    let ctrl = solving(&solver);
    let out = dir.path().join("merged.h5");
    let o = FileOptions {
        keep_parts: true,
        compression: true,
        ..opts()
    };
    sweep_to_file(&spec, &c, &out, &o, ctrl).unwrap();
    assert_file_equals_memory(&out, &spec, TraceType::Float64);
    let merged = open_file(&out).unwrap().dataset("traces").unwrap();
    let part_path = dir.path().join("merged.h5.parts").join(part_file(6, 12));
    let part = open_file(&part_path).unwrap().dataset("traces").unwrap();
    assert_eq!(part.filters(), merged.filters());
    assert!(
        matches!(merged.filters()[..], [_, hdf5::filters::Filter::Deflate(_)]),
        "deflated chunks"
    );
    for k in 0..3 {
        let stored = read_raw_chunk(&part, 2 * k, &part_path).unwrap().unwrap();
        assert_eq!(read_raw_chunk(&merged, 6 + 2 * k, &out).unwrap().unwrap(), stored);
    }
}

/// Issue 17: the chunk protocol's two ends a cluster client uses. Parts shipped as bytes and
/// recorded with `record_part_bytes` in another directory merge into the file the sweep's own
/// directory merges into (compared with the in-memory run); each part read with `read_part`
/// is the merged file's points of its chunk (`read_results_points`, a second reader).
#[test]
fn h5_parts_recorded_from_bytes_and_read_back_match_the_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec();
    let n = AtomicUsize::new(0);
    let worker = tmp.path().join("worker");
    assert_eq!(parts(&spec, &worker, RunControl::default(), &n).unwrap(), 4);
    let client = tmp.path().join("client");
    let record = sweep_record_of(&spec, "Toy", &opts());
    assert_eq!(
        Some(record.clone()),
        SweepRecord::load(&worker).unwrap(),
        "the record a client builds is the one the part sink wrote"
    );
    record.create_or_check(&client).unwrap();
    for (i, range) in spec.chunks().into_iter().enumerate() {
        let bytes = std::fs::read(worker.join(part_file(range.start, range.end))).unwrap();
        let entry = crate::io::record_part_bytes(&client, i, range, &bytes).unwrap();
        assert!(!tmp_path(&client.join(&entry.file)).exists());
    }
    let (manifest, aside) = Manifest::load_verified(&client).unwrap();
    assert!(aside.is_empty() && manifest.entries.len() == 4);
    let out = tmp.path().join("merged.h5");
    merge(&[client.as_path()], &out).unwrap();
    assert!(same_result(&read_results(&out).unwrap(), &in_memory(&spec)));
    for range in spec.chunks() {
        let part = read_part(&client.join(part_file(range.start, range.end)), "Toy").unwrap();
        let points = read_results_points(&out, range.clone()).unwrap();
        assert!(same_result(&part, &points), "chunk {range:?}:\n{part:?}\n{points:?}");
    }
    let err = read_part(&out, "Toy").unwrap_err();
    assert!(matches!(err, IoError::NotAPart { .. }), "{err}");
}
