use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hdf5::types::VarLenUnicode;
use hdf5::{File, Group};

use super::*;
use crate::io::parts::{part_file, tmp_path, Manifest, SweepRecord};
use crate::io::IoError;
use crate::solve::PointStatus;
use crate::sweep::tests::{fake_circuit, fake_solver, fake_spec, same_result};
use crate::sweep::{run_with, MemorySink, RunControl, Statistic, SweepError, SweepResult, SweepSpec};

fn spec() -> SweepSpec {
    // 4 × 5 = 20 points, one diverging row (eta = 500), chunks of 6: 4 chunks (last 2).
    let mut s = fake_spec(&[1.0, -2.0, 500.0, 3.0], &[0.0, 1.0, 2.0, 3.0, 4.0]);
    s.summaries = Statistic::ALL.to_vec();
    (s.chunk_size, s.block_size, s.threads) = (6, 2, Some(2));
    s
}

fn opts() -> FileOptions {
    FileOptions::new("toy: {base: CircuitTemplate}\n", "toy.yaml/Toy")
}

fn in_memory(spec: &SweepSpec) -> SweepResult {
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    let mut sink = MemorySink::new();
    run_with(
        spec,
        &c,
        &mut sink,
        RunControl {
            solver: Some(&solver),
            ..RunControl::default()
        },
    )
    .unwrap();
    sink.into_result().unwrap()
}

/// Runs the fake sweep into part files, counting the points the solver computes.
fn parts(spec: &SweepSpec, dir: &Path, ctrl: RunControl<'_>, counter: &AtomicUsize) -> Result<usize, IoError> {
    let c = fake_circuit();
    let inner = fake_solver(c.clone());
    let counting = |k: &crate::kernel::Kernel,
                    cfg: &crate::solve::SimConfig,
                    i: &[crate::solve::InputBinding],
                    o: &[crate::solve::OutputBinding],
                    b: crate::solve::Block<'_>,
                    s: &mut dyn crate::solve::SampleSink| {
        counter.fetch_add(b.lanes, Ordering::Relaxed);
        inner(k, cfg, i, o, b, s)
    };
    let (_, written) = run_parts(
        spec,
        &c,
        dir,
        &opts(),
        RunControl {
            solver: Some(&counting),
            ..ctrl
        },
    )?;
    Ok(written)
}

#[test]
fn h5_file_round_trips_to_the_in_memory_result() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.h5");
    let mut spec = spec();
    let drive: Vec<f64> = (0..40).map(|i| f64::from(i) * 0.25).collect();
    spec.inputs = vec![("A/op/inp".into(), crate::solve::Signal::Shared(drive.clone().into()))];
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    let ctrl = RunControl {
        solver: Some(&solver),
        ..RunControl::default()
    };
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

/// Everything a reader of `path` can see, as text in name order: every attribute, and every
/// dataset's type, shape, chunking, filters and values (floats by bit pattern, so NaN
/// compares equal to itself).
fn contents(path: &Path) -> Vec<String> {
    use hdf5::types::{IntSize, TypeDescriptor};
    use hdf5::LocationType;
    fn values(c: &hdf5::Container) -> String {
        match c.dtype().unwrap().to_descriptor().unwrap() {
            TypeDescriptor::Float(_) => {
                let v: Vec<f64> = c.read_raw().unwrap();
                format!("{:?}", v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            }
            TypeDescriptor::Unsigned(IntSize::U1) => format!("{:?}", c.read_raw::<u8>().unwrap()),
            TypeDescriptor::Unsigned(IntSize::U8) => format!("{:?}", c.read_raw::<u64>().unwrap()),
            TypeDescriptor::VarLenUnicode => format!("{:?}", c.read_raw::<VarLenUnicode>().unwrap()),
            other => panic!("no reader for {other:?} in this test"),
        }
    }
    fn attrs(loc: &hdf5::Location, at: &str, out: &mut Vec<String>) {
        let mut names = loc.attr_names().unwrap();
        names.sort();
        for n in names {
            let a = loc.attr(&n).unwrap();
            out.push(format!("{at}@{n} {:?} = {}", a.shape(), values(&a)));
        }
    }
    fn walk(g: &Group, at: &str, out: &mut Vec<String>) {
        attrs(g, at, out);
        let mut names = g.member_names().unwrap();
        names.sort();
        for n in names {
            let here = format!("{at}/{n}");
            match g.loc_type_by_name(&n).unwrap() {
                LocationType::Group => walk(&g.group(&n).unwrap(), &here, out),
                _ => {
                    let ds = g.dataset(&n).unwrap();
                    attrs(&ds, &here, out);
                    out.push(format!(
                        "{here} {:?} chunk {:?} filters {:?} = {}",
                        ds.shape(),
                        ds.chunk(),
                        ds.filters(),
                        values(&ds)
                    ));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&open_file(path).unwrap(), "", &mut out);
    out
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
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    // These traces (20 × 15 × 2 doubles) are far below the size that is deflated: lower
    // the threshold so that both routes really compress.
    MIN_COMPRESSED.with(|m| m.set(0));
    for compression in [true, false] {
        let ctrl = RunControl {
            solver: Some(&solver),
            ..RunControl::default()
        };
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
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    let ctrl = RunControl {
        solver: Some(&solver),
        ..RunControl::default()
    };
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
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    let cancel = AtomicBool::new(false);
    let progress = |p: crate::sweep::Progress| {
        if p.points_done >= 6 {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let ctrl = RunControl {
        solver: Some(&solver),
        cancel: Some(&cancel),
        progress: Some(&progress),
        ..RunControl::default()
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
    let ctrl = RunControl {
        solver: Some(&solver),
        ..RunControl::default()
    };
    sweep_to_file(&spec, &c, &out, &opts(), ctrl).unwrap();
    assert!(!tmp_path(&out).exists());
    assert!(same_result(&read_results(&out).unwrap(), &in_memory(&spec)));
}

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
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    let counted = AtomicUsize::new(0);
    let counting = |k: &crate::kernel::Kernel,
                    cfg: &crate::solve::SimConfig,
                    i: &[crate::solve::InputBinding],
                    o: &[crate::solve::OutputBinding],
                    b: crate::solve::Block<'_>,
                    s: &mut dyn crate::solve::SampleSink| {
        counted.fetch_add(b.lanes, Ordering::Relaxed);
        solver(k, cfg, i, o, b, s)
    };
    let ctrl = RunControl {
        solver: Some(&counting),
        ..RunControl::default()
    };
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

/// Shard 0 of 2 of `spec` run into `dir` (chunks 0 and 2); chunks 1 and 3 reported as
/// failed on every try, one error with a NUL byte.
fn shard_0_with_chunks_1_and_3_failed(spec: &SweepSpec, dir: &Path, n: &AtomicUsize) -> Vec<FailedChunk> {
    let shard0 = RunControl {
        shard: Some(crate::sweep::Shard { index: 0, count: 2 }),
        ..RunControl::default()
    };
    parts(spec, dir, shard0, n).unwrap();
    vec![
        FailedChunk {
            chunk: 1,
            error: "RuntimeError: worker lost".into(),
        },
        FailedChunk {
            chunk: 3,
            error: "nul\0byte".into(),
        },
    ]
}

#[test]
fn h5_failed_chunks_are_marked_and_a_rerun_completes() {
    // Shard 0 of 2 computes chunks 0 and 2 (points 0..6, 12..18); chunks 1 and 3 count
    // as failed (as a cluster task raising on every try) and are merged as such.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sweep");
    let spec = spec();
    let n = AtomicUsize::new(0);
    let failed = shard_0_with_chunks_1_and_3_failed(&spec, &dir, &n);
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
    let n = AtomicUsize::new(0);
    parts(&spec, &dir, RunControl::default(), &n).unwrap();
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
    let dir = tmp.path().join("sweep");
    let spec = spec();
    let n = AtomicUsize::new(0);
    let failed = shard_0_with_chunks_1_and_3_failed(&spec, &dir, &n);
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
    let n = AtomicUsize::new(0);
    parts(&spec(), tmp.path(), RunControl::default(), &n).unwrap();
    let mut other = spec();
    other.sim.cutoff = 0.0;
    let err = parts(&other, tmp.path(), RunControl::default(), &n).unwrap_err();
    assert!(matches!(err, IoError::FingerprintMismatch { .. }), "{err}");
}

#[test]
fn h5_resume_with_another_trace_precision_is_another_sweep() {
    // Parts written as float64, then the same sweep asked as float32 into the same
    // directory: refused (the parts would mix types), and the record says which it is.
    let tmp = tempfile::tempdir().unwrap();
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    let ctrl = || RunControl {
        solver: Some(&solver),
        ..RunControl::default()
    };
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
    let n = AtomicUsize::new(0);
    parts(&spec(), tmp.path(), RunControl::default(), &n).unwrap();
    let part = tmp.path().join(part_file(0, 6));
    let err = read_results(&part).unwrap_err();
    assert!(matches!(err, IoError::Incomplete { .. }), "{err}");
}

#[test]
fn h5_corrupted_part_is_detected_at_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    parts(&spec(), tmp.path(), RunControl::default(), &n).unwrap();
    let part = tmp.path().join(part_file(6, 12));
    let mut bytes = std::fs::read(&part).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&part, bytes).unwrap();
    let err = merge(&[tmp.path()], &tmp.path().join("out.h5")).unwrap_err();
    assert!(matches!(err, IoError::CorruptPart { .. }), "{err}");
}

#[test]
fn h5_summaries_only_without_compression_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.h5");
    let mut spec = spec();
    spec.keep_traces = false;
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    let o = FileOptions {
        compression: false,
        ..opts()
    };
    sweep_to_file(
        &spec,
        &c,
        &out,
        &o,
        RunControl {
            solver: Some(&solver),
            ..RunControl::default()
        },
    )
    .unwrap();
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

/// `read_results` of `file` against the in-memory run of `spec` (an independent path: no
/// HDF5, no encoding), with the traces rounded to `trace_type` first.
fn assert_file_equals_memory(file: &Path, spec: &SweepSpec, trace_type: TraceType) {
    let mut expected = in_memory(spec);
    if trace_type == TraceType::Float32 {
        // Rounded to the nearest single, as the conversion to f32 does; NaN stays NaN.
        for v in expected.traces.as_mut().unwrap().iter_mut() {
            *v = f64::from(*v as f32);
        }
    }
    let back = read_results(file).unwrap();
    assert!(same_result(&back, &expected), "{}", file.display());
}

#[test]
fn h5_traces_equal_memory_for_any_block_chunk_alignment_compression_and_type() {
    // Blocks that fill whole chunks (written encoded from the workers), blocks that share a
    // chunk (assembled by the writer), short last chunks, the direct and the parts route,
    // each compressed and not, as doubles and singles: every value read back through HDF5's
    // own filters equals the in-memory run's.
    let dir = tempfile::tempdir().unwrap();
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    MIN_COMPRESSED.with(|m| m.set(0));
    let mut n = 0;
    // (block_size, chunk_size, threads): 20 points.
    for (block, chunk, threads) in [(2, 6, 2), (4, 6, 2), (16, 0, 2), (3, 0, 1), (7, 8, 2), (64, 0, 2)] {
        for compression in [true, false] {
            for trace_type in [TraceType::Float64, TraceType::Float32] {
                let mut spec = spec();
                (spec.block_size, spec.chunk_size, spec.threads) = (block, chunk, Some(threads));
                let ctrl = RunControl {
                    solver: Some(&solver),
                    ..RunControl::default()
                };
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
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    let removed = AtomicBool::new(false);
    let progress = |_: crate::sweep::Progress| {
        if !removed.swap(true, Ordering::Relaxed) {
            std::fs::remove_dir_all(&sub).unwrap();
        }
    };
    let mut spec = spec();
    spec.chunk_size = 0;
    let ctrl = RunControl {
        solver: Some(&solver),
        progress: Some(&progress),
        ..RunControl::default()
    };
    let err = sweep_to_file(&spec, &c, &out, &opts(), ctrl).unwrap_err();
    assert!(matches!(err, IoError::Fs { .. } | IoError::Hdf5 { .. }), "{err}");
    assert!(!out.exists() && !tmp_path(&out).exists());
}

#[test]
fn h5_merge_copies_aligned_part_chunks_as_stored() {
    // Parts are encoded as the merged file is: where a part's chunks are chunks of the merged
    // file, the merge copies their stored bytes (libdeflate's stream, not zlib's re-encoding
    // of it) and the values still equal the in-memory run's.
    let dir = tempfile::tempdir().unwrap();
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    MIN_COMPRESSED.with(|m| m.set(0));
    let spec = spec(); // chunks of 6 points, blocks (and trace chunks) of 2
    let ctrl = RunControl {
        solver: Some(&solver),
        ..RunControl::default()
    };
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

#[test]
fn h5_read_results_points_equals_that_slice_of_the_whole_file() {
    // Ranges inside one trace chunk, across chunks, to the end and past it, compressed and
    // not: the same values as the whole file's read, sliced in memory.
    let dir = tempfile::tempdir().unwrap();
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    MIN_COMPRESSED.with(|m| m.set(0));
    for compression in [true, false] {
        let ctrl = RunControl {
            solver: Some(&solver),
            ..RunControl::default()
        };
        let out = dir.path().join(format!("r_{compression}.h5"));
        sweep_to_file(&spec(), &c, &out, &FileOptions { compression, ..opts() }, ctrl).unwrap();
        let all = read_results(&out).unwrap();
        let (nt, nc) = (all.time.len(), all.columns.len());
        for r in [0..1, 3..4, 1..7, 12..20, 18..25, 20..20] {
            let part = read_results_points(&out, r.clone()).unwrap();
            let r = r.start.min(20)..r.end.min(20);
            assert_eq!(part.labels, all.labels[r.clone()]);
            assert_eq!(part.status, all.status[r.clone()]);
            for (p, a) in part.grid_values.iter().zip(&all.grid_values) {
                assert_eq!(p[..], a[r.clone()]);
            }
            let (pt, at) = (part.traces.unwrap(), all.traces.as_ref().unwrap());
            let same =
                |x: &[f64], y: &[f64]| x.len() == y.len() && x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same(&pt, &at[r.start * nt * nc..r.end * nt * nc]), "{r:?}");
            let (ps, a_s) = (part.summaries.unwrap(), all.summaries.as_ref().unwrap());
            for (p, a) in ps.values.iter().zip(&a_s.values) {
                assert!(same(p, &a[r.start * nc..r.end * nc]), "{r:?}");
            }
        }
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

/// Issue 16: `read_results_selected` against the whole file's read, sliced in memory (a
/// second reader): output names select columns (a key all its nodes, `node/key` one, runs of
/// columns that are not adjacent), with points, without traces or summaries; compressed
/// chunks and raw ones. A name that selects nothing is an error listing the names there are.
#[test]
fn h5_read_selected_columns_and_parts_equal_the_whole_read_sliced() {
    let dir = tempfile::tempdir().unwrap();
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    MIN_COMPRESSED.with(|m| m.set(0));
    let mut spec = spec();
    // Columns (A, x), (B, x), (A, e): "A/x" + "e" are columns 0 and 2, not adjacent.
    spec.outputs.push(("e".into(), "A/op/x".into()));
    let same = |x: &[f64], y: &[f64]| x.len() == y.len() && x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits());
    for compression in [true, false] {
        let ctrl = RunControl {
            solver: Some(&solver),
            ..RunControl::default()
        };
        let out = dir.path().join(format!("r_{compression}.h5"));
        sweep_to_file(&spec, &c, &out, &FileOptions { compression, ..opts() }, ctrl).unwrap();
        let all = read_results(&out).unwrap();
        let (nt, nc) = (all.time.len(), all.columns.len());
        assert_eq!(nc, 3);
        let (at, a_s) = (all.traces.as_ref().unwrap(), all.summaries.as_ref().unwrap());
        let cases: [(&[&str], &[usize]); 5] = [
            (&["x"], &[0, 1]),
            (&["B/x"], &[1]),
            (&["A/x", "e"], &[0, 2]),
            (&["e", "A/x"], &[0, 2]),
            (&["x", "e"], &[0, 1, 2]),
        ];
        for (names, cols) in cases {
            for r in [0..20, 3..4, 5..13, 18..30] {
                let selection = ReadSelection {
                    points: Some(r.clone()),
                    outputs: Some(names.iter().map(|s| s.to_string()).collect()),
                    ..ReadSelection::default()
                };
                let got = read_results_selected(&out, &selection).unwrap();
                let r = r.start..r.end.min(20);
                let want_cols: Vec<(String, String)> = cols.iter().map(|&k| all.columns[k].clone()).collect();
                assert_eq!(got.columns, want_cols, "{names:?}");
                assert_eq!(got.labels, all.labels[r.clone()]);
                assert_eq!(got.status, all.status[r.clone()]);
                let want: Vec<f64> = r
                    .clone()
                    .flat_map(|p| (0..nt).flat_map(move |t| cols.iter().map(move |&k| (p * nt + t) * nc + k)))
                    .map(|i| at[i])
                    .collect();
                assert!(same(got.traces.as_ref().unwrap(), &want), "{names:?} {r:?}");
                for (g, a) in got.summaries.as_ref().unwrap().values.iter().zip(&a_s.values) {
                    let want: Vec<f64> = r
                        .clone()
                        .flat_map(|p| cols.iter().map(move |&k| a[p * nc + k]))
                        .collect();
                    assert!(same(g, &want), "{names:?} {r:?}");
                }
            }
        }
        let bare = read_results_selected(
            &out,
            &ReadSelection {
                traces: false,
                summaries: false,
                ..ReadSelection::default()
            },
        )
        .unwrap();
        assert!(bare.traces.is_none() && bare.summaries.is_none());
        assert_eq!(
            (bare.labels, bare.grid_values, bare.columns),
            (all.labels.clone(), all.grid_values.clone(), all.columns.clone())
        );
        let err = read_results_selected(
            &out,
            &ReadSelection {
                outputs: Some(vec!["x".into(), "y".into()]),
                ..ReadSelection::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(&err, IoError::UnknownOutput { name, .. } if name == "y"),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("no output column 'y'") && text.contains("x, A/x, B/x, e, A/e"),
            "{text}"
        );
    }
}

/// Complex outputs are stored as `key.real` and `key.imag`: the key selects both, a part's own
/// name one (the rule `select_columns` holds for every reader).
#[test]
fn h5_output_names_select_complex_parts_and_node_columns() {
    let cols: Vec<(String, String)> = [("A", "z.real"), ("A", "z.imag"), ("A", "r"), ("B", "r")]
        .iter()
        .map(|(n, k)| (n.to_string(), k.to_string()))
        .collect();
    let sel = |names: &[&str]| {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        select_columns(&cols, &names, Path::new("f.h5")).map_err(|e| e.to_string())
    };
    assert_eq!(sel(&["z"]), Ok(vec![0, 1]));
    assert_eq!(sel(&["z.imag"]), Ok(vec![1]));
    assert_eq!(sel(&["A/z.real", "B/r"]), Ok(vec![0, 3]));
    assert_eq!(sel(&["r"]), Ok(vec![2, 3]));
    assert!(sel(&["A/z"]).unwrap_err().contains("no output column 'A/z'"));
}

/// Issue 16: the pandas key's traces block copied by the engine from `/traces` (band by band,
/// bands smaller than the file here so several are copied) holds element `[t][p·nc + c]` =
/// `/traces[p][t][c]` as read by `read_results` (a second reader); float32 traces widened,
/// compressed and raw chunks.
#[test]
fn h5_traces_block_is_the_transposed_traces_in_bands() {
    use crate::io::pytables::{write_nodes, Attr, Node, NodeKind, TRACES_BAND};
    let dir = tempfile::tempdir().unwrap();
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    MIN_COMPRESSED.with(|m| m.set(0));
    let spec = spec();
    for (compression, trace_type, band) in [
        (false, TraceType::Float64, 1),
        (true, TraceType::Float64, 1200),
        (true, TraceType::Float32, 1 << 20),
    ] {
        TRACES_BAND.with(|b| b.set(band));
        let ctrl = RunControl {
            solver: Some(&solver),
            ..RunControl::default()
        };
        let out = dir.path().join(format!("b_{compression}_{band}.h5"));
        let opts = FileOptions {
            compression,
            trace_type,
            ..opts()
        };
        sweep_to_file(&spec, &c, &out, &opts, ctrl).unwrap();
        let all = read_results(&out).unwrap();
        let (np, nt, nc) = (all.labels.len(), all.time.len(), all.columns.len());
        let node = Node {
            path: "/Results/results/block0_values".into(),
            kind: NodeKind::TracesBlock,
            attrs: vec![("transposed".into(), Attr::Bool(true))],
        };
        write_nodes(&out, false, &[node]).unwrap();
        let block: Vec<f64> = File::open(&out)
            .unwrap()
            .dataset("Results/results/block0_values")
            .unwrap()
            .read_raw()
            .unwrap();
        let traces = all.traces.as_ref().unwrap();
        assert_eq!(block.len(), np * nt * nc);
        for p in 0..np {
            for t in 0..nt {
                for k in 0..nc {
                    let (b, a) = (block[t * np * nc + p * nc + k], traces[(p * nt + t) * nc + k]);
                    assert!(
                        b.to_bits() == a.to_bits(),
                        "band {band}: point {p} t {t} column {k}: {b} vs {a}"
                    );
                }
            }
        }
        // The file's own datasets are untouched.
        assert!(same_result(&read_results(&out).unwrap(), &all));
    }
}

/// `read::into_vec` hands over an array's own buffer only where that buffer is exactly its
/// elements in order; the reference is ndarray's own row-major iteration.
#[test]
fn into_vec_gives_the_elements_in_row_major_order_for_every_layout() {
    use ndarray::{s, Array, Array3};
    let whole = Array3::from_shape_fn((4, 3, 2), |(p, t, c)| (p * 100 + t * 10 + c) as f64);
    let cases = [
        ("standard", whole.clone()),
        (
            "offset: leading points dropped",
            whole.clone().slice_move(s![1.., .., ..]),
        ),
        ("trailing points dropped", whole.clone().slice_move(s![..2, .., ..])),
        ("transposed", whole.clone().permuted_axes([2, 1, 0])),
        ("strided", whole.clone().slice_move(s![..;2, .., ..])),
    ];
    for (what, a) in cases {
        let want: Vec<f64> = a.iter().copied().collect();
        assert_eq!(read::into_vec(a), want, "{what}");
    }
    let one = Array::from_vec(vec![1.0, 2.0, 3.0]).slice_move(s![1..]);
    assert_eq!(read::into_vec(one), vec![2.0, 3.0]);
}
