//! Equation strings → [`Equation`] / [`Expr`], by a hand-written Pratt parser.
//!
//! Input: one equation string, the file it came from and its byte offset in that file.
//! Output: an AST whose ranges are relative to the string's start (see [`ast`](super::ast)), or
//! diagnostics whose spans are absolute in the file.
//!
//! Precedence, low → high: comparisons (non-associative); `+ -`; `* /`; unary `- +`;
//! `**`/`^` (right-associative). As in Python, power binds tighter than a unary minus on its
//! left (`-x**2` is `-(x**2)`) and accepts one on its right (`2**-1`).
//!
//! The left-hand side of an equation is one of `d/dt * x`, `d/dt x`, `x'`, `dx/dt` (first-order
//! derivatives) or `x` (algebraic). Nothing here decides what a name means: a call `f(a)` may be
//! a function or a delayed access `x(t - d)`, which the model builder tells apart.

use super::ast::{BinOp, Equation, Expr, ExprKind, Lhs, LhsKind, UnOp};
use super::diag::{Diagnostic, Diagnostics};
use super::lexer::{tokenize, Token, TokenKind};
use super::source::{FileId, Span, TextRange};

/// Deepest nesting of sub-expressions accepted. Recursion is bounded so that a hostile string
/// (`((((…`) yields a diagnostic instead of overflowing the stack; real equations nest a
/// handful of levels.
pub const MAX_NESTING: usize = 200;

/// Deepest expression tree accepted: operators chain without nesting (`a + b + c + …` is a
/// tree as deep as it has terms), and every later pass walks trees recursively (printers,
/// model passes, kernel emitters, even dropping the tree), so depth is bounded here, where
/// the error can point at the operator. At 2,000 levels template loading and the model
/// passes fit an 8 MiB stack (a main thread's) even in a debug build, and kernels compile on a
/// thread of their own with a larger one
/// (`parse_equation_flat_sum_at_the_height_limit_compiles_in_a_small_stack`); real equations
/// are a few dozen levels deep.
pub const MAX_TREE_HEIGHT: usize = 2_000;

const HELP_LHS_FORMS: &str = "the left-hand side is `x'`, `d/dt * x`, `dx/dt` (a derivative) or `x` (an assignment)";
const HELP_FIRST_ORDER: &str = "only first-order derivatives are allowed; write higher orders as a system of \
     first-order equations, e.g. `x' = y` and `y' = ...`";
const HELP_IMPLICIT_MUL: &str = "multiplication must be written explicitly, e.g. `2*x` rather than `2x` or `2 x`";

/// Parse one equation, e.g. `d/dt * r = (delta/(pi*tau) + 2.*r*v)/tau`.
///
/// `offset` is the byte position of `text` in `file`; it only places diagnostics.
pub fn parse_equation(text: &str, file: FileId, offset: u32) -> Result<Equation, Diagnostics> {
    let (tokens, lex_diags) = tokenize(text, file, offset);
    if !lex_diags.is_empty() {
        // Parsing a token stream with holes would mostly report follow-on errors.
        return Err(lex_diags);
    }
    let ctx = Ctx { text, file, offset };
    let (Some(first), Some(last)) = (tokens.first(), tokens.last()) else {
        return Err(ctx
            .error("eq/empty-equation", TextRange::new(0, len_u32(text)), "empty equation")
            .with_help("write an equation such as `x' = -x/tau` or `y = 2*x`")
            .into());
    };
    let whole = first.range.cover(last.range);

    let assigns: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| t.kind == TokenKind::Assign)
        .map(|(i, _)| i)
        .collect();
    let Some(&eq_idx) = assigns.first() else {
        let mut d = ctx.error("eq/missing-assignment", whole, "equation has no `=`");
        d = if let Some(t) = tokens.iter().find(|t| t.kind == TokenKind::EqEq) {
            d.with_label(ctx.span(t.range), "`==` compares values")
                .with_help("assign with a single `=`: `x = ...` or `x' = ...`")
        } else {
            d.with_help("an equation has the form `x' = expr`, `d/dt * x = expr` or `x = expr`")
        };
        return Err(d.into());
    };
    if let Some(&second) = assigns.get(1) {
        return Err(ctx
            .error(
                "eq/multiple-assignment",
                tokens[second].range,
                "equation has more than one `=`",
            )
            .with_label(ctx.span(tokens[eq_idx].range), "first `=` here")
            .with_help("an equation assigns once; compare values with `==`")
            .into());
    }

    let eq_tok = tokens[eq_idx];
    let mut diags = Diagnostics::new();
    let lhs = parse_lhs(&ctx, &tokens[..eq_idx], eq_tok)
        .map_err(|d| diags.push(*d))
        .ok();
    let rhs_tokens = &tokens[eq_idx + 1..];
    let rhs = if rhs_tokens.is_empty() {
        diags.push(
            ctx.error("eq/empty-expression", eq_tok.range, "missing right-hand side after `=`")
                .with_help("write the expression the variable equals or changes by"),
        );
        None
    } else {
        parse_tokens(&ctx, rhs_tokens).map_err(|d| diags.extend(d)).ok()
    };
    match (lhs, rhs) {
        (Some(lhs), Some(rhs)) if diags.is_empty() => Ok(Equation { lhs, rhs, range: whole }),
        _ => Err(diags),
    }
}

/// Parse a bare expression, e.g. an edge weight or a right-hand side given on its own.
pub fn parse_expr(text: &str, file: FileId, offset: u32) -> Result<Expr, Diagnostics> {
    let (tokens, lex_diags) = tokenize(text, file, offset);
    if !lex_diags.is_empty() {
        return Err(lex_diags);
    }
    let ctx = Ctx { text, file, offset };
    if tokens.is_empty() {
        return Err(ctx
            .error(
                "eq/empty-expression",
                TextRange::new(0, len_u32(text)),
                "empty expression",
            )
            .into());
    }
    parse_tokens(&ctx, &tokens)
}

/// Where diagnostics go and how to quote the source.
struct Ctx<'a> {
    text: &'a str,
    file: FileId,
    offset: u32,
}

impl Ctx<'_> {
    fn span(&self, range: TextRange) -> Span {
        Span {
            file: self.file,
            range: range.offset(self.offset),
        }
    }
    fn error(&self, code: &'static str, range: TextRange, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(code, message).with_span(self.span(range))
    }
    fn slice(&self, range: TextRange) -> &str {
        self.text.get(range.start as usize..range.end as usize).unwrap_or("")
    }
    /// A token as it reads in a message: ``the name `x` ``, `` `*` ``.
    fn describe(&self, tok: Token) -> String {
        match tok.kind {
            TokenKind::Ident => format!("name `{}`", self.slice(tok.range)),
            TokenKind::Number(_) | TokenKind::Imaginary(_) => format!("number `{}`", self.slice(tok.range)),
            k => k.describe().to_string(),
        }
    }
}

fn len_u32(text: &str) -> u32 {
    u32::try_from(text.len()).unwrap_or(u32::MAX)
}

fn parse_lhs(ctx: &Ctx<'_>, toks: &[Token], eq_tok: Token) -> PResult<Lhs> {
    use TokenKind::{Caret, Ident, LParen, Prime, RParen, Slash, Star, StarStar};
    let (Some(first), Some(last)) = (toks.first(), toks.last()) else {
        return Err(Box::new(
            ctx.error("eq/invalid-lhs", eq_tok.range, "missing the variable before `=`")
                .with_help(HELP_LHS_FORMS),
        ));
    };
    let whole = first.range.cover(last.range);
    let text = |t: &Token| ctx.slice(t.range);
    let kinds: Vec<TokenKind> = toks.iter().map(|t| t.kind).collect();
    let is_d = |t: &Token| t.kind == Ident && text(t) == "d";
    let is_dt = |t: &Token| t.kind == Ident && text(t) == "dt";
    let var = |kind: LhsKind, t: &Token| Lhs {
        kind,
        name: text(t).to_string(),
        range: t.range,
    };
    let higher_order = || {
        ctx.error(
            "eq/higher-order-derivative",
            whole,
            "left-hand side is a derivative of order higher than one",
        )
        .with_help(HELP_FIRST_ORDER)
    };

    match kinds.as_slice() {
        [Ident] => return Ok(var(LhsKind::Assign, first)),
        [Ident, Prime] => return Ok(var(LhsKind::Derivative, first)),
        [Ident, Prime, Prime, ..] => return Err(Box::new(higher_order())),
        _ => {}
    }
    // `d/dt * x`, `d/dt x`, and the same with the variable in parentheses.
    if toks.len() >= 3 && is_d(&toks[0]) && toks[1].kind == Slash && is_dt(&toks[2]) {
        let rest = match &toks[3..] {
            [t, rest @ ..] if t.kind == Star => rest,
            rest => rest,
        };
        let inner = match rest {
            [open, inner @ .., close] if open.kind == LParen && close.kind == RParen => inner,
            other => other,
        };
        return match inner {
            [v] if v.kind == Ident => Ok(var(LhsKind::Derivative, v)),
            [] => Err(Box::new(ctx
                .error("eq/invalid-lhs", whole, "`d/dt` without a variable")
                .with_help("name the variable: `d/dt * x = ...`"))),
            [d, s, ..] if is_d(d) && s.kind == Slash => Err(Box::new(higher_order())),
            _ => Err(Box::new(ctx.error("eq/invalid-lhs", whole, "the derivative of an expression is not allowed").with_help(
                "differentiate a single variable: `d/dt * x = ...`; introduce an algebraic variable for an expression",
            ))),
        };
    }
    // `d^2/dt^2 * x`, `d**2 x/dt**2`
    if is_d(first) && matches!(toks.get(1).map(|t| t.kind), Some(StarStar | Caret)) {
        return Err(Box::new(higher_order()));
    }
    // `dx/dt`: the variable is the identifier after its leading `d`.
    if let [dx, slash, dt] = toks {
        if dx.kind == Ident && slash.kind == Slash {
            let name = text(dx);
            if let Some(rest) = name.strip_prefix('d') {
                let dt_text = text(dt);
                if dt.kind == Ident
                    && dt_text == "dt"
                    && rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                {
                    let range = TextRange::new(dx.range.start + 1, dx.range.end);
                    return Ok(Lhs {
                        kind: LhsKind::Derivative,
                        name: rest.to_string(),
                        range,
                    });
                }
                // `d2x/dt2`
                if rest.starts_with(|c: char| c.is_ascii_digit()) && dt_text.starts_with("dt") {
                    return Err(Box::new(higher_order()));
                }
            }
        }
    }
    if let [Ident, Prime, ..] = kinds.as_slice() {
        return Err(Box::new(
            ctx.error(
                "eq/invalid-lhs",
                whole,
                "unexpected tokens after the derivative on the left-hand side",
            )
            .with_help(HELP_LHS_FORMS),
        ));
    }
    Err(Box::new(
        ctx.error(
            "eq/invalid-lhs",
            whole,
            format!("cannot assign to `{}`", ctx.slice(whole)),
        )
        .with_help(HELP_LHS_FORMS),
    ))
}

/// Parse a non-empty token slice as one complete expression.
fn parse_tokens(ctx: &Ctx<'_>, tokens: &[Token]) -> Result<Expr, Diagnostics> {
    check_parens(ctx, tokens)?;
    let mut p = Parser {
        ctx,
        tokens,
        pos: 0,
        depth: 0,
        height: 0,
    };
    let (expr, _) = p.expr(0).map_err(|d| Diagnostics::from(*d))?;
    if let Some(tok) = p.peek() {
        let last = tokens.last().expect("peek found a token, so the slice is non-empty");
        let mut d = ctx.error(
            "eq/trailing-input",
            tok.range.cover(last.range),
            format!("unexpected {} after a complete expression", ctx.describe(tok)),
        );
        if let Some(help) = juxtaposition_help(tok.kind) {
            d = d.with_help(help);
        }
        return Err(d.into());
    }
    Ok(expr)
}

/// Report every `)` without a `(` and every `(` left open, before parsing, so the parser can
/// assume balance and the messages point at the culprit rather than where parsing gave up.
fn check_parens(ctx: &Ctx<'_>, tokens: &[Token]) -> Result<(), Diagnostics> {
    let mut open: Vec<TextRange> = Vec::new();
    let mut diags = Diagnostics::new();
    for t in tokens {
        match t.kind {
            TokenKind::LParen => open.push(t.range),
            // The guard pops the matching `(` when there is one.
            TokenKind::RParen if open.pop().is_none() => {
                diags.push(
                    ctx.error("eq/unbalanced-paren", t.range, "unmatched `)`")
                        .with_help("remove it or add the `(` it closes"),
                );
            }
            _ => {}
        }
    }
    let end = tokens
        .last()
        .map_or(TextRange::default(), |t| TextRange::new(t.range.end, t.range.end));
    for r in open {
        diags.push(
            ctx.error("eq/unbalanced-paren", r, "unclosed `(`")
                .with_label(ctx.span(end), "expected `)` by here")
                .with_help("add the matching `)`"),
        );
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(diags)
    }
}

fn juxtaposition_help(kind: TokenKind) -> Option<&'static str> {
    match kind {
        TokenKind::Ident | TokenKind::Number(_) | TokenKind::Imaginary(_) | TokenKind::LParen => {
            Some(HELP_IMPLICIT_MUL)
        }
        TokenKind::Prime => Some("`'` marks a derivative and belongs only on the left-hand side: `x' = ...`"),
        TokenKind::Assign => Some("an expression cannot contain `=`; compare values with `==`"),
        _ => None,
    }
}

/// Infix operators: (operator, left binding power, right binding power).
fn infix(kind: TokenKind) -> Option<(BinOp, u8, u8)> {
    Some(match kind {
        TokenKind::Lt => (BinOp::Lt, 1, 2),
        TokenKind::Le => (BinOp::Le, 1, 2),
        TokenKind::Gt => (BinOp::Gt, 1, 2),
        TokenKind::Ge => (BinOp::Ge, 1, 2),
        TokenKind::EqEq => (BinOp::Eq, 1, 2),
        TokenKind::Ne => (BinOp::Ne, 1, 2),
        TokenKind::Plus => (BinOp::Add, 3, 4),
        TokenKind::Minus => (BinOp::Sub, 3, 4),
        TokenKind::Star => (BinOp::Mul, 5, 6),
        TokenKind::Slash => (BinOp::Div, 5, 6),
        // Right-associative: the right side is parsed at a lower power than the left binds.
        TokenKind::StarStar | TokenKind::Caret => (BinOp::Pow, 9, 8),
        _ => return None,
    })
}

/// Parse errors are boxed: a `Diagnostic` is large and travels up every recursion level.
type PResult<T> = Result<T, Box<Diagnostic>>;

/// A unary operator's operand takes power (9) but stops before `*` (5).
const UNARY_BP: u8 = 7;

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne
    )
}

struct Parser<'a, 'c> {
    ctx: &'a Ctx<'c>,
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
    /// Height of the tree of the expression parsed last (a leaf is 1).
    height: usize,
}

/// An expression and its extent including any parentheses around it, which the node's own
/// range leaves out (so `(r_inn)` underlines `r_inn`) but an enclosing node covers.
type Parsed = (Expr, TextRange);

impl Parser<'_, '_> {
    fn peek(&self) -> Option<Token> {
        self.tokens.get(self.pos).copied()
    }
    fn bump(&mut self) -> Option<Token> {
        let t = self.peek();
        self.pos += usize::from(t.is_some());
        t
    }

    fn expr(&mut self, min_bp: u8) -> PResult<Parsed> {
        self.depth += 1;
        let result = self.expr_inner(min_bp);
        self.depth -= 1;
        result
    }

    fn expr_inner(&mut self, min_bp: u8) -> PResult<Parsed> {
        if self.depth > MAX_NESTING {
            let r = self.peek().map_or_else(
                || self.tokens.last().map_or(TextRange::default(), |t| t.range),
                |t| t.range,
            );
            return Err(Box::new(self.ctx.error(
                "eq/too-deeply-nested",
                r,
                format!("expression nests deeper than {MAX_NESTING} levels"),
            )));
        }
        let (mut lhs, mut outer) = self.prefix()?;
        let mut height = self.height;
        // Set once this loop builds a comparison: `a < b < c` is ambiguous (Python chains it,
        // C nests it), so it is rejected; `(a < b) < c` is not.
        let mut prev_cmp: Option<TextRange> = None;
        while let Some(tok) = self.peek() {
            let Some((op, l_bp, r_bp)) = infix(tok.kind) else {
                break;
            };
            if l_bp < min_bp {
                break;
            }
            if is_comparison(op) {
                if let Some(first) = prev_cmp {
                    return Err(Box::new(
                        self.ctx
                            .error("eq/chained-comparison", tok.range, "comparisons cannot be chained")
                            .with_label(self.ctx.span(first), "first comparison here")
                            .with_help("parenthesize the comparison meant first, e.g. `(a < b) < c`"),
                    ));
                }
                prev_cmp = Some(tok.range);
            }
            self.bump();
            let (rhs, rhs_outer) = self.operand_after(tok, r_bp)?;
            height = height.max(self.height) + 1;
            if height > MAX_TREE_HEIGHT {
                return Err(Box::new(
                    self.ctx
                        .error(
                            "eq/too-deep",
                            tok.range,
                            format!("expression is more than {MAX_TREE_HEIGHT} operations deep here"),
                        )
                        .with_help(
                            "a chain like `a + b + c + …` is as deep as it has terms; split it into several \
                             variables, e.g. `s1 = a + b + …`, `s2 = …`, `x = s1 + s2`",
                        ),
                ));
            }
            let range = outer.cover(rhs_outer);
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                range,
            };
            outer = range;
        }
        self.height = height;
        Ok((lhs, outer))
    }

    /// Parse the operand that must follow operator token `op`.
    fn operand_after(&mut self, op: Token, bp: u8) -> PResult<Parsed> {
        if self.peek().is_none() {
            let what = self.ctx.describe(op);
            return Err(Box::new(self.ctx.error(
                "eq/syntax",
                op.range,
                format!("expected an expression after {what}"),
            )));
        }
        self.expr(bp)
    }

    fn prefix(&mut self) -> PResult<Parsed> {
        let Some(tok) = self.bump() else {
            // Every caller checks for a next token first; reaching here means an empty slice.
            let r = self.tokens.last().map_or(TextRange::default(), |t| t.range);
            return Err(Box::new(self.ctx.error(
                "eq/empty-expression",
                r,
                "expected an expression",
            )));
        };
        match tok.kind {
            TokenKind::Number(v) => {
                self.height = 1;
                Ok(leaf(ExprKind::Number(v), tok.range))
            }
            TokenKind::Imaginary(v) => {
                self.height = 1;
                Ok(leaf(ExprKind::Imaginary(v), tok.range))
            }
            TokenKind::Ident => {
                let name = self.ctx.slice(tok.range).to_string();
                if self.peek().is_some_and(|t| t.kind == TokenKind::LParen) {
                    self.call(name, tok.range)
                } else {
                    self.height = 1;
                    Ok(leaf(ExprKind::Ident(name), tok.range))
                }
            }
            TokenKind::Minus | TokenKind::Plus => {
                let op = if tok.kind == TokenKind::Minus {
                    UnOp::Neg
                } else {
                    UnOp::Plus
                };
                let (operand, operand_outer) = self.operand_after(tok, UNARY_BP)?;
                self.height += 1;
                let range = tok.range.cover(operand_outer);
                Ok((
                    Expr {
                        kind: ExprKind::Unary(op, Box::new(operand)),
                        range,
                    },
                    range,
                ))
            }
            TokenKind::LParen => {
                if let Some(close) = self.peek().filter(|t| t.kind == TokenKind::RParen) {
                    return Err(Box::new(
                        self.ctx
                            .error("eq/empty-expression", tok.range.cover(close.range), "empty parentheses")
                            .with_help("put an expression inside the parentheses or remove them"),
                    ));
                }
                let (inner, _) = self.expr(0)?;
                let close = self.expect_close("`)`")?;
                Ok((inner, tok.range.cover(close.range)))
            }
            _ => {
                let prev = self.pos.checked_sub(2).and_then(|i| self.tokens.get(i)).copied();
                let found = self.ctx.describe(tok);
                let message = match prev {
                    Some(p) if infix(p.kind).is_some() || p.kind == TokenKind::Comma || p.kind == TokenKind::LParen => {
                        format!("expected an expression after {}, found {found}", self.ctx.describe(p))
                    }
                    _ => format!("expected an expression, found {found}"),
                };
                let mut d = self.ctx.error("eq/syntax", tok.range, message);
                if let Some(help) = match tok.kind {
                    TokenKind::Prime => {
                        Some("`'` marks a derivative and belongs only on the left-hand side: `x' = ...`")
                    }
                    TokenKind::Assign => Some("an expression cannot contain `=`; compare values with `==`"),
                    _ => None,
                } {
                    d = d.with_help(help);
                }
                Err(Box::new(d))
            }
        }
    }

    fn call(&mut self, name: String, name_range: TextRange) -> PResult<Parsed> {
        self.bump(); // `(`
        let mut args = Vec::new();
        let mut height = 0;
        let close = if let Some(close) = self.peek().filter(|t| t.kind == TokenKind::RParen) {
            self.bump();
            close
        } else {
            loop {
                let (arg, _) = self.expr(0)?;
                height = height.max(self.height);
                args.push(arg);
                match self.peek() {
                    Some(t) if t.kind == TokenKind::Comma => {
                        self.bump();
                        if let Some(close) = self.peek().filter(|t| t.kind == TokenKind::RParen) {
                            return Err(Box::new(
                                self.ctx
                                    .error(
                                        "eq/syntax",
                                        close.range,
                                        format!("expected an argument after `,` in `{name}(...)`"),
                                    )
                                    .with_help("remove the trailing `,`"),
                            ));
                        }
                    }
                    _ => break self.expect_close("`,` or `)`")?,
                }
            }
        };
        let range = name_range.cover(close.range);
        self.height = height + 1;
        Ok((
            Expr {
                kind: ExprKind::Call { name, name_range, args },
                range,
            },
            range,
        ))
    }

    /// Consume the `)` that must come next; parentheses are balanced (checked before parsing),
    /// so anything else is a token the expression could not continue with.
    fn expect_close(&mut self, expected: &str) -> PResult<Token> {
        match self.bump() {
            Some(t) if t.kind == TokenKind::RParen => Ok(t),
            Some(t) => {
                let mut d = self.ctx.error(
                    "eq/syntax",
                    t.range,
                    format!("expected an operator or {expected}, found {}", self.ctx.describe(t)),
                );
                if let Some(help) = juxtaposition_help(t.kind) {
                    d = d.with_help(help);
                }
                Err(Box::new(d))
            }
            None => {
                let r = self.tokens.last().map_or(TextRange::default(), |t| t.range);
                Err(Box::new(self.ctx.error(
                    "eq/unbalanced-paren",
                    r,
                    format!("expected {expected}"),
                )))
            }
        }
    }
}

fn leaf(kind: ExprKind, range: TextRange) -> Parsed {
    (Expr { kind, range }, range)
}

#[cfg(test)]
mod tests;

/// A long-running, deterministic fuzzer for the parser, run on demand:
/// `FUZZ_SECONDS=600 cargo test -p rustrates --lib fuzz_equation -- --ignored --nocapture`.
///
/// Inputs come from three sources: a grammar that writes (mostly) valid equations with random
/// spacing, number spellings and left-hand-side forms; a soup of the token alphabet with
/// foreign characters; and byte-level mutations of grammar output. Each input goes through
/// both entry points under `catch_unwind`; a successful parse must print and re-parse to the
/// same tree, every AST range and diagnostic span must lie inside the input on character
/// boundaries, and rendering the diagnostics must not panic. Any failure counts as a crash.
#[cfg(test)]
mod fuzz;
