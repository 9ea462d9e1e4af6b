//! Stand-in for `syntax::parser::parse_equation` until the equation parser lands on main:
//! same signature, same AST (ranges relative to the equation string), diagnostics with spans
//! in `file` shifted by `offset`.

use crate::syntax::ast::{BinOp, Equation, Expr, ExprKind, Lhs, LhsKind, UnOp};
use crate::syntax::{Diagnostic, Diagnostics, FileId, Span, TextRange};

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Op(&'static str),
}

struct P<'a> {
    toks: Vec<(Tok, TextRange)>,
    pos: usize,
    file: FileId,
    offset: u32,
    len: u32,
    _text: &'a str,
}

const OPS: &[&str] = &["**", "<=", ">=", "==", "!=", "+", "-", "*", "/", "^", "(", ")", ",", "<", ">", "'", "="];

fn err(file: FileId, offset: u32, r: TextRange, msg: String) -> Diagnostics {
    Diagnostic::error("eq/syntax", msg).with_span(Span { file, range: r.offset(offset) }).into()
}

fn lex(text: &str, file: FileId, offset: u32) -> Result<Vec<(Tok, TextRange)>, Diagnostics> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let s = i;
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let r = TextRange::new(s as u32, i as u32);
            match text[s..i].parse::<f64>() {
                Ok(v) => out.push((Tok::Num(v), r)),
                Err(_) => return Err(err(file, offset, r, format!("bad number `{}`", &text[s..i]))),
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Ident(text[s..i].to_string()), TextRange::new(s as u32, i as u32)));
            continue;
        }
        match OPS.iter().find(|o| text[i..].starts_with(**o)) {
            Some(o) => {
                i += o.len();
                out.push((Tok::Op(o), TextRange::new(s as u32, i as u32)));
            }
            None => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(err(file, offset, TextRange::new(s as u32, (s + ch.len_utf8()) as u32), format!("unexpected character `{ch}`")));
            }
        }
    }
    Ok(out)
}

pub fn parse_equation(text: &str, file: FileId, offset: u32) -> Result<Equation, Diagnostics> {
    let toks = lex(text, file, offset)?;
    let Some(eqpos) = toks.iter().position(|(t, _)| *t == Tok::Op("=")) else {
        return Err(err(file, offset, TextRange::new(0, text.len() as u32), "an equation needs `=`".into()));
    };
    let lhs_t = &toks[..eqpos];
    let name_of = |t: &(Tok, TextRange)| match &t.0 {
        Tok::Ident(s) => Some((s.clone(), t.1)),
        _ => None,
    };
    let lhs = match lhs_t {
        [a] => name_of(a).map(|(n, r)| Lhs { kind: LhsKind::Assign, name: n, range: r }),
        [a, (Tok::Op("'"), _)] => name_of(a).map(|(n, r)| Lhs { kind: LhsKind::Derivative, name: n, range: r }),
        [(Tok::Ident(d), _), (Tok::Op("/"), _), (Tok::Ident(dt), _), (Tok::Op("*"), _), x] if d == "d" && dt == "dt" => {
            name_of(x).map(|(n, r)| Lhs { kind: LhsKind::Derivative, name: n, range: r })
        }
        [(Tok::Ident(dx), r), (Tok::Op("/"), _), (Tok::Ident(dt), _)] if dx.len() > 1 && dx.starts_with('d') && dt == "dt" => {
            Some(Lhs { kind: LhsKind::Derivative, name: dx[1..].to_string(), range: TextRange::new(r.start + 1, r.end) })
        }
        _ => None,
    };
    let lhs_range = lhs_t.first().map_or(TextRange::new(0, 0), |f| f.1.cover(lhs_t.last().map_or(f.1, |l| l.1)));
    let Some(lhs) = lhs else {
        return Err(err(file, offset, lhs_range, "the left-hand side must be `x`, `x'`, `dx/dt` or `d/dt * x`".into()));
    };
    let mut p = P { toks: toks[eqpos + 1..].to_vec(), pos: 0, file, offset, len: text.len() as u32, _text: text };
    let rhs = p.expr(0)?;
    if let Some((_, r)) = p.toks.get(p.pos) {
        return Err(err(file, offset, *r, "unexpected token after the expression".into()));
    }
    Ok(Equation { range: lhs_range.cover(rhs.range), lhs, rhs })
}

impl P<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }
    fn here(&self) -> TextRange {
        self.toks.get(self.pos).map_or(TextRange::new(self.len, self.len), |t| t.1)
    }
    fn fail<T>(&self, msg: &str) -> Result<T, Diagnostics> {
        Err(err(self.file, self.offset, self.here(), msg.into()))
    }
    fn binop(t: &Tok) -> Option<(BinOp, u8, bool)> {
        let Tok::Op(o) = t else { return None };
        Some(match *o {
            "<" => (BinOp::Lt, 1, false),
            "<=" => (BinOp::Le, 1, false),
            ">" => (BinOp::Gt, 1, false),
            ">=" => (BinOp::Ge, 1, false),
            "==" => (BinOp::Eq, 1, false),
            "!=" => (BinOp::Ne, 1, false),
            "+" => (BinOp::Add, 2, false),
            "-" => (BinOp::Sub, 2, false),
            "*" => (BinOp::Mul, 3, false),
            "/" => (BinOp::Div, 3, false),
            "**" | "^" => (BinOp::Pow, 5, true),
            _ => return None,
        })
    }
    fn expr(&mut self, min: u8) -> Result<Expr, Diagnostics> {
        let mut lhs = self.prefix()?;
        while let Some((op, prec, right)) = self.peek().and_then(Self::binop) {
            if prec < min {
                break;
            }
            self.pos += 1;
            let rhs = self.expr(if right { prec } else { prec + 1 })?;
            let range = lhs.range.cover(rhs.range);
            lhs = Expr { kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), range };
        }
        Ok(lhs)
    }
    fn prefix(&mut self) -> Result<Expr, Diagnostics> {
        let start = self.here();
        match self.peek().cloned() {
            Some(Tok::Op("-")) | Some(Tok::Op("+")) => {
                let neg = self.peek() == Some(&Tok::Op("-"));
                self.pos += 1;
                let inner = self.expr(4)?;
                let range = start.cover(inner.range);
                Ok(Expr { kind: ExprKind::Unary(if neg { UnOp::Neg } else { UnOp::Plus }, Box::new(inner)), range })
            }
            Some(Tok::Num(v)) => {
                self.pos += 1;
                Ok(Expr { kind: ExprKind::Number(v), range: start })
            }
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                if self.peek() == Some(&Tok::Op("(")) {
                    self.pos += 1;
                    let mut args = Vec::new();
                    if self.peek() != Some(&Tok::Op(")")) {
                        loop {
                            args.push(self.expr(0)?);
                            if self.peek() == Some(&Tok::Op(",")) {
                                self.pos += 1;
                                continue;
                            }
                            break;
                        }
                    }
                    if self.peek() != Some(&Tok::Op(")")) {
                        return self.fail("expected `)`");
                    }
                    let end = self.here();
                    self.pos += 1;
                    return Ok(Expr { kind: ExprKind::Call { name, name_range: start, args }, range: start.cover(end) });
                }
                Ok(Expr { kind: ExprKind::Ident(name), range: start })
            }
            Some(Tok::Op("(")) => {
                self.pos += 1;
                let inner = self.expr(0)?;
                if self.peek() != Some(&Tok::Op(")")) {
                    return self.fail("expected `)`");
                }
                let end = self.here();
                self.pos += 1;
                Ok(Expr { kind: inner.kind, range: start.cover(end) })
            }
            _ => self.fail("expected an expression"),
        }
    }
}
