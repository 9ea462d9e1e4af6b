//! Where a sweep's results go: the [`SweepSink`] trait and the in-memory result.

use std::ops::Range;
use std::sync::Arc;

use super::summary::Statistic;
use super::{BlockOutput, SweepError, SweepMeta};
use crate::kernel::Backend;
use crate::solve::PointStatus;

/// Receives a sweep's results as they are produced.
pub trait SweepSink: Send {
    fn begin(&mut self, meta: &SweepMeta<'_>) -> Result<(), SweepError>;
    /// Whether chunk `index` must be computed (false: a previous run already has it).
    fn begin_chunk(&mut self, _index: usize, _range: Range<usize>) -> Result<bool, SweepError> {
        Ok(true)
    }
    /// A `[point][time][column]` array for the points `range` that blocks write straight
    /// into, when the sink keeps traces in memory.
    fn trace_target(&mut self, _range: Range<usize>) -> Option<&mut [f64]> {
        None
    }
    /// Whether the sink keeps every point's traces in memory (then a sweep's traces must fit
    /// in memory as a whole, not only a block of them per thread).
    fn holds_traces_in_memory(&self) -> bool {
        false
    }
    /// Called once per block, in completion order (not point order).
    fn block(&mut self, out: BlockOutput<'_>) -> Result<(), SweepError>;
    /// For the chunk just begun: a handler the worker threads give their blocks to directly,
    /// in parallel, instead of [`SweepSink::block`] one at a time (a file sink encodes its
    /// chunks there and queues them for its writer thread).
    fn block_handler(&mut self) -> Option<Arc<dyn BlockHandler>> {
        None
    }
    /// Every block of chunk `index` has been delivered.
    fn end_chunk(&mut self, _index: usize, _range: Range<usize>) -> Result<(), SweepError> {
        Ok(())
    }
    /// The run finished (all chunks it was asked for).
    fn finish(&mut self) -> Result<(), SweepError> {
        Ok(())
    }
}

/// Takes blocks from several worker threads at once (see [`SweepSink::block_handler`]).
pub trait BlockHandler: Send + Sync {
    /// Called once per block, on the worker thread that computed it.
    fn block(&self, out: BlockOutput<'_>) -> Result<(), SweepError>;
}

/// What a finished run did.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSummary {
    pub points_run: usize,
    pub points_skipped: usize,
    pub chunks_run: usize,
    pub chunks_skipped: usize,
    pub lane_steps: u64,
    /// Points whose status is not ok.
    pub points_failed: usize,
    pub backend: Backend,
    /// What the user should know about the run that is not an error (a thread count capped,
    /// a corrupt part set aside and recomputed, a folder kept because it holds other files).
    pub notes: Vec<String>,
}

/// Summaries kept in memory: `values[statistic][point * n_columns + column]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Summaries {
    pub stats: Vec<Statistic>,
    pub values: Vec<Vec<f64>>,
}

/// A sweep's results in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepResult {
    pub circuit_name: String,
    pub labels: Vec<String>,
    pub grid_keys: Vec<String>,
    /// Per key, in point order.
    pub grid_values: Vec<Vec<f64>>,
    pub time: Vec<f64>,
    /// `(node, output key)`.
    pub columns: Vec<(String, String)>,
    /// `[point][time][column]`.
    pub traces: Option<Vec<f64>>,
    pub summaries: Option<Summaries>,
    pub status: Vec<PointStatus>,
}

impl SweepResult {
    /// PyRates' result DataFrame columns: `(label, node, output key)`, point-major.
    pub fn dataframe_columns(&self) -> Vec<(String, String, String)> {
        self.labels
            .iter()
            .flat_map(|l| self.columns.iter().map(move |(n, k)| (l.clone(), n.clone(), k.clone())))
            .collect()
    }
    /// The trace of one point and column.
    pub fn trace(&self, point: usize, column: usize) -> Option<Vec<f64>> {
        let tr = self.traces.as_ref()?;
        let (nt, nc) = (self.time.len(), self.columns.len());
        Some((0..nt).map(|i| tr[(point * nt + i) * nc + column]).collect())
    }
    /// One summary of one point and column.
    pub fn summary(&self, stat: Statistic, point: usize, column: usize) -> Option<f64> {
        let s = self.summaries.as_ref()?;
        let i = s.stats.iter().position(|&x| x == stat)?;
        Some(s.values[i][point * self.columns.len() + column])
    }
}

/// Keeps everything in memory; [`MemorySink::into_result`] gives the [`SweepResult`].
#[derive(Debug, Default)]
pub struct MemorySink {
    result: Option<SweepResult>,
}

impl MemorySink {
    pub fn new() -> MemorySink {
        MemorySink::default()
    }
    pub fn into_result(self) -> Option<SweepResult> {
        self.result
    }
}

impl SweepSink for MemorySink {
    fn begin(&mut self, meta: &SweepMeta<'_>) -> Result<(), SweepError> {
        let n = meta.grid.len();
        let nc = meta.columns.len();
        self.result = Some(SweepResult {
            circuit_name: meta.circuit_name.to_string(),
            labels: meta.grid.labels(meta.circuit_name),
            grid_keys: meta.grid.keys().to_vec(),
            grid_values: meta.grid.columns().to_vec(),
            time: meta.time.to_vec(),
            columns: meta.columns.to_vec(),
            traces: meta.keep_traces.then(|| vec![f64::NAN; n * meta.time.len() * nc]),
            summaries: (!meta.summaries.is_empty()).then(|| Summaries {
                stats: meta.summaries.to_vec(),
                values: vec![vec![f64::NAN; n * nc]; meta.summaries.len()],
            }),
            status: vec![PointStatus::Ok; n],
        });
        Ok(())
    }
    fn holds_traces_in_memory(&self) -> bool {
        true
    }
    fn trace_target(&mut self, range: Range<usize>) -> Option<&mut [f64]> {
        let r = self.result.as_mut()?;
        let per_point = r.time.len() * r.columns.len();
        r.traces
            .as_mut()
            .map(|t| &mut t[range.start * per_point..range.end * per_point])
    }
    fn block(&mut self, out: BlockOutput<'_>) -> Result<(), SweepError> {
        let r = self.result.as_mut().expect("begin is called before any block");
        let nc = r.columns.len();
        let p0 = out.first_point;
        r.status[p0..p0 + out.lanes].copy_from_slice(out.status);
        if let (Some(dst), Some(src)) = (r.traces.as_mut(), out.traces) {
            let per_point = r.time.len() * nc;
            dst[p0 * per_point..(p0 + out.lanes) * per_point].copy_from_slice(src);
        }
        if let Some(s) = r.summaries.as_mut() {
            let block = out.lanes * nc;
            for (i, vals) in s.values.iter_mut().enumerate() {
                vals[p0 * nc..(p0 + out.lanes) * nc].copy_from_slice(&out.summaries[i * block..(i + 1) * block]);
            }
        }
        Ok(())
    }
}
