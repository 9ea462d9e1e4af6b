//! The readers: points, selected columns, complex parts, the pandas key's traces block and
//! the buffer hand-over, each against the whole file's read sliced in memory.

use super::*;

#[test]
fn h5_read_results_points_equals_that_slice_of_the_whole_file() {
    // Ranges inside one trace chunk, across chunks, to the end and past it, compressed and
    // not: the same values as the whole file's read, sliced in memory.
    let dir = tempfile::tempdir().unwrap();
    let (c, solver) = fake();
    MIN_COMPRESSED.with(|m| m.set(0));
    for compression in [true, false] {
        let ctrl = solving(&solver);
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

/// Issue 16: `read_results_selected` against the whole file's read, sliced in memory (a
/// second reader): output names select columns (a key all its nodes, `node/key` one, runs of
/// columns that are not adjacent), with points, without traces or summaries; compressed
/// chunks and raw ones. A name that selects nothing is an error listing the names there are.
#[test]
fn h5_read_selected_columns_and_parts_equal_the_whole_read_sliced() {
    let dir = tempfile::tempdir().unwrap();
    let (c, solver) = fake();
    MIN_COMPRESSED.with(|m| m.set(0));
    let mut spec = spec();
    // Columns (A, x), (B, x), (A, e): "A/x" + "e" are columns 0 and 2, not adjacent.
    spec.outputs.push(("e".into(), "A/op/x".into()));
    let same = |x: &[f64], y: &[f64]| x.len() == y.len() && x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits());
    for compression in [true, false] {
        let ctrl = solving(&solver);
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
    let (c, solver) = fake();
    MIN_COMPRESSED.with(|m| m.set(0));
    let spec = spec();
    for (compression, trace_type, band) in [
        (false, TraceType::Float64, 1),
        (true, TraceType::Float64, 1200),
        (true, TraceType::Float32, 1 << 20),
    ] {
        TRACES_BAND.with(|b| b.set(band));
        let ctrl = solving(&solver);
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
