//! One block of lanes: its parameters and initial values from the grid, the solver run, its
//! samples collected into traces, summaries and regimes.

use std::ops::Range;

use super::plan::{GroupPlan, SweepPlan, Target};
use super::regime::{self};
use super::summary::{Moments, Spectrum, Statistic};
use super::{BlockSolver, SweepError};
use crate::model::jacobian::JacobianFn;
use crate::solve::{Block, PointStatus, SampleSink, Signal};

/// Collects one block's samples: into the trace array (`[lane][time][column]`) and into
/// per-lane moments.
struct BlockCollector<'b> {
    traces: Option<&'b mut [f64]>,
    /// Per `(column, lane)`, in the solver's `[column][lane]` order.
    moments: Option<Moments>,
    n_time: usize,
    n_cols: usize,
    samples_seen: usize,
    overflow: bool,
    /// `[state][lane]` at the last sample, when regimes are classified (handed over by the
    /// solver once, not read at every sample).
    final_state: Option<Vec<f64>>,
    /// The regime's period detection, fed every sample as it arrives.
    scans: Option<regime::CrossingScans>,
}

impl SampleSink for BlockCollector<'_> {
    fn samples(&mut self, index: usize, _t: f64, lanes: usize, values: &[f64]) {
        // The passes over a sample's traces (moments, crossing scans) vectorise; the build
        // targets baseline x86-64 (2 doubles a vector), so where the CPU has AVX2 the same
        // code runs compiled for it (4 a vector). Same arithmetic per trace, same results.
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: `collect_avx2` needs AVX2 and nothing else; the CPU has it (checked
            // just above).
            unsafe { self.collect_avx2(index, lanes, values) };
            return;
        }
        self.collect(index, lanes, values);
    }
    fn wants_last_state(&self) -> bool {
        self.final_state.is_some()
    }
    fn last_state(&mut self, _lanes: usize, y: &[f64]) {
        if let Some(fs) = self.final_state.as_mut() {
            fs.copy_from_slice(y);
        }
    }
}

impl BlockCollector<'_> {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn collect_avx2(&mut self, index: usize, lanes: usize, values: &[f64]) {
        self.collect(index, lanes, values);
    }

    /// One sample of every column and lane, `values[column * lanes + lane]`.
    #[inline(always)]
    fn collect(&mut self, index: usize, lanes: usize, values: &[f64]) {
        if index >= self.n_time {
            self.overflow = true;
            return;
        }
        self.samples_seen = self.samples_seen.max(index + 1);
        let (nt, nc) = (self.n_time, self.n_cols);
        if let Some(tr) = self.traces.as_deref_mut() {
            for c in 0..nc {
                for lane in 0..lanes {
                    tr[(lane * nt + index) * nc + c] = values[c * lanes + lane];
                }
            }
        }
        if let Some(m) = self.moments.as_mut() {
            m.push(&values[..nc * lanes]);
        }
        if let Some(scans) = self.scans.as_mut() {
            scans.push(index, &values[..nc * lanes]);
        }
    }
}

/// The grid points of a block.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Lanes {
    /// `first..first + n`.
    Run(usize, usize),
    /// Points of one group in increasing order, not necessarily consecutive.
    Gathered(Vec<usize>),
}

impl Lanes {
    fn first(&self) -> usize {
        match self {
            Lanes::Run(first, _) => *first,
            Lanes::Gathered(p) => p[0],
        }
    }
    pub(super) fn len(&self) -> usize {
        match self {
            Lanes::Run(_, n) => *n,
            Lanes::Gathered(p) => p.len(),
        }
    }
}

/// A block's own results (traces only when not written into a sink-owned target).
pub(super) struct BlockData {
    pub(super) first_point: usize,
    pub(super) lanes: usize,
    /// The points of a gathered block, lane by lane.
    pub(super) points: Option<Vec<usize>>,
    pub(super) traces: Option<Vec<f64>>,
    pub(super) summaries: Vec<f64>,
    pub(super) status: Vec<PointStatus>,
}

impl SweepPlan<'_> {
    fn group_at(&self, point: usize) -> usize {
        self.group_of.as_ref().map_or(0, |g| g[point] as usize)
    }

    /// The blocks of a chunk, at most `lanes` points of one group each: the points of each
    /// group gathered when [`SweepPlan::gather`] allows, else runs of consecutive points (the
    /// solver addresses per-point input columns and noise seeds by `first_point + lane`).
    pub(super) fn blocks(&self, range: Range<usize>, lanes: usize) -> Vec<Lanes> {
        if let (true, Some(of)) = (self.gather, &self.group_of) {
            let mut by_group: Vec<Vec<usize>> = vec![Vec::new(); self.groups.len()];
            for p in range {
                by_group[of[p] as usize].push(p);
            }
            return by_group
                .iter()
                .flat_map(|points| points.chunks(lanes).map(|c| Lanes::Gathered(c.to_vec())))
                .collect();
        }
        let mut out = Vec::new();
        let mut first = range.start;
        while first < range.end {
            let g = self.group_at(first);
            let mut end = (first + lanes).min(range.end);
            if let Some(of) = &self.group_of {
                end = first + 1 + of[first + 1..end].iter().take_while(|&&x| x as usize == g).count();
            }
            out.push(Lanes::Run(first, end - first));
            first = end;
        }
        out
    }

    /// Runs the points of `block`; `target` is where traces go if the sink owns the array.
    pub(super) fn run_block(
        &self,
        block: &Lanes,
        target: Option<&mut [f64]>,
        runner: &BlockSolver<'_>,
    ) -> Result<BlockData, SweepError> {
        let grid = &self.spec.param_grid;
        let (first, lanes) = (block.first(), block.len());
        let g = &self.groups[self.group_at(first)];
        let mut params = Vec::with_capacity(g.params.len() * lanes);
        for &v in &g.params {
            params.extend(std::iter::repeat_n(v, lanes));
        }
        let mut init = Vec::with_capacity(g.init.len() * lanes);
        for &v in &g.init {
            init.extend(std::iter::repeat_n(v, lanes));
        }
        for (key, targets) in g.targets.iter().enumerate() {
            let column = grid.column(key);
            for t in targets {
                let (dst, slot) = match *t {
                    Target::Param(s) => (&mut params, s),
                    Target::Init(s) => (&mut init, s),
                };
                let dst = &mut dst[slot * lanes..(slot + 1) * lanes];
                match block {
                    Lanes::Run(..) => dst.copy_from_slice(&column[first..first + lanes]),
                    Lanes::Gathered(points) => {
                        for (d, &p) in dst.iter_mut().zip(points) {
                            *d = column[p];
                        }
                    }
                }
            }
        }
        let random = self.spec.random_starts.as_ref().filter(|_| !g.random_slots.is_empty());
        let n_random = random.map_or(0, |r| r.n);
        if g.starts.is_empty() && n_random == 0 {
            return Ok(self.solve_lanes(g, block, lanes, &params, &init, target, runner)?.0);
        }
        // Several starts: the same lanes once per start (so a point keeps its grid index for
        // the solver), the first start's traces and statistics reported, the ends compared.
        let mut target = target;
        let mut first_run: Option<BlockData> = None;
        let mut ends = Vec::with_capacity(g.starts.len() + n_random);
        for k in 0..g.starts.len() + n_random {
            let mut init_k = init.clone();
            if let Some(start) = g.starts.get(k) {
                for &(slot, value) in start {
                    init_k[slot * lanes..(slot + 1) * lanes].fill(value);
                }
            } else if let Some(r) = random {
                let k = k - g.starts.len();
                for (b, &slot) in g.random_slots.iter().enumerate() {
                    for (lane, x) in init_k[slot * lanes..(slot + 1) * lanes].iter_mut().enumerate() {
                        let point = match block {
                            Lanes::Run(first, _) => first + lane,
                            Lanes::Gathered(points) => points[lane],
                        };
                        *x = r.value(point, k, b);
                    }
                }
            }
            let (data, end) = self.solve_lanes(g, block, lanes, &params, &init_k, target.take(), runner)?;
            ends.push(end);
            first_run.get_or_insert(data);
        }
        let mut data = first_run.expect("at least one start");
        let nc = self.n_cols;
        if let Some(si) = self.spec.summaries.iter().position(|s| *s == Statistic::Multistable) {
            for lane in 0..lanes {
                let flag = regime::multistable(
                    ends.iter().filter_map(|e| e.as_ref()).map(|e| e.attractor(lane)),
                    &self.spec.regime,
                );
                let value = if data.status[lane] == PointStatus::Ok {
                    flag.map_or(f64::NAN, |f| f64::from(u8::from(f)))
                } else {
                    f64::NAN
                };
                data.summaries[(si * lanes + lane) * nc..(si * lanes + lane + 1) * nc].fill(value);
            }
        }
        Ok(data)
    }

    /// Solves the lanes of `block` from `init` and computes their statistics; also returns
    /// the regime ends (state at the last sample and classification) when regimes are
    /// classified.
    #[allow(clippy::too_many_arguments)]
    fn solve_lanes(
        &self,
        g: &GroupPlan,
        block: &Lanes,
        lanes: usize,
        params: &[f64],
        init: &[f64],
        target: Option<&mut [f64]>,
        runner: &BlockSolver<'_>,
    ) -> Result<(BlockData, Option<LaneEnds>), SweepError> {
        let first = block.first();
        let per_lane = self.n_time * self.n_cols;
        let has_target = target.is_some();
        let needs_fft = self.spec.summaries.iter().any(|s| s.needs_fft());
        let mut own = if !has_target && (self.spec.keep_traces || needs_fft) {
            Some(vec![f64::NAN; lanes * per_lane])
        } else {
            None
        };
        let traces = match target {
            Some(t) => Some(t),
            None => own.as_deref_mut(),
        };
        let moment_stats = self.spec.summaries.iter().any(|s| !s.needs_fft());
        let mut collector = BlockCollector {
            traces,
            // The regime reads each column's range and mean from the moments.
            moments: moment_stats.then(|| Moments::for_stats(self.n_cols * lanes, &self.spec.summaries)),
            n_time: self.n_time,
            n_cols: self.n_cols,
            samples_seen: 0,
            overflow: false,
            final_state: g.jacobian.as_ref().map(|j| vec![f64::NAN; j.n() * lanes]),
            scans: self.regime.then(|| {
                regime::CrossingScans::reusing(SCAN_BUFFER.take(), self.n_cols * lanes, self.n_time, self.dts)
            }),
        };
        let lanes_in = Block {
            first_point: first,
            lanes,
            params,
            init,
        };
        let status = runner(
            &g.kernel,
            &self.spec.sim,
            &g.inputs,
            &g.outputs,
            lanes_in,
            &mut collector,
        )?;
        if collector.overflow || collector.samples_seen != self.n_time {
            let found = if collector.overflow {
                self.n_time + 1
            } else {
                collector.samples_seen
            };
            return Err(SweepError::SampleCount {
                expected: self.n_time,
                found,
            });
        }
        let BlockCollector {
            traces,
            moments,
            final_state,
            scans,
            ..
        } = collector;
        let nc = self.n_cols;
        let mut summaries = vec![f64::NAN; self.spec.summaries.len() * lanes * nc];
        let mut spectrum = self.fft.clone().map(Spectrum::new);
        let mut dominant = vec![(f64::NAN, f64::NAN); if spectrum.is_some() { lanes * nc } else { 0 }];
        if let (Some(sp), Some(tr)) = (spectrum.as_mut(), traces.as_deref()) {
            for lane in 0..lanes {
                if status[lane] != PointStatus::Ok {
                    continue;
                }
                for c in 0..nc {
                    let base = lane * per_lane + c;
                    dominant[lane * nc + c] = sp.dominant(|i| tr[base + i * nc], self.dts);
                }
            }
        }
        // Each column's (min, max, mean) from the moments, so that period detection reads the
        // samples once.
        let range = |lane: usize, c: usize| match moments.as_ref() {
            Some(m) => (
                m.get(c * lanes + lane, Statistic::Min),
                m.get(c * lanes + lane, Statistic::Max),
                m.get(c * lanes + lane, Statistic::Mean),
            ),
            None => (f64::NAN, f64::NAN, f64::NAN),
        };
        let regimes = match (&g.jacobian, &final_state, &scans) {
            (Some(jac), Some(y), Some(scans)) => {
                Some(self.regimes(g, jac, first, y, params, lanes, &status, scans, range))
            }
            _ => None,
        };
        for (si, &stat) in self.spec.summaries.iter().enumerate() {
            for lane in 0..lanes {
                if let (Statistic::Regime, PointStatus::NonFinite { .. } | PointStatus::StepTooSmall { .. }) =
                    (stat, status[lane])
                {
                    let code = f64::from(regime::Regime::Diverged.code());
                    summaries[(si * lanes + lane) * nc..(si * lanes + lane + 1) * nc].fill(code);
                }
                if status[lane] != PointStatus::Ok {
                    continue;
                }
                if let (true, Some(r)) = (stat.needs_regime(), regimes.as_ref()) {
                    for c in 0..nc {
                        summaries[(si * lanes + lane) * nc + c] = r.get(stat, lane, c);
                    }
                    continue;
                }
                for c in 0..nc {
                    summaries[(si * lanes + lane) * nc + c] = match stat {
                        Statistic::DomFreq => dominant.get(lane * nc + c).map_or(f64::NAN, |d| d.0),
                        Statistic::DomPower => dominant.get(lane * nc + c).map_or(f64::NAN, |d| d.1),
                        s => moments.as_ref().map_or(f64::NAN, |m| m.get(c * lanes + lane, s)),
                    };
                }
            }
        }
        if let Some(scans) = scans {
            SCAN_BUFFER.set(scans.into_buffer());
        }
        let traces = if self.spec.keep_traces { own } else { None };
        let ends = match (regimes, final_state) {
            (Some(regimes), Some(y)) => Some(LaneEnds { regimes, y, lanes }),
            _ => None,
        };
        Ok((
            BlockData {
                first_point: first,
                lanes,
                points: match block {
                    Lanes::Run(..) => None,
                    Lanes::Gathered(p) => Some(p.clone()),
                },
                traces,
                summaries,
                status,
            },
            ends,
        ))
    }
}

thread_local! {
    /// The regime scans' buffer of level samples, kept by each worker thread from one block
    /// to the next (the sweep's pool threads end with the sweep): a fresh buffer of a
    /// megabyte per block paid its page faults every time.
    static SCAN_BUFFER: std::cell::Cell<Vec<f64>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Where one run of a block's lanes ended: for comparing the ends of several starts.
struct LaneEnds {
    regimes: BlockRegimes,
    /// `[state][lane]` at the last sample.
    y: Vec<f64>,
    lanes: usize,
}

impl LaneEnds {
    fn attractor(&self, lane: usize) -> regime::Attractor {
        let n = self.y.len() / self.lanes.max(1);
        let (code, _, _) = self.regimes.point[lane];
        let nc = self.regimes.nc;
        regime::Attractor {
            regime: regime::Regime::from_code(code),
            state: (0..n).map(|i| self.y[i * self.lanes + lane]).collect(),
            cycles: self.regimes.column[lane * nc..(lane + 1) * nc].to_vec(),
        }
    }
}

/// One block's regime statistics (see [`regime`]).
struct BlockRegimes {
    nc: usize,
    /// Per lane: code, leading eigenvalue (re, im).
    point: Vec<(f64, f64, f64)>,
    /// Per lane and column: period, amplitude.
    column: Vec<(f64, f64)>,
}

impl BlockRegimes {
    fn get(&self, stat: Statistic, lane: usize, c: usize) -> f64 {
        let (code, re, im) = self.point[lane];
        let (period, amplitude) = self.column[lane * self.nc + c];
        match stat {
            Statistic::Regime => code,
            Statistic::EigRe => re,
            Statistic::EigIm => im,
            Statistic::Period => period,
            Statistic::Amplitude => amplitude,
            _ => f64::NAN,
        }
    }
}

impl SweepPlan<'_> {
    /// Classifies the lanes of a finished block: `y` is the state at the last sample
    /// (`[state][lane]`), `params` the block's parameters, `scans` the crossings of the
    /// post-cutoff outputs (trace `column · lanes + lane`). Inputs take their value at the
    /// last sample's step.
    #[allow(clippy::too_many_arguments)]
    fn regimes(
        &self,
        g: &GroupPlan,
        jac: &JacobianFn,
        first: usize,
        y: &[f64],
        params: &[f64],
        lanes: usize,
        status: &[PointStatus],
        scans: &regime::CrossingScans,
        range: impl Fn(usize, usize) -> (f64, f64, f64),
    ) -> BlockRegimes {
        let (n, nc, nt) = (jac.n(), self.n_cols, self.n_time);
        let settings = &self.spec.regime;
        let t_end = self.time.last().copied().unwrap_or(0.0);
        let step = (t_end / self.spec.sim.dt).round() as usize;
        let layout = g.kernel.layout();
        let mut u = Vec::with_capacity(layout.inputs.len() * lanes);
        for &var in &layout.inputs {
            let binding = g.inputs.iter().find(|b| b.var == var);
            for lane in 0..lanes {
                u.push(match binding.map(|b| &b.signal) {
                    None => g.kernel.circuit().var(var).value,
                    Some(Signal::Constant(v)) => *v,
                    Some(Signal::Shared(d)) => d[step.min(d.len().saturating_sub(1))],
                    // Per-point columns address points by `first_point + lane`: the solver's
                    // runs of consecutive points (a block with such inputs is never gathered).
                    Some(Signal::PerPoint { points, data }) => {
                        let steps = data.len() / (*points).max(1);
                        data[step.min(steps.saturating_sub(1)) * points + (first + lane)]
                    }
                });
            }
        }
        let mut dy = vec![0.0; n * lanes];
        let mut m = vec![0.0; n * n * lanes];
        jac.eval(t_end, lanes, y, params, &u, &mut dy, &mut m);
        let mut point = vec![(f64::NAN, f64::NAN, f64::NAN); lanes];
        let mut column = vec![(f64::NAN, f64::NAN); lanes * nc];
        // Per lane: residual, scale, whether stationary; per column (period, amplitude,
        // moves), from its crossings unless the lane is a fixed point (whose class does not
        // depend on its columns and whose period is reported as NaN: only the amplitude, from
        // the range, is needed).
        let mut lane_state = vec![None; lanes];
        let mut cols = vec![(f64::NAN, f64::NAN, false); lanes * nc];
        for lane in 0..lanes {
            if status[lane] != PointStatus::Ok || nt == 0 {
                continue;
            }
            let residual = (0..n).map(|i| dy[i * lanes + lane].abs()).fold(0.0, f64::max);
            let scale = (0..n).map(|i| y[i * lanes + lane].abs()).fold(0.0, f64::max);
            let stationary = residual <= settings.stationary_tol * (1.0 + scale);
            lane_state[lane] = Some((residual, scale, stationary));
            for c in 0..nc {
                cols[lane * nc + c] = if stationary {
                    (f64::NAN, regime::amplitude_in_range(range(lane, c)), false)
                } else {
                    scans.finish(c * lanes + lane, range(lane, c), settings)
                };
            }
        }
        for lane in 0..lanes {
            let Some((residual, scale, stationary)) = lane_state[lane] else {
                continue;
            };
            let lane_cols: Vec<(f64, bool)> = cols[lane * nc..(lane + 1) * nc]
                .iter()
                .map(|&(period, _, moves)| (period, moves))
                .collect();
            for c in 0..nc {
                let (period, amplitude, _) = cols[lane * nc + c];
                column[lane * nc + c] = (period, amplitude);
            }
            let leading = if stationary {
                crate::model::jacobian::eigenvalues(&m[lane * n * n..(lane + 1) * n * n], n)
                    .and_then(|e| e.first().copied())
            } else {
                None
            };
            let r = regime::classify(residual, scale, leading, &lane_cols, settings);
            let (re, im) = match (r, leading) {
                (
                    regime::Regime::StableNode | regime::Regime::StableFocus | regime::Regime::UnstableFixedPoint,
                    Some(l),
                ) => l,
                _ => (f64::NAN, f64::NAN),
            };
            if r != regime::Regime::Periodic {
                for c in 0..nc {
                    column[lane * nc + c].0 = f64::NAN;
                }
            }
            point[lane] = (f64::from(r.code()), re, im);
        }
        BlockRegimes { nc, point, column }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The collector compiled for AVX2 and the baseline one give the same moments, crossings
    /// and periods, bit for bit, on traces that cross, ripple, stay flat, hold a NaN and an
    /// infinity (where the CPU has no AVX2 there is nothing to compare: the baseline path is
    /// the one every other test runs then). The two differ in their vector code in an
    /// optimised build (`cargo test --release`); unoptimised, this checks the dispatch.
    #[test]
    fn collector_with_and_without_avx2_agree_bit_for_bit() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let (lanes, cols, n_time, dts) = (19, 2, 997, 0.01);
            let stats = Statistic::expand(&[Statistic::Regime]);
            let collector = || BlockCollector {
                traces: None,
                moments: Some(Moments::for_stats(cols * lanes, &stats)),
                n_time,
                n_cols: cols,
                samples_seen: 0,
                overflow: false,
                final_state: None,
                scans: Some(regime::CrossingScans::new(cols * lanes, n_time, dts)),
            };
            let (mut plain, mut wide) = (collector(), collector());
            let value = |i: usize, trace: usize| {
                let t = i as f64 * dts;
                let f = 1.0 + trace as f64 * 0.37;
                match trace {
                    3 => 2.5,
                    5 if i == 400 => f64::NAN,
                    7 if i == 300 => f64::INFINITY,
                    _ => (f * t).sin() + 0.05 * (17.0 * f * t).sin() + 0.01 * trace as f64,
                }
            };
            let mut row = vec![0.0; cols * lanes];
            for i in 0..n_time {
                for (trace, v) in row.iter_mut().enumerate() {
                    *v = value(i, trace);
                }
                plain.collect(i, lanes, &row);
                // SAFETY: the CPU has AVX2 (checked above).
                unsafe { wide.collect_avx2(i, lanes, &row) };
            }
            let s = crate::sweep::regime::RegimeSettings::default();
            let (pm, wm) = (plain.moments.expect("kept"), wide.moments.expect("kept"));
            let (ps, ws) = (plain.scans.expect("kept"), wide.scans.expect("kept"));
            let mut periodic = 0;
            for trace in 0..cols * lanes {
                let range = |m: &Moments| {
                    (
                        m.get(trace, Statistic::Min),
                        m.get(trace, Statistic::Max),
                        m.get(trace, Statistic::Mean),
                    )
                };
                let (pr, wr) = (range(&pm), range(&wm));
                let (pp, wp) = (ps.finish(trace, pr, &s), ws.finish(trace, wr, &s));
                let bits = |(a, b, c): (f64, f64, f64)| [a.to_bits(), b.to_bits(), c.to_bits()];
                assert_eq!(bits(pr), bits(wr), "trace {trace} range");
                assert_eq!(
                    (pp.0.to_bits(), pp.1.to_bits(), pp.2),
                    (wp.0.to_bits(), wp.1.to_bits(), wp.2)
                );
                periodic += usize::from(pp.0.is_finite());
            }
            // The comparison covers periodic traces, not only NaN periods.
            assert!(periodic > 10, "{periodic} periodic traces");
        }
    }
}
