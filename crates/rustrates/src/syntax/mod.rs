//! Stage 1: source files, byte spans, diagnostics and the equation language.
//!
//! Input: text (YAML files, equation strings). Output: [`ast::Equation`]s with byte spans
//! into a [`SourceMap`], or [`Diagnostic`]s. Line/column are computed only when rendering.

pub mod ast;
pub mod diag;
pub mod lexer;
pub mod parser;
pub mod printer;
pub mod render;
pub mod source;

pub use diag::{Diagnostic, Diagnostics, Label, Severity};
pub use parser::{parse_equation, parse_expr};
pub use printer::{print_equation, print_expr, same_tree};
pub use render::{render_all_concise, render_all_full, render_concise, render_full};
pub use source::{FileId, LineIndex, SourceFile, SourceMap, Span, TextRange};
