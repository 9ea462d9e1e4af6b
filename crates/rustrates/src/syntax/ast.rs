//! The parsed form of one equation string. Spans are byte ranges relative to the start of
//! the equation string; the template loader shifts them by the string's position in its file.

use super::source::TextRange;

/// One equation as written: `d/dt * x = rhs`, `x' = rhs`, `dx/dt = rhs` or `x = rhs`.
#[derive(Clone, Debug, PartialEq)]
pub struct Equation {
    pub lhs: Lhs,
    pub rhs: Expr,
    pub range: TextRange,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LhsKind {
    /// First-order ODE for `name`.
    Derivative,
    /// Algebraic assignment to `name`.
    Assign,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Lhs {
    pub kind: LhsKind,
    pub name: String,
    /// Span of the variable name only.
    pub range: TextRange,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    /// `**` or `^`.
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    Plus,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub range: TextRange,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Number(f64),
    /// An imaginary literal `2.5j`: 2.5·i.
    Imaginary(f64),
    /// A symbol: variable, constant (`pi`, `E`), or time `t`. Resolved later.
    Ident(String),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `name(args...)`: a function call, or (when `name` is a variable and the single
    /// argument is `t - d`) a delayed access; the model builder decides which.
    Call {
        name: String,
        name_range: TextRange,
        args: Vec<Expr>,
    },
}
