//! Equation tokens with byte ranges relative to the start of the equation string.
//!
//! The lexer never stops at the first bad character: it skips it, records a diagnostic and
//! goes on, so one pass reports every unexpected character in a string.

use super::diag::{Diagnostic, Diagnostics};
use super::source::{FileId, Span, TextRange};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TokenKind {
    /// A finite, non-negative literal (a leading `-` is a separate token).
    Number(f64),
    /// An imaginary literal `2.5j` (Python's spelling): the number before the `j`.
    Imaginary(f64),
    /// An identifier; its text is `source[range]`.
    Ident,
    Plus,
    Minus,
    Star,
    Slash,
    /// `**`
    StarStar,
    /// `^`, PyRates' other spelling of power.
    Caret,
    LParen,
    RParen,
    Comma,
    /// `=`
    Assign,
    /// `'`, marking a derivative on the left-hand side.
    Prime,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
}

impl TokenKind {
    /// How the token is written, for messages. Numbers and identifiers are quoted from the
    /// source by the caller instead.
    pub fn describe(self) -> &'static str {
        match self {
            TokenKind::Number(_) => "a number",
            TokenKind::Imaginary(_) => "an imaginary number",
            TokenKind::Ident => "a name",
            TokenKind::Plus => "`+`",
            TokenKind::Minus => "`-`",
            TokenKind::Star => "`*`",
            TokenKind::Slash => "`/`",
            TokenKind::StarStar => "`**`",
            TokenKind::Caret => "`^`",
            TokenKind::LParen => "`(`",
            TokenKind::RParen => "`)`",
            TokenKind::Comma => "`,`",
            TokenKind::Assign => "`=`",
            TokenKind::Prime => "`'`",
            TokenKind::Lt => "`<`",
            TokenKind::Le => "`<=`",
            TokenKind::Gt => "`>`",
            TokenKind::Ge => "`>=`",
            TokenKind::EqEq => "`==`",
            TokenKind::Ne => "`!=`",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub range: TextRange,
}

/// Split `text` into tokens. `file` and `offset` (the string's byte position in its file) only
/// place the diagnostics; token ranges stay relative to `text`.
///
/// Returns every token that could be read and the diagnostics for everything that could not
/// (`eq/unexpected-character`, `eq/malformed-number`, `eq/number-out-of-range`).
pub fn tokenize(text: &str, file: FileId, offset: u32) -> (Vec<Token>, Diagnostics) {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut diags = Diagnostics::new();
    let span = |start: usize, end: usize| Span {
        file,
        range: range(start, end).offset(offset),
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let single = |kind| (kind, 1);
        let (kind, len) = match b {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'0'..=b'9' | b'.' => {
                let (mut end, problem) = scan_number(bytes, i);
                // `2j`: a `j` right after the number that does not start a name.
                let imaginary = problem.is_none()
                    && matches!(bytes.get(end), Some(b'j' | b'J'))
                    && !bytes
                        .get(end + 1)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
                let lexeme = &text[start..end];
                if imaginary {
                    end += 1;
                }
                i = end;
                match problem {
                    Some(NumberProblem::LoneDot) => {
                        diags.push(
                            Diagnostic::error("eq/unexpected-character", "unexpected character `.`")
                                .with_span(span(start, end))
                                .with_help("a number needs a digit before or after the point: `0.5`, `5.`"),
                        );
                    }
                    Some(NumberProblem::EmptyExponent) => {
                        diags.push(
                            Diagnostic::error(
                                "eq/malformed-number",
                                format!("number `{lexeme}` has an exponent without digits"),
                            )
                            .with_span(span(start, end))
                            .with_help("write the exponent's digits, e.g. `1e-3`"),
                        );
                    }
                    None => match lexeme.parse::<f64>() {
                        Ok(v) if v.is_finite() => tokens.push(Token {
                            kind: if imaginary {
                                TokenKind::Imaginary(v)
                            } else {
                                TokenKind::Number(v)
                            },
                            range: range(start, end),
                        }),
                        Ok(_) => diags.push(
                            Diagnostic::error(
                                "eq/number-out-of-range",
                                format!("number `{lexeme}` is too large for a 64-bit float"),
                            )
                            .with_span(span(start, end)),
                        ),
                        Err(_) => diags.push(
                            Diagnostic::error("eq/malformed-number", format!("malformed number `{lexeme}`"))
                                .with_span(span(start, end)),
                        ),
                    },
                }
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let mut end = i + 1;
                while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                    end += 1;
                }
                (TokenKind::Ident, end - i)
            }
            b'+' => single(TokenKind::Plus),
            b'-' => single(TokenKind::Minus),
            b'*' if bytes.get(i + 1) == Some(&b'*') => (TokenKind::StarStar, 2),
            b'*' => single(TokenKind::Star),
            b'/' => single(TokenKind::Slash),
            b'^' => single(TokenKind::Caret),
            b'(' => single(TokenKind::LParen),
            b')' => single(TokenKind::RParen),
            b',' => single(TokenKind::Comma),
            b'\'' => single(TokenKind::Prime),
            b'=' if bytes.get(i + 1) == Some(&b'=') => (TokenKind::EqEq, 2),
            b'=' => single(TokenKind::Assign),
            b'<' if bytes.get(i + 1) == Some(&b'=') => (TokenKind::Le, 2),
            b'<' => single(TokenKind::Lt),
            b'>' if bytes.get(i + 1) == Some(&b'=') => (TokenKind::Ge, 2),
            b'>' => single(TokenKind::Gt),
            b'!' if bytes.get(i + 1) == Some(&b'=') => (TokenKind::Ne, 2),
            _ => {
                // Step over the whole character so the span and the message stay valid UTF-8.
                let ch = text[i..]
                    .chars()
                    .next()
                    .expect("i is on a char boundary: every token ends on one");
                let end = i + ch.len_utf8();
                let mut d = Diagnostic::error("eq/unexpected-character", format!("unexpected character `{ch}`"))
                    .with_span(span(start, end));
                if let Some(help) = unexpected_char_help(ch) {
                    d = d.with_help(help);
                }
                diags.push(d);
                i = end;
                continue;
            }
        };
        tokens.push(Token {
            kind,
            range: range(start, start + len),
        });
        i += len;
    }
    (tokens, diags)
}

fn unexpected_char_help(ch: char) -> Option<&'static str> {
    Some(match ch {
        '!' => "`!` only appears in `!=`",
        '[' | ']' => {
            "only round parentheses `(` `)` group expressions; indexing (`x[0]`) is not part of the \
equation language (PyRates 1.2.3 cannot run it either): reduce a vector with `vsum`, `mean` or `dot`, or \
read one element through an edge (`'a/op/x[1]'`)"
        }
        '{' | '}' => "only round parentheses `(` `)` group expressions",
        '&' | '|' => "logical operators are not part of the equation language; use comparisons and `heaviside`",
        '%' => "the equation language has no modulo operator",
        '"' => "an equation is not quoted inside its YAML string",
        '−' => "this is a Unicode minus sign; use the ASCII `-`",
        '×' | '·' => "use `*` for multiplication",
        c if c.is_alphabetic() => "names use ASCII letters, digits and `_`: write `tau`, not `τ`",
        _ => return None,
    })
}

enum NumberProblem {
    /// `.` with no digit on either side.
    LoneDot,
    /// `1e`, `1e+` with no exponent digits.
    EmptyExponent,
}

/// Scan a number starting at `i` (a digit or `.`); return its end and what is wrong with it.
fn scan_number(bytes: &[u8], i: usize) -> (usize, Option<NumberProblem>) {
    let digits = |mut j: usize| {
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let int_end = digits(i);
    let mut end = int_end;
    let mut frac_digits = 0;
    if bytes.get(end) == Some(&b'.') {
        let frac_end = digits(end + 1);
        frac_digits = frac_end - (end + 1);
        end = frac_end;
    }
    if int_end == i && frac_digits == 0 {
        return (end, Some(NumberProblem::LoneDot));
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_end = digits(j);
        if exp_end == j {
            return (j, Some(NumberProblem::EmptyExponent));
        }
        end = exp_end;
    }
    (end, None)
}

fn range(start: usize, end: usize) -> TextRange {
    // Equation strings live inside YAML files, which are far below 4 GiB; the template loader
    // rejects larger files before anything reaches the lexer.
    TextRange::new(start as u32, end as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        let (tokens, diags) = tokenize(text, FileId(0), 0);
        assert!(diags.is_empty(), "unexpected diagnostics for {text:?}: {diags:?}");
        tokens.into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn tokenize_number_forms_give_their_decimal_values() {
        // Reference values are the decimal meanings of the literals, as Python reads them.
        let cases: [(&str, f64); 8] = [
            ("2", 2.0),
            ("2.", 2.0),
            (".5", 0.5),
            ("1e-3", 0.001),
            ("1.5E+2", 150.0),
            ("0.25e1", 2.5),
            ("007", 7.0),
            ("1E3", 1000.0),
        ];
        for (text, value) in cases {
            assert_eq!(kinds(text), vec![TokenKind::Number(value)], "{text}");
        }
    }

    #[test]
    fn tokenize_imaginary_literals_as_python_writes_them() {
        use TokenKind::*;
        // Python: 2j, 1.5J and 1e-3j are imaginary; `2jx` is the number 2 then the name `jx`
        // (which the parser reports as implicit multiplication).
        assert_eq!(kinds("2j"), vec![Imaginary(2.0)]);
        assert_eq!(kinds("1.5J+1e-3j"), vec![Imaginary(1.5), Plus, Imaginary(0.001)]);
        assert_eq!(kinds("2jx"), vec![Number(2.0), Ident]);
        assert_eq!(kinds("2*j"), vec![Number(2.0), Star, Ident]);
    }

    #[test]
    fn tokenize_operators_take_the_longest_match() {
        use TokenKind::*;
        assert_eq!(
            kinds("a**b^c<=d>=e==f!=g<h>i=j'(,)*/+-"),
            vec![
                Ident, StarStar, Ident, Caret, Ident, Le, Ident, Ge, Ident, EqEq, Ident, Ne, Ident, Lt, Ident, Gt,
                Ident, Assign, Ident, Prime, LParen, Comma, RParen, Star, Slash, Plus, Minus
            ]
        );
    }

    #[test]
    fn tokenize_identifier_ranges_cover_underscores_and_digits() {
        let text = "d/dt * r_e = I_ext + tau_2";
        let (tokens, _) = tokenize(text, FileId(0), 0);
        let idents: Vec<&str> = tokens
            .iter()
            .filter(|t| t.kind == TokenKind::Ident)
            .map(|t| &text[t.range.start as usize..t.range.end as usize])
            .collect();
        assert_eq!(idents, ["d", "dt", "r_e", "I_ext", "tau_2"]);
    }

    #[test]
    fn tokenize_unexpected_characters_are_all_reported_with_absolute_spans() {
        // `é` is two bytes: the second diagnostic's span must start after both.
        let text = "a $ é + b";
        let (tokens, diags) = tokenize(text, FileId(3), 100);
        assert_eq!(tokens.len(), 3);
        let spans: Vec<(u32, u32)> = diags
            .iter()
            .map(|d| d.span.map_or((0, 0), |s| (s.range.start, s.range.end)))
            .collect();
        assert_eq!(spans, [(102, 103), (104, 106)]);
        assert!(diags.iter().all(|d| d.code == "eq/unexpected-character"));
        assert!(diags.iter().all(|d| d.span.is_some_and(|s| s.file == FileId(3))));
    }

    #[test]
    fn tokenize_exponent_without_digits_is_malformed() {
        let (_, diags) = tokenize("x = 1e+ * 2", FileId(0), 0);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags.0[0].code, "eq/malformed-number");
        assert_eq!(diags.0[0].span.map(|s| s.range), Some(TextRange::new(4, 7)));
    }

    #[test]
    fn tokenize_overflowing_literal_is_out_of_range() {
        let (tokens, diags) = tokenize("1e400", FileId(0), 0);
        assert!(tokens.is_empty());
        assert_eq!(diags.0[0].code, "eq/number-out-of-range");
    }

    #[test]
    fn tokenize_lone_dot_is_unexpected() {
        let (_, diags) = tokenize("a . b", FileId(0), 0);
        assert_eq!(diags.0[0].code, "eq/unexpected-character");
        assert_eq!(diags.0[0].span.map(|s| s.range), Some(TextRange::new(2, 3)));
    }
}
