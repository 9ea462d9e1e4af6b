//! Diagnostics → text, in two forms.
//!
//! *Concise*, one line, stable for scripts and editors:
//! `models/qif.yaml:12:9: eq/undefined-symbol: unknown symbol 'r_inn' (in qif_op.equations[1])`.
//!
//! *Full*, for people: a header, the location, a code frame with `^^^` under the primary span
//! and `---` under each secondary label, then `= help:` and `= in:` lines.
//!
//! Line and column are computed here, from byte spans, and columns count characters (a tab
//! counts as four), so a multibyte character earlier on the line does not shift the carets.
//! A span that points outside its file, or into a file the map does not hold, is rendered
//! without a location rather than panicking.

use std::fmt::Write;

use super::diag::{Diagnostic, Diagnostics};
use super::source::{SourceFile, SourceMap, Span};

const TAB: &str = "    ";

/// Widest source line shown in a code frame, in columns: a longer line (minified YAML, a
/// 10 MB line of generated values) is cut to a window around its marks, elided ends shown
/// as `…`.
pub const MAX_FRAME_COLS: usize = 120;
/// Columns kept before the first mark of a cut line.
const WINDOW_LEAD: usize = 40;

/// `file:line:col: code: message`, plus ` (in PATH)` when the diagnostic has a template path;
/// `code: message` when it has no location. No trailing newline.
pub fn render_concise(d: &Diagnostic, sources: &SourceMap) -> String {
    let mut out = match d.span.and_then(|s| locate(s, sources)) {
        Some(loc) => format!("{}:{}:{}: {}: {}", loc.file.name, loc.line, loc.col, d.code, d.message),
        None => format!("{}: {}", d.code, d.message),
    };
    if !d.path.is_empty() {
        let _ = write!(out, " (in {})", d.path);
    }
    out
}

/// Where a span points as the renderers count it: file name, one-based line and display
/// column (tabs as four). None for a span outside its file or into a file the map does not
/// hold. For fronts that report the location as data (Python's `diagnostics`).
pub fn location(span: Span, sources: &SourceMap) -> Option<(String, usize, usize)> {
    locate(span, sources).map(|loc| (loc.file.name.clone(), loc.line, loc.col))
}

/// Every diagnostic in concise form, one per line, each ending in a newline.
pub fn render_all_concise(ds: &Diagnostics, sources: &SourceMap) -> String {
    ds.iter().fold(String::new(), |mut out, d| {
        out.push_str(&render_concise(d, sources));
        out.push('\n');
        out
    })
}

/// The full form with a code frame. Lines are separated by newlines; there is no trailing one.
pub fn render_full(d: &Diagnostic, sources: &SourceMap) -> String {
    let mut out = format!("{}[{}]: {}", d.severity.name(), d.code, d.message);

    let primary = d.span.and_then(|s| locate(s, sources));
    let mut marks: Vec<Mark<'_>> = Vec::new();
    if let Some(loc) = &primary {
        marks.push(Mark {
            loc: *loc,
            primary: true,
            message: "",
        });
    }
    for label in &d.labels {
        if let Some(loc) = locate(label.span, sources) {
            marks.push(Mark {
                loc,
                primary: false,
                message: &label.message,
            });
        }
    }
    let width = marks.iter().map(|m| digits(m.loc.line)).max().unwrap_or(0);
    let pad = " ".repeat(width);

    // One frame per file, the primary's file first, others in order of first appearance.
    let mut files: Vec<u32> = Vec::new();
    for m in &marks {
        if !files.contains(&m.loc.file_id) {
            files.push(m.loc.file_id);
        }
    }
    for (i, &file_id) in files.iter().enumerate() {
        let mut in_file: Vec<&Mark<'_>> = marks.iter().filter(|m| m.loc.file_id == file_id).collect();
        let head = in_file[0].loc;
        let arrow = if i == 0 && primary.is_some() { "-->" } else { ":::" };
        let _ = write!(out, "\n{pad}{arrow} {}:{}:{}", head.file.name, head.line, head.col);
        let _ = write!(out, "\n{pad} |");
        in_file.sort_by_key(|m| (m.loc.line, !m.primary, m.loc.col));
        let mut prev_line: Option<usize> = None;
        let mut window = Window::whole();
        for m in &in_file {
            if prev_line != Some(m.loc.line) {
                if prev_line.is_some_and(|p| m.loc.line > p + 1) {
                    let _ = write!(out, "\n{pad}...");
                }
                let text = expand_tabs(line_text(m.loc.file, m.loc.line));
                let on_line: Vec<(usize, usize)> = in_file
                    .iter()
                    .filter(|x| x.loc.line == m.loc.line)
                    .map(|x| (x.loc.col, x.loc.width))
                    .collect();
                window = Window::around(&text, &on_line);
                let shown = window.cut(&text);
                if shown.is_empty() {
                    let _ = write!(out, "\n{:>width$} |", m.loc.line);
                } else {
                    let _ = write!(out, "\n{:>width$} | {shown}", m.loc.line);
                }
                prev_line = Some(m.loc.line);
            }
            let marker = if m.primary { "^" } else { "-" };
            let (col, mark_width) = window.mark(m.loc.col, m.loc.width);
            let _ = write!(out, "\n{pad} | {}{}", " ".repeat(col - 1), marker.repeat(mark_width));
            if !m.message.is_empty() {
                let _ = write!(out, " {}", m.message);
            }
        }
    }

    if d.help.is_some() || !d.path.is_empty() {
        if !marks.is_empty() {
            let _ = write!(out, "\n{pad} |");
        }
        if let Some(help) = &d.help {
            let _ = write!(out, "\n{pad} = help: {}", indent_continuation(help, width + 9));
        }
        if !d.path.is_empty() {
            let _ = write!(out, "\n{pad} = in: {}", d.path);
        }
    }
    out
}

/// Every diagnostic in full form, separated by blank lines, ending in a newline.
pub fn render_all_full(ds: &Diagnostics, sources: &SourceMap) -> String {
    ds.iter().fold(String::new(), |mut out, d| {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&render_full(d, sources));
        out.push('\n');
        out
    })
}

/// The columns of a source line shown in a frame: all of a short line, a window around the
/// marks of a long one.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Window {
    /// First shown column, zero-based; `None`: the whole line.
    start: Option<usize>,
    len: usize,
}

impl Window {
    fn whole() -> Window {
        Window { start: None, len: 0 }
    }

    /// `marks`: (one-based column, width) on the line.
    fn around(text: &str, marks: &[(usize, usize)]) -> Window {
        let cols = text.chars().count();
        if cols <= MAX_FRAME_COLS {
            return Window::whole();
        }
        let first = marks.iter().map(|&(c, _)| c - 1).min().unwrap_or(0);
        let start = first
            .saturating_sub(WINDOW_LEAD)
            .min(cols.saturating_sub(MAX_FRAME_COLS));
        Window {
            start: Some(start),
            len: MAX_FRAME_COLS,
        }
    }

    /// The shown text, `…` where the line goes on.
    fn cut(&self, text: &str) -> String {
        let Some(start) = self.start else {
            return text.to_string();
        };
        let cols = text.chars().count();
        let mut s = String::new();
        if start > 0 {
            s.push('…');
        }
        s.extend(text.chars().skip(start).take(self.len));
        if start + self.len < cols {
            s.push('…');
        }
        s
    }

    /// A mark's column and width within the shown text (clipped to it).
    fn mark(&self, col: usize, width: usize) -> (usize, usize) {
        let Some(start) = self.start else {
            return (col, width);
        };
        let lead = usize::from(start > 0);
        let first = (col - 1).clamp(start, start + self.len - 1);
        let end = (col - 1 + width).clamp(first + 1, start + self.len);
        (first - start + lead + 1, end - first)
    }
}

/// Where a span starts, in display terms, and how many columns of its first line it covers.
#[derive(Clone, Copy)]
struct Loc<'a> {
    file: &'a SourceFile,
    file_id: u32,
    /// One-based.
    line: usize,
    /// One-based display column (characters, tabs expanded).
    col: usize,
    /// Columns to mark, at least one (an empty span marks the position it points at).
    width: usize,
}

struct Mark<'a> {
    loc: Loc<'a>,
    primary: bool,
    message: &'a str,
}

fn locate(span: Span, sources: &SourceMap) -> Option<Loc<'_>> {
    let (_, file) = sources.files().nth(span.file.0 as usize)?;
    let text = file.text.as_str();
    let len = text.len();
    let start = span.range.start as usize;
    if start > len {
        return None;
    }
    let start = floor_char_boundary(text, start);
    let end = floor_char_boundary(text, (span.range.end as usize).clamp(start, len));
    let (line, _) = file.line_index.line_col(text, u32::try_from(start).ok()?);
    let (line_start, line_end) = file.line_index.line_range(text, line);
    let line_end = line_end.max(start);
    let col = display_width(&text[line_start..start]) + 1;
    // A span running past its first line is marked to the end of that line.
    let marked = &text[start..end.min(line_end)];
    let width = display_width(marked.trim_end_matches('\r')).max(1);
    Some(Loc {
        file,
        file_id: span.file.0,
        line,
        col,
        width,
    })
}

fn line_text(file: &SourceFile, line: usize) -> &str {
    let (start, end) = file.line_index.line_range(&file.text, line);
    file.text.get(start..end).unwrap_or("").trim_end_matches('\r')
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn display_width(s: &str) -> usize {
    s.chars().map(|c| if c == '\t' { TAB.len() } else { 1 }).sum()
}

fn expand_tabs(s: &str) -> String {
    s.replace('\t', TAB)
}

fn digits(n: usize) -> usize {
    n.to_string().len()
}

/// Indent the lines after the first so a multi-line help text stays under its first line.
fn indent_continuation(s: &str, by: usize) -> String {
    s.replace('\n', &format!("\n{}", " ".repeat(by)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::{Expr, ExprKind};
    use crate::syntax::parser::parse_equation;
    use crate::syntax::source::{FileId, TextRange};

    /// Issue 14 item 15: a 10 MB line is shown as a window of [`MAX_FRAME_COLS`] columns
    /// around the mark, `…` at the cut ends, the caret still under the marked character; a
    /// line that fits is shown whole (the other tests' snapshots).
    #[test]
    fn render_full_cuts_a_long_line_to_a_window_around_the_mark() {
        let mut text = "k: [".to_string();
        for i in 0..2_000_000 {
            text.push_str(&format!("{}, ", i % 10));
        }
        let at = text.len();
        text.push_str("oops, 1, 2]\n");
        let mut sources = SourceMap::new();
        let file = sources.add("big.yaml", text);
        let span = Span {
            file,
            range: TextRange::new(u32::try_from(at).expect("fits"), u32::try_from(at + 4).expect("fits")),
        };
        let d = Diagnostic::error("spec/not-a-number", "not a number");
        let out = render_full(&d.clone().with_span(span), &sources);
        assert!(out.len() < 600, "{} bytes", out.len());
        let lines: Vec<&str> = out.lines().collect();
        let shown = lines
            .iter()
            .find(|l| l.contains("oops"))
            .expect("the window holds the mark");
        let caret = lines.iter().find(|l| l.contains('^')).expect("a caret line");
        let col = |l: &str, pat: &str| l[..l.find(pat).expect("found")].chars().count();
        assert_eq!(col(caret, "^"), col(shown, "oops"), "{out}");
        assert_eq!(caret.matches('^').count(), 4);
        assert!(
            shown.contains("| …") && shown.ends_with('…') || shown.ends_with("2]"),
            "{shown}"
        );
        assert!(shown.chars().count() <= MAX_FRAME_COLS + 10, "{shown}");
        // The location is the real one.
        assert!(out.contains(&format!("big.yaml:1:{}", at + 1)), "{out}");
    }

    /// Byte offset of the equation string `eq` inside `yaml` (its first occurrence).
    fn offset_of(yaml: &str, eq: &str) -> u32 {
        let i = yaml.find(eq).unwrap_or_else(|| panic!("{eq:?} not in the YAML"));
        u32::try_from(i).expect("test files are small")
    }

    /// Parse every listed equation where it sits in the file and collect the diagnostics, as
    /// the template loader does.
    fn parse_all(sources: &SourceMap, file: FileId, eqs: &[(&str, &str)]) -> Diagnostics {
        let text = &sources.file(file).text;
        let mut ds = Diagnostics::new();
        for (eq, path) in eqs {
            if let Err(errs) = parse_equation(eq, file, offset_of(text, eq)) {
                for d in errs.0 {
                    ds.push(d.with_path(*path));
                }
            }
        }
        ds
    }

    fn find_ident<'e>(e: &'e Expr, name: &str) -> Option<&'e Expr> {
        match &e.kind {
            ExprKind::Ident(n) if n == name => Some(e),
            ExprKind::Number(_) | ExprKind::Imaginary(_) | ExprKind::Ident(_) => None,
            ExprKind::Unary(_, x) => find_ident(x, name),
            ExprKind::Binary(_, a, b) => find_ident(a, name).or_else(|| find_ident(b, name)),
            ExprKind::Call { args, .. } => args.iter().find_map(|a| find_ident(a, name)),
        }
    }

    const QIF: &str = r#"# Montbrió–Pazó–Roxin mean field (τ in ms)
qif_op:
  base: OperatorTemplate
  description: "QIF population, Δ-distributed excitabilities"
  equations:
    - "d/dt * r = (delta/(pi*tau) + 2.*r*v) / tau"
    - "d/dt * v = (v^2 + eta + I_ext + tau*r_inn - (pi*tau*r)^2) / tau"
  variables:
    r: output(0.01)
    v: variable(-2.0)
    r_in: input(0.0)
"#;

    /// A model-builder style diagnostic: an unknown symbol found by walking the parsed AST,
    /// its span shifted by the equation's offset, on a line after multibyte characters.
    fn undefined_symbol(file: FileId) -> Diagnostic {
        let eq = "d/dt * v = (v^2 + eta + I_ext + tau*r_inn - (pi*tau*r)^2) / tau";
        let offset = offset_of(QIF, eq);
        let parsed = parse_equation(eq, file, offset).expect("the QIF equation is valid");
        let ident = find_ident(&parsed.rhs, "r_inn").expect("r_inn occurs in the equation");
        let decl = offset_of(QIF, "r_in: input");
        Diagnostic::error("eq/undefined-symbol", "unknown symbol `r_inn` in operator `qif_op`")
            .with_span(Span {
                file,
                range: ident.range.offset(offset),
            })
            .with_label(Span::new(file, decl, decl + 4), "similar name declared here")
            .with_help("did you mean `r_in`?")
            .with_path("qif_op.equations[1]")
    }

    #[test]
    fn render_concise_undefined_symbol_after_multibyte_lines_is_located() {
        let mut sources = SourceMap::new();
        let file = sources.add("models/qif.yaml", QIF);
        let d = undefined_symbol(file);
        // Lines 1 and 4 hold multibyte characters; line starts are byte offsets, columns are not.
        // `r_inn` is character 44 of line 7: 7 before the quote, 11 in `d/dt * v = `, 25 in
        // `(v^2 + eta + I_ext + tau*`, plus one.
        let line7 = QIF.lines().nth(6).expect("7 lines");
        let col = line7.find("r_inn").expect("on line 7") + 1;
        assert_eq!(col, 7 + 11 + 25 + 1);
        assert_eq!(
            render_concise(&d, &sources),
            "models/qif.yaml:7:44: eq/undefined-symbol: unknown symbol `r_inn` in operator `qif_op` (in qif_op.equations[1])"
        );
        insta::assert_snapshot!(render_full(&d, &sources));
    }

    const GREEK: &str = "jr_op:\n  base: OperatorTemplate\n  equations: [\"v' = (v^2 + η)/τ\", \"PSP = h_e*m_in\"]\n";

    #[test]
    fn render_unexpected_unicode_after_multibyte_on_same_line() {
        let mut sources = SourceMap::new();
        let file = sources.add("templates/greek.yaml", GREEK);
        let ds = parse_all(&sources, file, &[("v' = (v^2 + η)/τ", "jr_op.equations[0]")]);
        assert_eq!(ds.len(), 2);
        // `τ` follows `η` (2 bytes): its column counts `η` as one character. Line 3 is
        // `  equations: ["v' = (v^2 + η)/τ", ...]`: `  equations: ["` is 15 characters, `v' = (v^2 + ` 12 more, so `η` is character 28
        // and `τ`, three after it, 31.
        assert_eq!(
            render_all_concise(&ds, &sources),
            "templates/greek.yaml:3:28: eq/unexpected-character: unexpected character `η` (in jr_op.equations[0])\n\
             templates/greek.yaml:3:31: eq/unexpected-character: unexpected character `τ` (in jr_op.equations[0])\n"
        );
        insta::assert_snapshot!(render_all_full(&ds, &sources));
    }

    const BROKEN: &str = r#"broken_op:
  base: OperatorTemplate
  equations:
    - "x'' = -omega^2 * x"
    - "d/dt * y = (a + b * (c - y)"
    - "z = y = 2"
    - "w = 2 w_0 + 1"
    - "u = (u < 1) + (v < w < 1)"
  variables:
    x: output(0.0)
"#;

    #[test]
    fn render_full_parser_errors_snapshot() {
        let mut sources = SourceMap::new();
        let file = sources.add("models/broken.yaml", BROKEN);
        let eqs = [
            ("x'' = -omega^2 * x", "broken_op.equations[0]"),
            ("d/dt * y = (a + b * (c - y)", "broken_op.equations[1]"),
            ("z = y = 2", "broken_op.equations[2]"),
            ("w = 2 w_0 + 1", "broken_op.equations[3]"),
            ("u = (u < 1) + (v < w < 1)", "broken_op.equations[4]"),
        ];
        let ds = parse_all(&sources, file, &eqs);
        let codes: Vec<&str> = ds.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            [
                "eq/higher-order-derivative",
                "eq/unbalanced-paren",
                "eq/multiple-assignment",
                "eq/trailing-input",
                "eq/chained-comparison"
            ]
        );
        insta::assert_snapshot!("broken_concise", render_all_concise(&ds, &sources));
        insta::assert_snapshot!("broken_full", render_all_full(&ds, &sources));
    }

    #[test]
    fn render_full_multiline_span_and_label_in_other_file() {
        let mut sources = SourceMap::new();
        let base = sources.add(
            "<builtin>/model_templates/base.yaml",
            "OpBase:\n  base: OperatorTemplate\n",
        );
        let text = "cycle_node:\n  base: NodeTemplate\n  operators:\n    - op_a\n    - op_b\n";
        let file = sources.add("models/cycle.yaml", text);
        let start = offset_of(text, "operators:");
        let d = Diagnostic::error("node/operator-cycle", "operators `op_a` and `op_b` feed each other")
            .with_span(Span::new(file, start, u32::try_from(text.len()).expect("small") - 1))
            .with_label(Span::new(base, 0, 6), "both inherit from here")
            .with_path("cycle_node");
        assert_eq!(
            render_concise(&d, &sources),
            "models/cycle.yaml:3:3: node/operator-cycle: operators `op_a` and `op_b` feed each other (in cycle_node)"
        );
        insta::assert_snapshot!(render_full(&d, &sources));
    }

    #[test]
    fn render_without_span_has_no_location() {
        let sources = SourceMap::new();
        let d = Diagnostic::warning("io/missing-file", "cannot read `sweep.yaml`").with_help("check the path");
        assert_eq!(
            render_concise(&d, &sources),
            "io/missing-file: cannot read `sweep.yaml`"
        );
        assert_eq!(
            render_full(&d, &sources),
            "warning[io/missing-file]: cannot read `sweep.yaml`\n = help: check the path"
        );
    }

    #[test]
    fn render_bad_spans_fall_back_without_panicking() {
        let mut sources = SourceMap::new();
        let file = sources.add("a.yaml", "é\n");
        // Past the end, inside a multibyte character, into a file that is not in the map.
        for span in [
            Span::new(file, 50, 60),
            Span::new(file, 1, 2),
            Span::new(FileId(9), 0, 1),
        ] {
            let d = Diagnostic::error("x/y", "m").with_span(span).with_label(span, "l");
            let concise = render_concise(&d, &sources);
            let full = render_full(&d, &sources);
            assert!(concise.ends_with("x/y: m"), "{concise}");
            assert!(full.starts_with("error[x/y]: m"), "{full}");
        }
        // Inside `é`: snapped back to its start, column 1.
        let d = Diagnostic::error("x/y", "m").with_span(Span::new(file, 1, 2));
        assert_eq!(render_concise(&d, &sources), "a.yaml:1:1: x/y: m");
    }

    #[test]
    fn render_full_empty_span_marks_one_column_and_tabs_expand() {
        let mut sources = SourceMap::new();
        let file = sources.add("t.yaml", "a:\n\tkey: \"x = \"\n");
        let at = offset_of("a:\n\tkey: \"x = \"\n", "\"\n");
        let d = Diagnostic::error("eq/empty-expression", "missing right-hand side").with_span(Span {
            file,
            range: TextRange::new(at, at),
        });
        assert_eq!(
            render_full(&d, &sources),
            "error[eq/empty-expression]: missing right-hand side\n --> t.yaml:2:15\n  |\n2 |     key: \"x = \"\n  |               ^"
        );
    }
}
