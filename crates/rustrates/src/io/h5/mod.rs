//! HDF5 result files (feature `hdf5`).
//!
//! # Layout
//!
//! ```text
//! /                         attributes:
//!                             template_source    YAML text of the template file
//!                             template_path      the template path the sweep was given
//!                             settings           JSON: solver, steps, param_map, inputs, outputs, summaries, ...
//!                             circuit_name       label prefix (e.g. Net3)
//!                             fingerprint        SHA-256 of template source + grid + settings
//!                             rustrates_version
//!                             complete = 1       only on a finished, merged file
//!                             failed_points      points whose chunk failed (0 unless a
//!                                                cluster chunk failed on every try)
//! /time                     f64 [n_time]                    sample times after the cutoff
//! /grid/<key>               f64 [n_points]                  one per grid key, point order
//! /grid/labels              str [n_points]                  "{circuit_name}_{i}"
//!                           (/grid attribute `keys`: JSON list of the keys in order; a `/`
//!                           in a key is stored as `%2F` in its dataset name)
//! /status/code              u8  [n_points]                  0 ok, 1 non-finite, 2 step too small,
//!                                                           3 failed (not computed)
//! /status/t                 f64 [n_points]                  time of the failure (NaN when ok)
//! /status/error             str [n_points]                  only when failed_points > 0: why
//!                                                           the point's chunk failed ("" else)
//! /columns/node             str [n_columns]                 node of each output column
//! /columns/key              str [n_columns]                 output key of each column
//! /summaries/<stat>         f64 [n_points, n_columns]       when summaries were asked for
//!                           (/summaries attribute `stats`: JSON list in order; stats are
//!                           mean, std, min, max, last, ptp, dom_freq, dom_power)
//! /traces                   f64 [n_points, n_time, n_columns]  when traces are kept (f32 when
//!                           asked for, `FileOptions::trace_type`); chunked
//!                           (min(block_size, n_points), n_time, n_columns): a chunk holds whole
//!                           points, at most 8 MiB of them (a point larger than that is cut in
//!                           time), shuffle + deflate level 1 when there are
//!                           at least 64 MiB of them, unless compression is off
//! /inputs/<var>             f64 [steps] or [steps, n_points]  time-series inputs (constants
//!                           are in `settings`); `/` in a name stored as `%2F`
//! ```
//!
//! h5py reads it lazily: `f["traces"][i, :, c]` is the trace of point i, column c.
//! Failed points (see [`merge_marking_failed`]) have NaN summaries and traces.
//!
//! Part files (`DIR/parts/chunk_*.h5`, see [`super::parts`]) have the same layout restricted
//! to their chunk's points, plus root attributes `chunk_index`, `chunk_start`, `chunk_end`,
//! and no `complete`; their traces are chunked and compressed as the merged file's.
//!
//! The code follows the seams of that job: [`layout`] (the layout and a file being written),
//! [`sinks`] (the sweep sinks: direct and part files), [`merge`] (parts into one file) and
//! [`read`] (a complete file back into memory, or the part of it a [`ReadSelection`] asks for). While a sweep runs, the worker threads encode
//! each finished block's trace chunks ([`codec`]: HDF5's shuffle and deflate filters, done by
//! libdeflate) and queue them for one writer thread ([`writer`]), which writes them with
//! `H5Dwrite_chunk`; the queue holds at most [`QUEUE_BYTES`] before workers wait for it.

mod codec;
mod direct;
mod layout;
mod merge;
mod read;
mod sinks;
mod writer;

pub use codec::TraceType;
pub use direct::{DIRECT_IO_ENV, DIRECT_IO_THREADS};
pub use layout::{sweep_record_of, FileOptions, MIN_COMPRESSED_TRACE_BYTES};
pub use merge::{merge, merge_marking_failed, merge_marking_failed_into, FailedChunk, IncrementalMerge, MergedPoints};
pub use read::{read_part, read_results, read_results_points, read_results_selected, select_columns, ReadSelection};
pub use sinks::{run_parts, sweep_to_file, PartSink};
pub use writer::{QUEUE_BYTES, SPARE_BUFFERS};

#[cfg(test)]
use layout::*;

#[cfg(test)]
mod tests;
