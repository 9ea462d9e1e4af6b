//! Stage 3: the circuit IR — a flat system of variables and expressions.
//!
//! Input: a resolved circuit template (`template` stage). Output: [`Circuit`]; [`check_file`]
//! checks a whole template file (every template resolved and built) for `rustrates check`.
//! Invariants of a [`Circuit`] that passed validation:
//! - every [`Expr::Var`] refers to an existing variable;
//! - every state variable has exactly one ODE, every algebraic variable exactly one assignment;
//! - `assigns` is in evaluation order (an assignment only reads states, params, inputs,
//!   time, and algebraics assigned before it);
//! - parameters, initial values and input defaults are data: a sweep overrides them per lane
//!   without touching the structure.

pub mod build;
pub mod check;
pub mod dump;
pub mod ir;
pub mod jacobian;
pub mod load;
pub mod network;
pub mod passes;
pub mod test_models;

pub use check::{check_file, check_source, CheckReport, TemplateSummary};
pub use dump::dump;
pub use ir::*;
pub use load::{load_circuit, LoadFailure, Loaded};
