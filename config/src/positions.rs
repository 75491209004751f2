//! Where each key and value sits in the profile text, so that problems found after parsing can be
//! reported at `line:col`.
//!
//! serde_yaml_ng decides what the YAML means but forgets positions; this module replays the text through
//! saphyr-parser's event stream and keeps a tree of positions shaped like the document. The tree is
//! linear in the input (paths are never materialised as strings) and stops at a fixed depth, so a hostile
//! file cannot make it large. When the two parsers disagree, lookups simply fall back to the nearest
//! enclosing node.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser};

/// Deeper than any key the profile schema has; positions below fall back to this depth.
const MAX_DEPTH: usize = 12;

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub line: usize,
    pub col: usize,
}

impl Mark {
    pub const START: Mark = Mark { line: 1, col: 1 };

    fn from_marker(marker: Marker) -> Mark {
        Mark { line: marker.line().max(1), col: marker.col().saturating_add(1) }
    }
}

/// The position of one node: its key (the item itself for list items and the root) and its value.
#[derive(Debug)]
pub(crate) struct PositionNode {
    pub key: Mark,
    pub value: Mark,
    children: Children,
}

#[derive(Debug)]
enum Children {
    Leaf,
    Map(HashMap<String, PositionNode>),
    Seq(Vec<PositionNode>),
}

impl PositionNode {
    fn leaf(key: Mark, value: Mark) -> PositionNode {
        PositionNode { key, value, children: Children::Leaf }
    }

    pub fn child_key(&self, key: &str) -> Option<&PositionNode> {
        match &self.children {
            Children::Map(map) => map.get(key),
            _ => None,
        }
    }

    pub fn child_index(&self, index: usize) -> Option<&PositionNode> {
        match &self.children {
            Children::Seq(items) => items.get(index),
            _ => None,
        }
    }
}

/// Where a node being built will go once it is complete.
enum Slot {
    /// It is a mapping key that is itself a collection; we cannot name it, so it only occupies the key.
    ComplexKey(Mark),
    /// It is a value: under this key (`None` for list items, the root, and keys we cannot name).
    Value { key: Option<String>, key_mark: Mark },
}

impl Slot {
    fn key_mark(&self) -> Mark {
        match self {
            Slot::ComplexKey(key_mark) | Slot::Value { key_mark, .. } => *key_mark,
        }
    }
}

enum Frame {
    Map {
        node: PositionNode,
        slot: Slot,
        pending_key: Option<(Option<String>, Mark)>,
    },
    Seq {
        node: PositionNode,
        slot: Slot,
    },
    /// A collection we do not index (too deep, or used as a key); counts nesting to find its end.
    Skip {
        depth: usize,
        slot: Slot,
        mark: Mark,
    },
}

/// The positions of one document.
pub(crate) struct PositionIndex {
    pub root: PositionNode,
    /// The second occurrence of the first key repeated within one mapping. serde_yaml_ng refuses such
    /// a document but does not say where the repetition is.
    pub first_duplicate_key: Option<Mark>,
}

/// Deeper nesting than any sane profile. Checked here, before serde_yaml_ng sees the text, because
/// libyaml's scanner costs time proportional to the flow nesting depth for every token: a few MiB of `[`
/// would otherwise take hours.
const MAX_NESTING: usize = 64;

/// When saphyr-parser stops at a syntax error the depth check above is incomplete; libyaml may still
/// read further. A text with this many flow openers is then refused outright.
const MAX_UNCHECKED_FLOW_OPENERS: usize = 1024;

/// Why a text is refused before it reaches serde_yaml_ng.
pub(crate) struct Refusal {
    pub mark: Mark,
    pub message: String,
}

/// Indexes the first document of `text` and checks the nesting depth of every document. A syntax error
/// is not a refusal (serde_yaml_ng reports those, authoritatively); the index then holds what was seen.
pub(crate) fn index_positions(text: &str) -> Result<PositionIndex, Refusal> {
    let mut builder = Builder { stack: Vec::new(), root: None, first_duplicate_key: None };
    let mut depth: usize = 0;
    for result in Parser::new_from_str(text) {
        let (event, span) = match result {
            Ok(event) => event,
            Err(error) => {
                let flow_openers = text.bytes().filter(|byte| matches!(byte, b'[' | b'{')).count();
                if flow_openers > MAX_UNCHECKED_FLOW_OPENERS {
                    return Err(Refusal {
                        mark: Mark::from_marker(*error.marker()),
                        message: format!("the YAML is too complex to check safely: {}", error.info()),
                    });
                }
                break;
            }
        };
        let mark = Mark::from_marker(span.start);
        match &event {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Refusal { mark, message: format!("nested more than {MAX_NESTING} levels deep") });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
        // Later documents are only depth-checked: serde_yaml_ng refuses a second document anyway.
        if builder.root.is_none() {
            builder.event(event, mark);
        }
    }
    Ok(PositionIndex {
        root: builder.root.unwrap_or_else(|| PositionNode::leaf(Mark::START, Mark::START)),
        first_duplicate_key: builder.first_duplicate_key,
    })
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<PositionNode>,
    first_duplicate_key: Option<Mark>,
}

impl Builder {
    fn event(&mut self, event: Event, mark: Mark) {
        match event {
            Event::Scalar(text, ..) => self.scalar(Some(text.into_owned()), mark),
            Event::Alias(_) => self.scalar(None, mark),
            Event::MappingStart(..) => self.open(mark, true),
            Event::SequenceStart(..) => self.open(mark, false),
            Event::MappingEnd | Event::SequenceEnd => self.close(),
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::DocumentEnd => {}
        }
    }

    /// Decides what the next node is: a key, a map value, a list item, or the root.
    fn take_slot(&mut self, mark: Mark) -> Slot {
        match self.stack.last_mut() {
            Some(Frame::Map { pending_key, .. }) => match pending_key.take() {
                Some((key, key_mark)) => Slot::Value { key, key_mark },
                None => Slot::ComplexKey(mark),
            },
            _ => Slot::Value { key: None, key_mark: mark },
        }
    }

    fn scalar(&mut self, text: Option<String>, mark: Mark) {
        if let Some(Frame::Skip { .. }) = self.stack.last() {
            return;
        }
        if let Some(Frame::Map { pending_key: pending @ None, .. }) = self.stack.last_mut() {
            *pending = Some((text, mark));
            return;
        }
        let slot = self.take_slot(mark);
        let key_mark = slot.key_mark();
        self.attach(slot, PositionNode::leaf(key_mark, mark));
    }

    fn open(&mut self, mark: Mark, is_map: bool) {
        if let Some(Frame::Skip { depth, .. }) = self.stack.last_mut() {
            *depth += 1;
            return;
        }
        let slot = self.take_slot(mark);
        let key_mark = slot.key_mark();
        let frame = if matches!(slot, Slot::ComplexKey(_)) || self.stack.len() >= MAX_DEPTH {
            Frame::Skip { depth: 1, slot, mark }
        } else if is_map {
            let node = PositionNode { key: key_mark, value: mark, children: Children::Map(HashMap::new()) };
            Frame::Map { node, slot, pending_key: None }
        } else {
            let node = PositionNode { key: key_mark, value: mark, children: Children::Seq(Vec::new()) };
            Frame::Seq { node, slot }
        };
        self.stack.push(frame);
    }

    fn close(&mut self) {
        if let Some(Frame::Skip { depth, .. }) = self.stack.last_mut()
            && *depth > 1
        {
            *depth -= 1;
            return;
        }
        let (slot, node) = match self.stack.pop() {
            Some(Frame::Map { node, slot, .. } | Frame::Seq { node, slot }) => (slot, node),
            Some(Frame::Skip { slot, mark, .. }) => {
                let key_mark = slot.key_mark();
                (slot, PositionNode::leaf(key_mark, mark))
            }
            None => return,
        };
        self.attach(slot, node);
    }

    fn attach(&mut self, slot: Slot, node: PositionNode) {
        let parent = self.stack.last_mut();
        match (slot, parent) {
            (Slot::ComplexKey(mark), Some(Frame::Map { pending_key, .. })) => *pending_key = Some((None, mark)),
            (Slot::Value { key: Some(key), .. }, Some(Frame::Map { node: parent, .. })) => {
                if let Children::Map(map) = &mut parent.children {
                    match map.entry(key) {
                        std::collections::hash_map::Entry::Occupied(_) => {
                            self.first_duplicate_key.get_or_insert(node.key);
                        }
                        std::collections::hash_map::Entry::Vacant(slot) => {
                            slot.insert(node);
                        }
                    }
                }
            }
            (Slot::Value { .. }, Some(Frame::Seq { node: parent, .. })) => {
                if let Children::Seq(items) = &mut parent.children {
                    items.push(node);
                }
            }
            (_, None) => self.root = Some(node),
            _ => {}
        }
    }
}
