//! The HDF5 results file's tests, by concern (writing, the chunk protocol, reading); here what
//! they share: the fake sweep (`sweep::tests`) run in memory, into part files or to a file.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hdf5::types::VarLenUnicode;
use hdf5::{File, Group};

use super::*;
use crate::io::parts::{part_file, tmp_path, Manifest, SweepRecord};
use crate::io::IoError;
use crate::model::Circuit;
use crate::solve::PointStatus;
use crate::sweep::tests::{fake_circuit, fake_solver, fake_spec, same_result};
use crate::sweep::{run_with, BlockSolver, MemorySink, RunControl, Statistic, SweepError, SweepResult, SweepSpec};

mod chunks;
mod direct;
mod readers;
mod writing;

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

/// The fake circuit and its solver (`sweep::tests`): what these sweeps run.
fn fake() -> (Circuit, Box<BlockSolver<'static>>) {
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    (c, solver)
}

/// A run by `solver`, nothing else set.
fn solving<'a>(solver: &'a BlockSolver<'a>) -> RunControl<'a> {
    RunControl {
        solver: Some(solver),
        ..RunControl::default()
    }
}

/// `inner`, counting in `counter` the points it computes.
fn counting<'a>(inner: &'a BlockSolver<'a>, counter: &'a AtomicUsize) -> Box<BlockSolver<'a>> {
    Box::new(move |k, cfg, i, o, b, s| {
        counter.fetch_add(b.lanes, Ordering::Relaxed);
        inner(k, cfg, i, o, b, s)
    })
}

fn in_memory(spec: &SweepSpec) -> SweepResult {
    let (c, solver) = fake();
    let mut sink = MemorySink::new();
    run_with(spec, &c, &mut sink, solving(&solver)).unwrap();
    sink.into_result().unwrap()
}

/// Every chunk of `spec` run into part files in `dir`.
fn write_all_parts(spec: &SweepSpec, dir: &Path) {
    parts(spec, dir, RunControl::default(), &AtomicUsize::new(0)).unwrap();
}

/// Runs the fake sweep into part files, counting the points the solver computes.
fn parts(spec: &SweepSpec, dir: &Path, ctrl: RunControl<'_>, counter: &AtomicUsize) -> Result<usize, IoError> {
    let (c, inner) = fake();
    let counting = counting(&inner, counter);
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
