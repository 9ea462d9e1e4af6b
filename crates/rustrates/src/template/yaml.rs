//! A YAML tree that keeps the byte span of every node, so template problems point at the
//! exact scalar. Built from saphyr-parser's event stream; anchors/aliases are expanded and
//! `<<` merge keys applied here (the parser only reports them).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::syntax::{Diagnostic, FileId, Span};

/// A YAML node with its span in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar as written; interpreted on demand (`as_f64`, `is_null`, ...).
    Scalar {
        text: String,
        style: Style,
    },
    Seq(Vec<Node>),
    /// Keys in file order; after `<<` merging, explicit keys come first.
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Block,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
    /// A plain scalar that YAML would read as null (`null`, `~`, empty).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, style: Style::Plain }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }
    /// A plain scalar read as a number (YAML 1.2 core schema plus Python's float syntax).
    pub fn as_f64(&self) -> Option<f64> {
        match &self.value {
            Value::Scalar {
                text,
                style: Style::Plain,
            } => parse_number(text),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }
    /// Value under a string key of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Parse a number the way PyRates' YAML values end up as numbers: ints, floats (`2.`, `.5`,
/// `1e-3`, `10e-3`), `.inf`/`.nan`.
pub fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim();
    match t {
        ".inf" | ".Inf" | ".INF" | "+.inf" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let ok = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-' | '_'))
        && t.chars().any(|c| c.is_ascii_digit());
    if !ok {
        return None;
    }
    t.replace('_', "").parse::<f64>().ok()
}

/// A number in one of the forms Python's `complex()` reads: `2`, `1j`, `-0.6-0.8j`,
/// `(0.5+0.1j)`; returns (real part, imaginary part).
pub fn parse_complex(text: &str) -> Option<(f64, f64)> {
    let t = text.trim();
    let t = t
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .unwrap_or(t)
        .trim();
    let Some(body) = t.strip_suffix(['j', 'J']) else {
        return parse_number(t).map(|x| (x, 0.0));
    };
    // The sign that starts the imaginary part: the last `+`/`-` not at the start and not
    // the sign of an exponent.
    let bytes = body.as_bytes();
    let split = (1..bytes.len())
        .rev()
        .find(|&k| matches!(bytes[k], b'+' | b'-') && !matches!(bytes[k - 1], b'e' | b'E'));
    let (re, im) = match split {
        Some(k) => (parse_number(&body[..k])?, &body[k..]),
        None => (0.0, body),
    };
    let im = match im {
        "" | "+" => 1.0,
        "-" => -1.0,
        x => parse_number(x)?,
    };
    Some((re, im))
}

/// Byte offset of every character index (saphyr's markers count characters).
struct CharOffsets(Vec<u32>);

impl CharOffsets {
    fn new(text: &str) -> Self {
        if text.is_ascii() {
            return Self(Vec::new());
        }
        let mut v: Vec<u32> = text.char_indices().map(|(b, _)| b as u32).collect();
        v.push(text.len() as u32);
        Self(v)
    }
    fn byte(&self, char_index: usize) -> u32 {
        if self.0.is_empty() {
            return char_index as u32;
        }
        self.0
            .get(char_index)
            .copied()
            .unwrap_or_else(|| self.0.last().copied().unwrap_or(0))
    }
}

enum Frame {
    Seq {
        start: u32,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: u32,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

/// Parse the first document of `text`. A syntax error is a `yaml/syntax` diagnostic at the
/// position the scanner stopped.
pub fn parse(text: &str, file: FileId) -> Result<Option<Node>, Box<Diagnostic>> {
    let offsets = CharOffsets::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut expanded = 0usize;
    let mut root: Option<Node> = None;
    while let Some(ev) = parser.next_event() {
        let (ev, sp) = match ev {
            Ok(x) => x,
            Err(e) => {
                let at = offsets.byte(e.marker().index());
                return Err(Box::new(
                    Diagnostic::error("yaml/syntax", format!("YAML syntax error: {}", e.info()))
                        .with_span(Span::new(file, at, at)),
                ));
            }
        };
        let start = offsets.byte(sp.start.index());
        let end = offsets.byte(sp.end.index()).max(start);
        let done: Option<Node> = match ev {
            Event::StreamStart | Event::DocumentStart(_) | Event::Nothing => None,
            Event::DocumentEnd | Event::StreamEnd => {
                if root.is_some() || matches!(ev, Event::StreamEnd) {
                    break;
                }
                None
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(n) => {
                    // Nested aliases can grow exponentially ("billion laughs"): cap the copies.
                    expanded += node_count(n);
                    if expanded > MAX_ALIAS_NODES {
                        return Err(Box::new(
                            Diagnostic::error("yaml/syntax", "aliases expand to too many nodes")
                                .with_span(Span::new(file, start, end))
                                .with_help(format!("at most {MAX_ALIAS_NODES} nodes may come from aliases")),
                        ));
                    }
                    Some(Node {
                        value: n.value.clone(),
                        span: Span::new(file, start, end),
                    })
                }
                None => {
                    return Err(Box::new(
                        Diagnostic::error("yaml/syntax", "alias to an unknown anchor")
                            .with_span(Span::new(file, start, end)),
                    ))
                }
            },
            Event::Scalar(v, style, anchor, _tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                let n = Node {
                    value: Value::Scalar {
                        text: v.into_owned(),
                        style,
                    },
                    span: Span::new(file, start, end),
                };
                if anchor != 0 {
                    anchors.insert(anchor, n.clone());
                }
                Some(n)
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq {
                    start,
                    anchor,
                    items: Vec::new(),
                });
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map {
                    start,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq {
                    start: s,
                    anchor,
                    items,
                }) => {
                    let e = items.last().map_or(end, |n| n.span.range.end.max(end));
                    let n = Node {
                        value: Value::Seq(items),
                        span: Span::new(file, s, e),
                    };
                    if anchor != 0 {
                        anchors.insert(anchor, n.clone());
                    }
                    Some(n)
                }
                _ => None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    start: s,
                    anchor,
                    entries,
                    ..
                }) => {
                    let e = entries.last().map_or(end, |(_, v)| v.span.range.end.max(end));
                    let n = Node {
                        value: Value::Map(apply_merges(entries)),
                        span: Span::new(file, s, e),
                    };
                    if anchor != 0 {
                        anchors.insert(anchor, n.clone());
                    }
                    Some(n)
                }
                _ => None,
            },
        };
        if let Some(n) = done {
            match stack.last_mut() {
                Some(Frame::Seq { items, .. }) => items.push(n),
                Some(Frame::Map { entries, key, .. }) => match key.take() {
                    Some(k) => entries.push((k, n)),
                    None => {
                        let dup = n
                            .as_str()
                            .is_some_and(|s| s != "<<" && entries.iter().any(|(k, _)| k.as_str() == Some(s)));
                        if dup {
                            return Err(Box::new(
                                Diagnostic::error(
                                    "yaml/syntax",
                                    format!("duplicate key `{}`", n.as_str().unwrap_or("")),
                                )
                                .with_span(n.span)
                                .with_help("each key of a mapping (each template name in a file) may appear once"),
                            ));
                        }
                        *key = Some(n)
                    }
                },
                None => root = Some(n),
            }
        }
    }
    Ok(root)
}

/// Nodes that alias expansion may create in one file.
const MAX_ALIAS_NODES: usize = 1_000_000;

fn node_count(n: &Node) -> usize {
    1 + match &n.value {
        Value::Scalar { .. } => 0,
        Value::Seq(items) => items.iter().map(node_count).sum(),
        Value::Map(m) => m.iter().map(|(k, v)| node_count(k) + node_count(v)).sum(),
    }
}

/// `<<: *base` or `<<: [*a, *b]`: copy the merged mappings' keys that the mapping does not set
/// itself (earlier merge sources win over later ones, as in YAML 1.1).
fn apply_merges(entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    if !entries.iter().any(|(k, _)| is_merge_key(k)) {
        return entries;
    }
    let mut out: Vec<(Node, Node)> = Vec::new();
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (k, v) in entries {
        if is_merge_key(&k) {
            let sources: Vec<Node> = match v.value {
                Value::Seq(items) => items,
                _ => vec![v],
            };
            for s in sources {
                if let Value::Map(m) = s.value {
                    merged.extend(m);
                }
            }
        } else {
            out.push((k, v));
        }
    }
    for (k, v) in merged {
        let dup = out
            .iter()
            .any(|(k2, _)| k2.as_str().is_some() && k2.as_str() == k.as_str());
        if !dup {
            out.push((k, v));
        }
    }
    out
}

fn is_merge_key(k: &Node) -> bool {
    matches!(&k.value, Value::Scalar { text, style: Style::Plain } if text == "<<")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse(text, FileId(0)).expect("valid yaml").expect("a document")
    }

    #[test]
    fn parse_scalar_spans_are_byte_offsets_of_the_text() {
        let text = "a:\n  b: \"x' = é\"\n  c: plain text\n";
        let r = root(text);
        let b = r.get("a").and_then(|a| a.get("b")).expect("a.b");
        // Quoted scalars span their quotes.
        assert_eq!(
            &text[b.span.range.start as usize..b.span.range.end as usize],
            "\"x' = é\""
        );
        let c = r.get("a").and_then(|a| a.get("c")).expect("a.c");
        assert_eq!(
            &text[c.span.range.start as usize..c.span.range.end as usize],
            "plain text"
        );
    }

    #[test]
    fn parse_anchor_and_merge_key_explicit_keys_win() {
        let r = root("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n");
        let d = r.get("d").expect("d");
        assert_eq!(d.get("x").and_then(Node::as_f64), Some(1.0));
        assert_eq!(d.get("y").and_then(Node::as_f64), Some(3.0));
        assert_eq!(d.as_map().map(|m| m.len()), Some(2));
    }

    #[test]
    fn parse_alias_in_list_expands_the_anchored_value() {
        let r = root("aliases:\n  - &p some.path.Name\nuse: *p\n");
        assert_eq!(r.get("use").and_then(Node::as_str), Some("some.path.Name"));
    }

    #[test]
    fn parse_syntax_error_reports_yaml_syntax_at_position() {
        let text = "a: [1, 2\nb: 3\n";
        let e = parse(text, FileId(0)).expect_err("unclosed flow sequence");
        assert_eq!(e.code, "yaml/syntax");
        assert!(e.span.is_some());
    }

    #[test]
    fn parse_nested_aliases_are_capped_not_expanded_without_bound() {
        // Each level doubles: 2^30 nodes if expanded.
        let mut text = String::from("a0: &a0 [x, x]\n");
        for i in 1..30 {
            text.push_str(&format!("a{i}: &a{i} [*a{}, *a{}]\n", i - 1, i - 1));
        }
        let e = parse(&text, FileId(0)).expect_err("capped");
        assert_eq!(e.message, "aliases expand to too many nodes");
    }

    #[test]
    fn parse_number_accepts_python_float_forms() {
        assert_eq!(parse_number("2."), Some(2.0));
        assert_eq!(parse_number("10e-3"), Some(0.01));
        assert_eq!(parse_number("-5"), Some(-5.0));
        assert_eq!(parse_number("input"), None);
        assert_eq!(parse_number("e"), None);
    }

    #[test]
    fn parse_complex_reads_python_complex_forms() {
        // Each expected value is what Python's complex() gives for the same text.
        assert_eq!(parse_complex("0.0+1.0j"), Some((0.0, 1.0)));
        assert_eq!(parse_complex("-0.6-0.8j"), Some((-0.6, -0.8)));
        assert_eq!(parse_complex("(0.5+0.1j)"), Some((0.5, 0.1)));
        assert_eq!(parse_complex("2j"), Some((0.0, 2.0)));
        assert_eq!(parse_complex("-j"), Some((0.0, -1.0)));
        assert_eq!(parse_complex("1e-3-2e+1j"), Some((1e-3, -20.0)));
        assert_eq!(parse_complex("3.5"), Some((3.5, 0.0)));
        assert_eq!(parse_complex("complex"), None);
        assert_eq!(parse_complex("1+2"), None);
    }
}
