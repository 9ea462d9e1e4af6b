use super::*;
use crate::syntax::printer::{print_equation, print_expr, same_tree};
use crate::syntax::render::{render_all_concise, render_all_full};
use crate::syntax::source::SourceMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// xorshift64*: tiny, deterministic, good enough to pick grammar branches.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        // n is small, so the modulo bias is irrelevant for fuzzing.
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const NAMES: &[&str] = &[
    "x", "r", "v", "d", "dt", "t", "r_e", "I_ext", "tau_2", "E", "pi", "e", "x1", "_a",
];
const FUNCS: &[&str] = &["sin", "exp", "sigmoid", "past", "x", "max", "f"];
const NUMBERS: &[&str] = &[
    "0", "2", "2.", ".5", "1e-3", "1.5E+2", "007", "3.25", "1e308", "4.9e-324", "0.1",
];
const BINOPS: &[&str] = &["+", "-", "*", "/", "**", "^", "<", "<=", ">", ">=", "==", "!="];
const SPACES: &[&str] = &["", "", " ", "  ", "\t", "\n"];
const SOUP: &[&str] = &[
    "x", "d", "dt", "d/dt", "'", "=", "==", "(", ")", ",", "+", "-", "*", "**", "/", "^", "<", ">=", "!", "!=", "2",
    ".", "e", "1e", "E+", " ", "\n", "é", "τ", "$", "[", "\0", "\u{feff}", "😀",
];

fn gen_expr(rng: &mut Rng, depth: usize, out: &mut String) {
    let sp = |rng: &mut Rng, out: &mut String| out.push_str(rng.pick(SPACES));
    let leaf = depth == 0 || rng.chance(30);
    if leaf {
        if rng.chance(50) {
            out.push_str(rng.pick(NUMBERS));
        } else {
            out.push_str(rng.pick(NAMES));
        }
        return;
    }
    match rng.below(4) {
        0 => {
            out.push_str(if rng.chance(80) { "-" } else { "+" });
            sp(rng, out);
            gen_expr(rng, depth - 1, out);
        }
        1 => {
            out.push('(');
            sp(rng, out);
            gen_expr(rng, depth - 1, out);
            sp(rng, out);
            out.push(')');
        }
        2 => {
            out.push_str(rng.pick(FUNCS));
            out.push('(');
            let n = rng.below(4);
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                    sp(rng, out);
                }
                gen_expr(rng, depth - 1, out);
            }
            out.push(')');
        }
        _ => {
            gen_expr(rng, depth - 1, out);
            sp(rng, out);
            out.push_str(rng.pick(BINOPS));
            sp(rng, out);
            gen_expr(rng, depth - 1, out);
        }
    }
}

fn gen_equation(rng: &mut Rng) -> String {
    let name = rng.pick(NAMES);
    let mut out = match rng.below(6) {
        0 => format!("d/dt * {name}"),
        1 => format!("d/dt {name}"),
        2 => format!("{name}'"),
        3 => format!("d{name}/dt"),
        4 => format!("d/dt*({name})"),
        _ => name.to_string(),
    };
    out.push_str(rng.pick(SPACES));
    out.push('=');
    out.push_str(rng.pick(SPACES));
    let depth = 1 + rng.below(7);
    gen_expr(rng, depth, &mut out);
    out
}

fn gen_soup(rng: &mut Rng) -> String {
    (0..rng.below(30)).map(|_| rng.pick(SOUP)).collect()
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len();
        match rng.below(5) {
            0 if len > 0 => {
                bytes.remove(rng.below(len));
            }
            1 => {
                let b = rng.pick(SOUP).as_bytes().to_vec();
                let at = rng.below(len + 1);
                bytes.splice(at..at, b);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                bytes[i] = (rng.next() & 0xff) as u8;
            }
            3 if len > 1 => {
                let a = rng.below(len);
                let b = a + rng.below(len - a);
                let chunk = bytes[a..=b.min(len - 1)].to_vec();
                let at = rng.below(len + 1);
                bytes.splice(at..at, chunk);
            }
            _ if len > 1 => {
                let (i, j) = (rng.below(len), rng.below(len));
                bytes.swap(i, j);
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn in_bounds(text: &str, start: u32, end: u32) -> bool {
    let (s, e) = (start as usize, end as usize);
    s <= e && e <= text.len() && text.is_char_boundary(s) && text.is_char_boundary(e)
}

fn expr_ranges_ok(text: &str, e: &Expr) -> bool {
    let own = in_bounds(text, e.range.start, e.range.end);
    own && match &e.kind {
        ExprKind::Number(_) | ExprKind::Imaginary(_) | ExprKind::Ident(_) => true,
        ExprKind::Unary(_, x) => expr_ranges_ok(text, x),
        ExprKind::Binary(_, a, b) => expr_ranges_ok(text, a) && expr_ranges_ok(text, b),
        ExprKind::Call { name_range, args, .. } => {
            in_bounds(text, name_range.start, name_range.end) && args.iter().all(|a| expr_ranges_ok(text, a))
        }
    }
}

/// Every check on one input; `Err` describes the first violated property.
fn check(text: &str) -> Result<(), String> {
    // Embed the string in a YAML-like file at an offset, after a multibyte character, so
    // spans are shifted and rendering meets realistic surroundings.
    let prefix = "op:\n  equations: [\"é ";
    let file_text = format!("{prefix}{text}\"]\n");
    let mut sources = SourceMap::new();
    let file = sources.add("fuzz.yaml", file_text.clone());
    let offset = u32::try_from(prefix.len()).map_err(|e| e.to_string())?;
    let span_ok = |s: &Span| {
        s.file == file && s.range.start >= offset && in_bounds(text, s.range.start - offset, s.range.end - offset)
    };
    let check_diags = |ds: &Diagnostics| -> Result<(), String> {
        if ds.is_empty() {
            return Err("an error without diagnostics".into());
        }
        for d in ds.iter() {
            if !d.span.iter().chain(d.labels.iter().map(|l| &l.span)).all(span_ok) {
                return Err(format!("span outside the input: {d:?}"));
            }
        }
        let _ = render_all_concise(ds, &sources);
        let _ = render_all_full(ds, &sources);
        Ok(())
    };

    match parse_equation(text, file, offset) {
        Ok(eq) => {
            if !expr_ranges_ok(text, &eq.rhs) || !in_bounds(text, eq.lhs.range.start, eq.lhs.range.end) {
                return Err(format!("AST range outside the input: {eq:?}"));
            }
            let printed = print_equation(&eq);
            match parse_equation(&printed, file, 0) {
                Ok(b) if b.lhs.kind == eq.lhs.kind && b.lhs.name == eq.lhs.name && same_tree(&b.rhs, &eq.rhs) => {}
                other => return Err(format!("round trip: printed {printed:?}, reparsed {other:?}")),
            }
        }
        Err(ds) => check_diags(&ds)?,
    }
    match parse_expr(text, file, offset) {
        Ok(e) => {
            if !expr_ranges_ok(text, &e) {
                return Err(format!("AST range outside the input: {e:?}"));
            }
            let printed = print_expr(&e);
            match parse_expr(&printed, file, 0) {
                Ok(b) if same_tree(&b, &e) => {}
                other => return Err(format!("round trip: printed {printed:?}, reparsed {other:?}")),
            }
        }
        Err(ds) => check_diags(&ds)?,
    }
    Ok(())
}

#[test]
#[ignore = "long-running; set FUZZ_SECONDS and run with --ignored"]
fn fuzz_equation_parser_for_duration() {
    let seconds = crate::model::test_models::fuzz_seconds(5);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut executions, mut crashes, mut parsed_ok) = (0u64, 0u64, 0u64);
    let mut shown = 0;
    while Instant::now() < deadline {
        // Check the clock once per batch; it costs more than a parse.
        for _ in 0..256 {
            let text = match rng.below(10) {
                0..=3 => gen_equation(&mut rng),
                4..=5 => gen_soup(&mut rng),
                6 => {
                    let mut e = String::new();
                    gen_expr(&mut rng, 6, &mut e);
                    e
                }
                _ => {
                    let base = gen_equation(&mut rng);
                    mutate(&mut rng, &base)
                }
            };
            executions += 1;
            if parse_equation(&text, FileId(0), 0).is_ok() {
                parsed_ok += 1;
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| check(&text)));
            let failure = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(why)) => Some(why),
                Err(_) => Some("panic".to_string()),
            };
            if let Some(why) = failure {
                crashes += 1;
                if shown < 20 {
                    shown += 1;
                    println!("CRASH on {text:?}: {why}");
                }
            }
        }
    }
    println!(
        "fuzz_equation_parser: {executions} executions in {seconds} s, {parsed_ok} valid equations, {crashes} crashes"
    );
    assert_eq!(
        crashes, 0,
        "the parser failed on {crashes} inputs (first ones printed above)"
    );
}
