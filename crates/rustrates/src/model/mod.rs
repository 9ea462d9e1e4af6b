//! Stage 3: the circuit IR — a flat system of variables and expressions.
//!
//! Input: a resolved circuit template (`template` stage). Output: [`Circuit`].
//! Invariants of a [`Circuit`] that passed validation:
//! - every [`Expr::Var`] refers to an existing variable;
//! - every state variable has exactly one ODE, every algebraic variable exactly one assignment;
//! - `assigns` is in evaluation order (an assignment only reads states, params, inputs,
//!   time, and algebraics assigned before it);
//! - parameters, initial values and input defaults are data: a sweep overrides them per lane
//!   without touching the structure.

pub mod build;
pub mod dump;
pub mod ir;
pub mod jacobian;
pub mod load;
pub mod network;
pub mod passes;
pub mod test_models;

pub use dump::dump;
pub use ir::*;
pub use load::{load_circuit, LoadFailure, Loaded};
