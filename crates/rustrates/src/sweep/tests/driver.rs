//! The sweep driver with the fake solver (a closed form): every point and column placed,
//! chunks, blocks and threads without effect on the results, summaries, divergence,
//! cancelling, progress and the errors of a bad spec.

use super::*;

#[test]
fn run_memory_sink_places_every_point_and_column() {
    let mut spec = fake_spec(&[1.0, -2.0, 3.5], &[0.0, 10.0, 20.0, 30.0]);
    (spec.chunk_size, spec.block_size, spec.threads) = (5, 2, Some(2));
    let r = memory(&spec);
    assert_eq!(
        r.columns,
        vec![("A".to_string(), "x".to_string()), ("B".to_string(), "x".to_string())]
    );
    assert_eq!(r.time.len(), 15, "t = 0.5 … 1.9");
    assert_eq!(r.time[0], 0.5);
    assert_eq!(r.labels[11], "Toy_11");
    for p in 0..12 {
        let (eta, x0) = (r.grid_values[0][p], r.grid_values[1][p]);
        let a = r.trace(p, 0).unwrap();
        let b = r.trace(p, 1).unwrap();
        for (i, &t) in r.time.iter().enumerate() {
            assert_eq!(a[i], 0.5 + eta * t, "point {p} A at {t}");
            assert_eq!(b[i], x0 + 2.0 * t, "point {p} B at {t}");
        }
    }
    let cols = r.dataframe_columns();
    assert_eq!(cols.len(), 24);
    assert_eq!(cols[3], ("Toy_1".to_string(), "B".to_string(), "x".to_string()));
}

#[test]
fn run_chunks_blocks_threads_do_not_change_results() {
    let mut a = fake_spec(&[1.0, 2.0, 3.0, 4.0, 5.0], &[0.0, 1.0, 2.0]);
    a.summaries = Statistic::ALL.to_vec();
    let mut b = a.clone();
    (a.chunk_size, a.block_size, a.threads) = (0, 64, Some(1));
    (b.chunk_size, b.block_size, b.threads) = (4, 3, Some(2));
    assert!(same_result(&memory(&a), &memory(&b)));
}

#[test]
fn run_summaries_equal_statistics_of_traces() {
    let mut spec = fake_spec(&[1.0, -3.0], &[0.0, 5.0]);
    spec.summaries = Statistic::ALL.to_vec();
    let r = memory(&spec);
    let n = r.time.len();
    for p in 0..4 {
        for c in 0..2 {
            let x = r.trace(p, c).unwrap();
            let mean = x.iter().sum::<f64>() / n as f64;
            let std = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
            let min = x.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            // Naive DFT as the second method for the spectrum.
            let (mut fbest, mut pbest) = (0.0, 0.0);
            for k in 1..=n / 2 {
                let (mut re, mut im) = (0.0, 0.0);
                for (i, v) in x.iter().enumerate() {
                    let w = -2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
                    re += (v - mean) * w.cos();
                    im += (v - mean) * w.sin();
                }
                let pw = if 2 * k == n { 1.0 } else { 2.0 } * (re * re + im * im) / (n * n) as f64;
                if pw > pbest {
                    (fbest, pbest) = (k as f64 / (n as f64 * 0.1), pw);
                }
            }
            let get = |s| r.summary(s, p, c).unwrap();
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
            assert!(close(get(Statistic::Mean), mean));
            assert!(close(get(Statistic::Std), std));
            assert_eq!(get(Statistic::Min), min);
            assert_eq!(get(Statistic::Max), max);
            assert_eq!(get(Statistic::Last), x[n - 1]);
            assert_eq!(get(Statistic::Ptp), max - min);
            assert_eq!(get(Statistic::DomFreq), fbest);
            assert!(
                close(get(Statistic::DomPower), pbest),
                "{} vs {pbest}",
                get(Statistic::DomPower)
            );
        }
    }
}

#[test]
fn run_diverging_points_marked_others_intact() {
    let mut spec = fake_spec(&[1.0, 500.0, 2.0], &[0.0, 1.0]);
    spec.summaries = vec![Statistic::Mean, Statistic::Max];
    spec.block_size = 2;
    let mut sink = MemorySink::new();
    let s = run_fake(&spec, &mut sink, RunControl::default()).unwrap();
    let r = sink.into_result().unwrap();
    assert_eq!(s.points_failed, 2);
    for p in 0..6 {
        let eta = r.grid_values[0][p];
        let a = r.trace(p, 0).unwrap();
        if eta > 100.0 {
            assert_eq!(r.status[p], PointStatus::NonFinite { t: 0.6000000000000001 });
            assert!(r.summary(Statistic::Mean, p, 0).unwrap().is_nan());
            assert!(a[0] == 0.5 + eta * 0.5 && a[1].is_nan(), "{a:?}");
        } else {
            assert_eq!(r.status[p], PointStatus::Ok);
            assert_eq!(a[14], 0.5 + eta * r.time[14]);
            assert!(r.summary(Statistic::Max, p, 0).unwrap().is_finite());
        }
    }
}

#[test]
fn run_cancel_flag_stops_between_blocks() {
    let mut spec = fake_spec(&[1.0, 2.0, 3.0, 4.0], &[0.0, 1.0]);
    (spec.chunk_size, spec.block_size, spec.threads) = (2, 1, Some(1));
    let cancel = AtomicBool::new(false);
    let progress = |p: Progress| {
        if p.points_done >= 3 {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let mut sink = MemorySink::new();
    let ctrl = RunControl {
        cancel: Some(&cancel),
        progress: Some(&progress),
        ..RunControl::default()
    };
    let err = run_fake(&spec, &mut sink, ctrl).unwrap_err();
    assert!(matches!(err, SweepError::Cancelled { points_done: 3 }), "{err:?}");
}

#[test]
fn run_progress_reports_only_grow_and_end_at_the_total() {
    // 2 threads and one-point blocks: many blocks finish close together, the situation in which
    // a count computed first used to reach the callback after a larger one.
    let etas: Vec<f64> = (0..60).map(f64::from).collect();
    let mut spec = fake_spec(&etas, &[0.0, 1.0]);
    (spec.chunk_size, spec.block_size, spec.threads, spec.oversubscribe) = (40, 1, Some(2), true);
    let seen = std::sync::Mutex::new(Vec::new());
    // A report that takes a while (as a slow terminal or a Python callback may) widens the
    // window: a count computed first must still not be passed by the next one.
    let progress = |p: Progress| {
        if p.points_done.is_multiple_of(2) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        seen.lock().unwrap().push(p.points_done);
    };
    let mut sink = MemorySink::new();
    let ctrl = RunControl {
        progress: Some(&progress),
        ..RunControl::default()
    };
    run_fake(&spec, &mut sink, ctrl).unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&120));
}

#[test]
fn run_unknown_output_input_and_shard_are_errors() {
    let mut spec = fake_spec(&[1.0], &[0.0]);
    spec.outputs = vec![("x".into(), "A/op/xx".into())];
    let err = run_fake(&spec, &mut MemorySink::new(), RunControl::default()).unwrap_err();
    assert!(
        matches!(&err, SweepError::UnknownOutput { suggestion: Some(s), .. } if s == "A/op/x"),
        "{err:?}"
    );
    let mut spec = fake_spec(&[1.0], &[0.0]);
    spec.inputs = vec![("A/op/eta".into(), Signal::Constant(1.0))];
    let err = run_fake(&spec, &mut MemorySink::new(), RunControl::default()).unwrap_err();
    assert!(
        matches!(
            err,
            SweepError::NotAnInput {
                kind: VarKind::Param,
                ..
            }
        ),
        "{err:?}"
    );
    let spec = fake_spec(&[1.0], &[0.0]);
    let ctrl = RunControl {
        shard: Some(Shard { index: 2, count: 2 }),
        ..RunControl::default()
    };
    let err = run_fake(&spec, &mut MemorySink::new(), ctrl).unwrap_err();
    assert!(matches!(err, SweepError::BadShard { index: 2, count: 2 }));
}
