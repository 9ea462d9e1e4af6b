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

impl BinOp {
    /// Precedence level of the printers (comparisons 1, `+ -` 2, `* /` 3, `**` 5; a unary
    /// minus sits at 4), matching the parser's binding powers.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Add | BinOp::Sub => 2,
            BinOp::Mul | BinOp::Div => 3,
            BinOp::Pow => 5,
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => 1,
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne
        )
    }

    /// The operator as equations write it, with a space either side (`**` for the power,
    /// tight as PyRates writes it).
    pub fn equation_text(self) -> &'static str {
        match self {
            BinOp::Add => " + ",
            BinOp::Sub => " - ",
            BinOp::Mul => " * ",
            BinOp::Div => " / ",
            BinOp::Pow => "**",
            BinOp::Lt => " < ",
            BinOp::Le => " <= ",
            BinOp::Gt => " > ",
            BinOp::Ge => " >= ",
            BinOp::Eq => " == ",
            BinOp::Ne => " != ",
        }
    }
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
