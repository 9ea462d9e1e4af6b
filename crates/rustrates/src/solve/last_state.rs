//! The state at the last emitted sample, handed to a sink that asks for it
//! ([`SampleSink::wants_last_state`]) once per run instead of being bound as outputs and
//! read at every sample.

use super::fixed::Float;
use super::SampleSink;

/// Hands `sink` the block state `y` (`[slot][lane]`) at the last emitted sample, widened,
/// NaN in `frozen` lanes (as [`super::fixed::gather`] reads them).
pub(crate) fn hand<T: Float>(sink: &mut dyn SampleSink, lanes: usize, y: &[T], frozen: &[bool]) {
    let state: Vec<f64> = y
        .iter()
        .enumerate()
        .map(|(j, v)| if frozen[j % lanes] { f64::NAN } else { v.wide() })
        .collect();
    sink.last_state(lanes, &state);
}

/// The state at the last emitted sample gathered lane by lane as the lanes reach it (NaN in
/// lanes that stop before), for the adaptive stepper, whose lanes reach it at different
/// times; `None` inside when the sink does not want it.
pub(crate) struct LastState {
    /// `[slot][lane]`.
    y: Option<Vec<f64>>,
    lanes: usize,
}

impl LastState {
    pub(crate) fn new(sink: &dyn SampleSink, emitted: usize, states: usize, lanes: usize) -> LastState {
        LastState {
            y: (emitted > 0 && sink.wants_last_state()).then(|| vec![f64::NAN; states * lanes]),
            lanes,
        }
    }

    /// Lane `lane`'s state at the last sample, slot by slot.
    pub(crate) fn keep<T: Float>(&mut self, lane: usize, state: impl Iterator<Item = T>) {
        if let Some(y) = self.y.as_mut() {
            for (slot, v) in state.enumerate() {
                y[slot * self.lanes + lane] = v.wide();
            }
        }
    }

    pub(crate) fn hand(self, sink: &mut dyn SampleSink, lanes: usize) {
        if let Some(y) = self.y {
            sink.last_state(lanes, &y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::kernel::test_kit::Kit;
    use crate::kernel::{Backend, Precision};
    use crate::model::test_models::Builder;
    use crate::model::{Circuit, Expr, Func, VarKind};

    /// Keeps the last sample's values and the handed state.
    #[derive(Default)]
    struct LastOf {
        wants: bool,
        last_sample: Vec<f64>,
        samples: usize,
        state: Option<Vec<f64>>,
        handed: usize,
    }

    impl SampleSink for LastOf {
        fn samples(&mut self, index: usize, _t: f64, _lanes: usize, values: &[f64]) {
            assert_eq!(index, self.samples, "samples arrive in order");
            self.samples += 1;
            self.last_sample = values.to_vec();
        }
        fn wants_last_state(&self) -> bool {
            self.wants
        }
        fn last_state(&mut self, _lanes: usize, y: &[f64]) {
            self.handed += 1;
            self.state = Some(y.to_vec());
        }
    }

    /// `x' = c·x²` (blows up at t = 1/c from x = 1) next to a rotation `(u, v)` at rate c:
    /// lanes with c ≥ 1/T diverge, the others do not.
    fn blow_up_and_rotation(time_dependent: bool) -> Circuit {
        let mut b = Builder::new("last");
        let x = b.var("n/op/x", VarKind::State, 1.0);
        let u = b.var("n/op/u", VarKind::State, 1.0);
        let v = b.var("n/op/v", VarKind::State, 0.0);
        let c = b.var("n/op/c", VarKind::Param, 1.0);
        b.blow_up(x, c);
        let (ue, ve, ce) = (b.v(u), b.v(v), b.v(c));
        let du = b.mul(ce, ve);
        let du = b.neg(du);
        let dv = b.mul(ce, ue);
        let dv = if time_dependent {
            // A forcing in t keeps the adaptive stepper lane by lane (not the masked block).
            let t = b.c.add_expr(Expr::Time);
            let sin = b.call(Func::Sin, vec![t]);
            b.add(dv, sin)
        } else {
            dv
        };
        b.ode(u, du);
        b.ode(v, dv);
        b.c
    }

    /// A run whose sink asks for the last state with one output bound gets exactly (bit for
    /// bit) the states a second run reads at its last sample with every state bound as an
    /// output, the mechanism the regime used before: on every back end and solver path
    /// (fused C/JIT calls, the plain stepper, f32, adaptive masked and lane by lane), with a
    /// cutoff, a sample every step or every 7 steps, and a lane that diverges (NaN in both).
    #[test]
    fn last_state_is_the_state_the_last_sample_reads() {
        let kit = Kit::new();
        let lanes = 3;
        let params = [0.2, 0.9, 0.35]; // T = 2: lane 1 diverges at t = 1/0.9
        for time_dependent in [false, true] {
            let c = blow_up_and_rotation(time_dependent);
            let states: Vec<OutputBinding> = c
                .layout()
                .states
                .iter()
                .map(|&var| OutputBinding {
                    key: c.var(var).name.clone(),
                    var,
                })
                .collect();
            for backend in kit.backends() {
                for precision in [Precision::F64, Precision::F32] {
                    if precision == Precision::F32 && backend != Backend::Reference {
                        continue;
                    }
                    let k = kit.kernel(&c, backend, precision);
                    let methods = [Method::Euler, Method::Rk4, Method::Rk45 { rtol: 1e-7, atol: 1e-9 }];
                    for (method, dts, cutoff) in methods.into_iter().flat_map(|m| [(m, 1e-3, 0.0), (m, 7e-3, 0.5)]) {
                        let mut cfg = SimConfig::new(method, 2.0, 1e-3, Some(dts));
                        cfg.cutoff = cutoff;
                        let init = default_init(&c, lanes);
                        let run = |outputs: &[OutputBinding], wants: bool| {
                            let mut sink = LastOf {
                                wants,
                                ..LastOf::default()
                            };
                            let block = Block {
                                first_point: 0,
                                lanes,
                                params: &params,
                                init: &init,
                            };
                            let status = run_block(&k, &cfg, &[], outputs, block, &mut sink).expect("runs");
                            (sink, status)
                        };
                        let (bound, status) = run(&states, false);
                        let (handed, status_handed) = run(&states[1..2], true);
                        let case = format!("{backend:?} {precision:?} {method:?} dts {dts} forced {time_dependent}");
                        assert_eq!(status, status_handed, "{case}");
                        assert!(status[1].diverged() && !status[0].diverged(), "{case}: {status:?}");
                        assert_eq!((bound.handed, handed.handed), (0, 1), "{case}");
                        let state = handed.state.expect("handed");
                        assert_eq!(state.len(), bound.last_sample.len(), "{case}");
                        for (j, (a, b)) in state.iter().zip(&bound.last_sample).enumerate() {
                            assert!(
                                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                                "{case}: value {j}: handed {a}, sampled {b}"
                            );
                        }
                        assert!(state[lanes + 1].is_nan() && state[lanes].is_finite(), "{case}");
                    }
                }
            }
        }
    }
}
