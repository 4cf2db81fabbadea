//! Loading an experiment file into an untyped JSON tree plus a map from every
//! value's path to its line and column.
//!
//! Chaos Toolkit treats an experiment as an untyped mapping and keeps unknown
//! keys, so the tree is a `serde_json::Value` (insertion-ordered). Locations
//! live beside it, keyed by [`Path`], so validation can point at the exact
//! line of any problem without the typed model carrying spans around.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Location};

/// One step into a JSON tree: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the document root, printed as `method[2].provider.timeout`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Path(Vec<Seg>);

impl Path {
    pub fn root() -> Self {
        Self::default()
    }

    /// This path extended by a mapping key.
    pub fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Self(segs)
    }

    /// This path extended by a sequence index.
    pub fn index(&self, idx: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(idx));
        Self(segs)
    }

    /// The path one step up, or the root.
    pub fn parent(&self) -> Self {
        let mut segs = self.0.clone();
        segs.pop();
        Self(segs)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(root)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The source formats squall reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// The format implied by a file name, as Chaos Toolkit decides it.
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Some(Self::Yaml)
        } else if lower.ends_with(".json") {
            Some(Self::Json)
        } else {
            None
        }
    }
}

/// A parsed experiment (or settings / var file) with value locations.
#[derive(Clone, Debug)]
pub struct Document {
    pub value: Value,
    spans: HashMap<Path, Location>,
}

impl Document {
    /// A document without locations, for values built in code.
    pub fn from_value(value: Value) -> Self {
        Self {
            value,
            spans: HashMap::new(),
        }
    }

    /// Parse `text` as `format`. Syntax errors come back as one diagnostic
    /// with the position the parser reported.
    pub fn parse(text: &str, format: Format) -> Result<Self, Diagnostic> {
        match format {
            Format::Json => parse_json(text),
            Format::Yaml => parse_yaml(text),
        }
    }

    /// The location of the value at `path`, or of its nearest located parent.
    pub fn location(&self, path: &Path) -> Option<Location> {
        let mut cur = path.clone();
        loop {
            if let Some(loc) = self.spans.get(&cur) {
                return Some(*loc);
            }
            if cur.is_root() {
                return None;
            }
            cur = cur.parent();
        }
    }
}

fn parse_json(text: &str) -> Result<Document, Diagnostic> {
    let value: Value = serde_json::from_str(text).map_err(|err| {
        let loc = Location {
            line: err.line(),
            column: err.column(),
        };
        Diagnostic::at(Path::root(), format!("invalid JSON: {err}")).with_location(Some(loc))
    })?;
    // serde_json keeps the last of duplicate keys silently; YAML refuses
    // them, and so does squall for JSON.
    let mut de = serde_json::Deserializer::from_str(text);
    if let Err(err) = de::Deserializer::deserialize_any(&mut de, UniqueKeys) {
        let loc = Location {
            line: err.line(),
            column: err.column(),
        };
        return Err(
            Diagnostic::at(Path::root(), format!("invalid JSON: {err}")).with_location(Some(loc))
        );
    }
    // JSON is YAML, so the YAML reader can recover positions; if it cannot
    // (exotic escapes), the document simply has no locations.
    let spans = serde_saphyr::from_str::<Spanned<Node>>(text)
        .map(|node| collect_spans(&node))
        .unwrap_or_default();
    Ok(Document { value, spans })
}

/// Walks a JSON document and fails on the first mapping that repeats a key.
struct UniqueKeys;

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(UniqueKeys)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            map.next_value_seed(UniqueKeys)?;
        }
        Ok(())
    }
}

impl<'de> de::DeserializeSeed<'de> for UniqueKeys {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

fn parse_yaml(text: &str) -> Result<Document, Diagnostic> {
    if text.trim().is_empty() {
        return Ok(Document::from_value(Value::Null));
    }
    let node = serde_saphyr::from_str::<Spanned<Node>>(text).map_err(|err| {
        let loc = err.location().map(|l| Location {
            line: usize::try_from(l.line()).unwrap_or(0),
            column: usize::try_from(l.column()).unwrap_or(0),
        });
        let first = err.to_string();
        let msg = first.lines().next().unwrap_or("unreadable YAML").to_owned();
        Diagnostic::at(Path::root(), format!("invalid YAML: {msg}")).with_location(loc)
    })?;
    Ok(Document {
        value: to_value(&node.value),
        spans: collect_spans(&node),
    })
}

/// A YAML value in which every node remembers where it was written.
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(String, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        // Keys are read as text, so a key such as `n` or `on` stays a name
        // instead of turning into a YAML 1.1 boolean.
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

fn to_value(node: &Node) -> Value {
    match node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => Value::Number((*i).into()),
        Node::UInt(u) => Value::Number((*u).into()),
        Node::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Node::Str(s) => Value::String(s.clone()),
        Node::Seq(items) => Value::Array(items.iter().map(|i| to_value(&i.value)).collect()),
        Node::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                map.insert(k.clone(), to_value(&v.value));
            }
            Value::Object(map)
        }
    }
}

fn collect_spans(root: &Spanned<Node>) -> HashMap<Path, Location> {
    let mut spans = HashMap::new();
    walk(root, Path::root(), &mut spans);
    spans
}

fn walk(node: &Spanned<Node>, path: Path, out: &mut HashMap<Path, Location>) {
    out.insert(
        path.clone(),
        Location {
            line: usize::try_from(node.referenced.line()).unwrap_or(0),
            column: usize::try_from(node.referenced.column()).unwrap_or(0),
        },
    );
    match &node.value {
        Node::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, path.index(i), out);
            }
        }
        Node::Map(entries) => {
            for (k, v) in entries {
                walk(v, path.key(k), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_like_chaos_toolkit_locations() {
        let p = Path::root()
            .key("method")
            .index(2)
            .key("provider")
            .key("timeout");
        assert_eq!(p.to_string(), "method[2].provider.timeout");
        assert_eq!(Path::root().to_string(), "(root)");
    }

    #[test]
    fn yaml_values_and_locations() {
        let text = "title: t\nmethod:\n  - name: a\n    provider:\n      timeout: 3\n";
        let doc = Document::parse(text, Format::Yaml).unwrap();
        assert_eq!(doc.value["method"][0]["provider"]["timeout"], 3);
        let p = Path::root()
            .key("method")
            .index(0)
            .key("provider")
            .key("timeout");
        let loc = doc.location(&p).unwrap();
        assert_eq!((loc.line, loc.column), (5, 16));
        // A path that does not exist falls back to its nearest parent.
        let missing = p.parent().key("nope");
        assert_eq!(doc.location(&missing).unwrap().line, 5);
    }

    #[test]
    fn yaml_keeps_key_order_and_types() {
        let doc = Document::parse("b: 1\na: true\nc: 1.5\nd: ~\ne: '7'\n", Format::Yaml).unwrap();
        let keys: Vec<_> = doc.value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["b", "a", "c", "d", "e"]);
        assert_eq!(doc.value["a"], true);
        assert_eq!(doc.value["c"], 1.5);
        assert!(doc.value["d"].is_null());
        assert_eq!(doc.value["e"], "7");
    }

    #[test]
    fn json_refuses_duplicate_keys_as_yaml_does() {
        let err = Document::parse(
            "{\n  \"title\": \"a\",\n  \"title\": \"b\"\n}",
            Format::Json,
        )
        .unwrap_err();
        assert!(
            err.message.contains("duplicate key `title`"),
            "{}",
            err.message
        );
        assert!(Document::parse(r#"{"a": [{"k": 1}, {"k": 2}]}"#, Format::Json).is_ok());
    }

    #[test]
    fn json_has_locations_too() {
        let doc =
            Document::parse("{\n  \"title\": \"x\",\n  \"method\": []\n}", Format::Json).unwrap();
        assert_eq!(doc.location(&Path::root().key("method")).unwrap().line, 3);
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = Document::parse("title: [unclosed\n", Format::Yaml).unwrap_err();
        assert!(err.message.starts_with("invalid YAML"), "{}", err.message);
        assert!(err.location.is_some());
        let err = Document::parse("{\"a\": }", Format::Json).unwrap_err();
        assert_eq!(err.location.unwrap().line, 1);
    }

    #[test]
    fn format_from_file_name() {
        assert_eq!(Format::from_name("x.YML"), Some(Format::Yaml));
        assert_eq!(Format::from_name("x.json"), Some(Format::Json));
        assert_eq!(Format::from_name("x.txt"), None);
    }
}
