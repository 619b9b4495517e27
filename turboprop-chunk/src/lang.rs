//! The languages with a grammar: file extension to [`Lang`], the tree-sitter grammar, and
//! per language which nodes are definitions (their kind, name and body), which are comments
//! or attributes that belong to the definition after them.
//!
//! Definition kinds come from a small fixed vocabulary: `function`, `method`, `class`,
//! `struct`, `enum`, `trait`, `interface`, `impl`, `type`, `module`, `const`, `macro` (and
//! `section` for Markdown). A function directly inside a class-like definition is a `method`.

use tree_sitter::{Language, Node};

/// A language cut by its syntax tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// `.rs`
    Rust,
    /// `.py`, `.pyi`, `.pyw`
    Python,
    /// `.ts`, `.mts`, `.cts`
    TypeScript,
    /// `.tsx`
    Tsx,
    /// `.js`, `.mjs`, `.cjs`, `.jsx` (the JavaScript grammar parses JSX)
    JavaScript,
    /// `.go`
    Go,
    /// `.java`
    Java,
    /// `.c`, `.h`
    C,
    /// `.cc`, `.cpp`, `.cxx`, `.c++`, `.hh`, `.hpp`, `.hxx`, `.h++`, `.ipp`
    Cpp,
}

impl Lang {
    /// A short lowercase name (`rust`, `python`, `typescript`, `tsx`, `javascript`, `go`,
    /// `java`, `c`, `cpp`).
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::TypeScript => "typescript",
            Lang::Tsx => "tsx",
            Lang::JavaScript => "javascript",
            Lang::Go => "go",
            Lang::Java => "java",
            Lang::C => "c",
            Lang::Cpp => "cpp",
        }
    }

    /// The tree-sitter grammar.
    pub(crate) fn grammar(self) -> Language {
        match self {
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::Java => tree_sitter_java::LANGUAGE.into(),
            Lang::C => tree_sitter_c::LANGUAGE.into(),
            Lang::Cpp => tree_sitter_cpp::LANGUAGE.into(),
        }
    }

    /// Comments, attributes and decorators: they belong to the node right after them when no
    /// blank line separates them.
    pub(crate) fn is_attachable(self, kind: &str) -> bool {
        match kind {
            "comment" | "line_comment" | "block_comment" | "decorator" => true,
            "attribute_item" => self == Lang::Rust,
            _ => false,
        }
    }
}

/// The language of a file, from its extension (case-insensitive); `None` when turboprop has
/// no grammar for it (Markdown is cut by headings without one, see [`crate::chunk_file`]).
///
/// ```
/// use turboprop_chunk::{language_for, Lang};
///
/// assert_eq!(language_for("src/table.rs"), Some(Lang::Rust));
/// assert_eq!(language_for("web/App.TSX"), Some(Lang::Tsx));
/// assert_eq!(language_for("README.md"), None);
/// assert_eq!(language_for("Makefile"), None);
/// ```
pub fn language_for(path: &str) -> Option<Lang> {
    let ext = extension(path)?;
    Some(match ext.as_str() {
        "rs" => Lang::Rust,
        "py" | "pyi" | "pyw" => Lang::Python,
        "ts" | "mts" | "cts" => Lang::TypeScript,
        "tsx" => Lang::Tsx,
        "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
        "go" => Lang::Go,
        "java" => Lang::Java,
        "c" | "h" => Lang::C,
        "cc" | "cpp" | "cxx" | "c++" | "hh" | "hpp" | "hxx" | "h++" | "ipp" => Lang::Cpp,
        _ => return None,
    })
}

/// The lowercase extension of the file name of `path`.
pub(crate) fn extension(path: &str) -> Option<String> {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty()).then(|| ext.to_ascii_lowercase())
}

/// Where a node lies, which decides what counts as a definition there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Where {
    /// A file, module or namespace: every definition kind.
    Top,
    /// Inside a class, impl, trait, interface, struct or enum: functions are methods.
    Member,
    /// Inside a function body: only nested functions and types, not constants.
    Body,
}

impl Where {
    /// Where the units inside a definition of `kind` lie.
    pub(crate) fn inside(kind: &str) -> Where {
        match kind {
            "class" | "impl" | "trait" | "interface" | "struct" | "enum" => Where::Member,
            "module" => Where::Top,
            _ => Where::Body,
        }
    }
}

/// A definition found in the tree.
pub(crate) struct DefNode<'t> {
    pub(crate) kind: &'static str,
    /// The name as written (not yet prefixed with the enclosing symbols).
    pub(crate) name: String,
    /// The signature starts here (after decorators and attributes).
    pub(crate) sig_start: usize,
    /// The node holding the inner definitions or statements, if any.
    pub(crate) body: Option<Node<'t>>,
}

/// Whether `node` (lying at `at`) is a definition, and which.
pub(crate) fn definition<'t>(
    lang: Lang,
    node: Node<'t>,
    at: Where,
    text: &[u8],
) -> Option<DefNode<'t>> {
    let kind = node.kind();
    // Wrappers: the definition is inside.
    let inner = match (lang, kind) {
        (Lang::Python, "decorated_definition") => node.child_by_field_name("definition"),
        (Lang::JavaScript | Lang::TypeScript | Lang::Tsx, "export_statement") => {
            node.child_by_field_name("declaration")
        }
        (Lang::TypeScript | Lang::Tsx, "ambient_declaration" | "expression_statement") => {
            node.named_child(0)
        }
        (Lang::Cpp, "template_declaration") => last_named_child(node),
        _ => None,
    };
    if let Some(inner) = inner {
        return definition(lang, inner, at, text);
    }
    let field_name = |field: &str| node.child_by_field_name(field).map(|n| name_text(n, text));
    let body = node.child_by_field_name("body");
    let (label, name, body): (&'static str, Option<String>, Option<Node<'t>>) = match (lang, kind) {
        (Lang::Rust, "function_item" | "function_signature_item") => {
            ("function", field_name("name"), body)
        }
        (Lang::Rust, "struct_item" | "union_item") => ("struct", field_name("name"), body),
        (Lang::Rust, "enum_item") => ("enum", field_name("name"), body),
        (Lang::Rust, "trait_item") => ("trait", field_name("name"), body),
        (Lang::Rust, "impl_item") => ("impl", field_name("type").map(strip_generics), body),
        (Lang::Rust, "mod_item") => ("module", field_name("name"), body),
        (Lang::Rust, "type_item") => ("type", field_name("name"), None),
        (Lang::Rust, "const_item" | "static_item") => ("const", field_name("name"), None),
        (Lang::Rust, "macro_definition") => ("macro", field_name("name"), None),

        (Lang::Python, "function_definition") => ("function", field_name("name"), body),
        (Lang::Python, "class_definition") => ("class", field_name("name"), body),

        (
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx,
            "function_declaration" | "generator_function_declaration" | "function_signature",
        ) => ("function", field_name("name"), body),
        (
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx,
            "class_declaration" | "abstract_class_declaration",
        ) => ("class", field_name("name"), body),
        (
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx,
            "method_definition" | "method_signature" | "abstract_method_signature",
        ) => ("method", field_name("name"), body),
        (Lang::JavaScript | Lang::TypeScript | Lang::Tsx, "lexical_declaration")
        | (Lang::JavaScript | Lang::TypeScript | Lang::Tsx, "variable_declaration") => {
            return js_variable(node, at, text);
        }
        (Lang::TypeScript | Lang::Tsx, "interface_declaration") => {
            ("interface", field_name("name"), body)
        }
        (Lang::TypeScript | Lang::Tsx, "type_alias_declaration") => {
            ("type", field_name("name"), None)
        }
        (Lang::TypeScript | Lang::Tsx, "enum_declaration") => ("enum", field_name("name"), body),
        (Lang::TypeScript | Lang::Tsx, "internal_module" | "module") => {
            ("module", field_name("name"), body)
        }

        (Lang::Go, "function_declaration") => ("function", field_name("name"), body),
        (Lang::Go, "method_declaration") => {
            let name = field_name("name")?;
            let receiver = node
                .child_by_field_name("receiver")
                .and_then(|r| r.named_child(0))
                .and_then(|p| p.child_by_field_name("type"))
                .map(|t| go_receiver(&name_text(t, text)));
            let name = match receiver {
                Some(r) if !r.is_empty() => format!("{r}::{name}"),
                _ => name,
            };
            ("method", Some(name), body)
        }
        (Lang::Go, "type_declaration") => {
            let spec = single_named_child(node)?;
            let ty = spec.child_by_field_name("type");
            let (label, body) = match ty.map(|t| t.kind()) {
                Some("struct_type") => ("struct", ty.and_then(|t| t.named_child(0))),
                Some("interface_type") => ("interface", ty),
                _ => ("type", None),
            };
            let name = spec.child_by_field_name("name").map(|n| name_text(n, text));
            (label, name, body)
        }
        (Lang::Go, "const_declaration") => {
            let spec = node.named_child(0)?;
            let name = spec.child_by_field_name("name").map(|n| name_text(n, text));
            ("const", name, None)
        }

        (Lang::Java, "class_declaration" | "record_declaration") => {
            ("class", field_name("name"), body)
        }
        (Lang::Java, "interface_declaration" | "annotation_type_declaration") => {
            ("interface", field_name("name"), body)
        }
        (Lang::Java, "enum_declaration") => ("enum", field_name("name"), body),
        (
            Lang::Java,
            "method_declaration" | "constructor_declaration" | "compact_constructor_declaration",
        ) => ("method", field_name("name"), body),

        (Lang::C | Lang::Cpp, "function_definition") => {
            let name = node
                .child_by_field_name("declarator")
                .and_then(|d| declarator_name(d, text));
            ("function", name, body)
        }
        (Lang::C | Lang::Cpp, "struct_specifier" | "union_specifier") if body.is_some() => {
            ("struct", field_name("name"), body)
        }
        (Lang::C | Lang::Cpp, "enum_specifier") if body.is_some() => {
            ("enum", field_name("name"), body)
        }
        (Lang::Cpp, "class_specifier") if body.is_some() => ("class", field_name("name"), body),
        (Lang::C | Lang::Cpp, "type_definition") => {
            let name = node
                .child_by_field_name("declarator")
                .and_then(|d| declarator_name(d, text));
            let body = node
                .child_by_field_name("type")
                .and_then(|t| t.child_by_field_name("body"));
            ("type", name, body)
        }
        (Lang::C | Lang::Cpp, "preproc_def") => ("const", field_name("name"), None),
        (Lang::C | Lang::Cpp, "preproc_function_def") => ("macro", field_name("name"), None),
        (Lang::Cpp, "namespace_definition") => ("module", field_name("name"), body),
        (Lang::Cpp, "alias_declaration" | "concept_definition") => {
            ("type", field_name("name"), None)
        }
        _ => return None,
    };
    let name = name.filter(|n| !n.is_empty())?;
    if at == Where::Body && label == "const" {
        return None;
    }
    let label = if at == Where::Member && label == "function" {
        "method"
    } else {
        label
    };
    Some(DefNode {
        kind: label,
        name,
        sig_start: signature_start(lang, node),
        body,
    })
}

/// `const f = () => {}` (a function), `const Table = class {}`, or a top-level `const X = 3`.
fn js_variable<'t>(node: Node<'t>, at: Where, text: &[u8]) -> Option<DefNode<'t>> {
    let declarator = single_named_child(node)?;
    let name = declarator.child_by_field_name("name")?;
    if name.kind() != "identifier" {
        return None;
    }
    let value = declarator.child_by_field_name("value");
    let (kind, body) = match value.map(|v| v.kind()) {
        Some("arrow_function" | "function_expression" | "function" | "generator_function") => {
            let body = value
                .and_then(|v| v.child_by_field_name("body"))
                .filter(|b| b.kind() == "statement_block");
            ("function", body)
        }
        Some("class") => ("class", value.and_then(|v| v.child_by_field_name("body"))),
        _ => {
            let is_const = node.child(0).is_some_and(|k| k.kind() == "const");
            if at != Where::Top || !is_const {
                return None;
            }
            ("const", None)
        }
    };
    Some(DefNode {
        kind,
        name: name_text(name, text),
        sig_start: node.start_byte(),
        body,
    })
}

/// The signature starts at the first child that is not a decorator, attribute or comment.
fn signature_start(lang: Lang, node: Node<'_>) -> usize {
    let mut cursor = node.walk();
    let first = node
        .children(&mut cursor)
        .find(|c| !lang.is_attachable(c.kind()) && c.kind() != "attribute_item");
    first.map_or(node.start_byte(), |c| c.start_byte())
}

fn single_named_child(node: Node<'_>) -> Option<Node<'_>> {
    let mut cursor = node.walk();
    let mut named = node
        .named_children(&mut cursor)
        .filter(|c| !c.kind().contains("comment"));
    let first = named.next()?;
    named.next().is_none().then_some(first)
}

fn last_named_child(node: Node<'_>) -> Option<Node<'_>> {
    let count = node.named_child_count();
    node.named_child(count.checked_sub(1)?)
}

/// The name declared by a C/C++ declarator (`*f(int)` -> `f`, `Table::deal()` -> `Table::deal`).
fn declarator_name(mut node: Node<'_>, text: &[u8]) -> Option<String> {
    for _ in 0..16 {
        match node.kind() {
            "identifier"
            | "field_identifier"
            | "qualified_identifier"
            | "destructor_name"
            | "operator_name"
            | "type_identifier"
            | "template_function"
            | "primitive_type" => {
                return Some(name_text(node, text));
            }
            _ => {}
        }
        node = match node.child_by_field_name("declarator") {
            Some(inner) => inner,
            None => last_named_child(node)?,
        };
    }
    None
}

/// `*Table[T]` -> `Table`.
fn go_receiver(ty: &str) -> String {
    let ty = ty.trim_start_matches(['*', ' ']);
    ty.split('[').next().unwrap_or(ty).trim().to_owned()
}

/// `Table<T>` -> `Table`.
fn strip_generics(name: String) -> String {
    match name.split_once('<') {
        Some((head, _)) => head.trim().to_owned(),
        None => name,
    }
}

/// The text of a name node: lossy UTF-8, whitespace collapsed, at most 120 characters.
pub(crate) fn name_text(node: Node<'_>, text: &[u8]) -> String {
    let bytes = text.get(node.byte_range()).unwrap_or_default();
    collapse(&String::from_utf8_lossy(bytes), 120)
}

/// Whitespace runs to one space, trimmed, cut to at most `max` characters.
pub(crate) fn collapse(s: &str, max: usize) -> String {
    let mut out = String::new();
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    match out.char_indices().nth(max) {
        Some((at, _)) => out[..at].to_owned(),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions() {
        assert_eq!(language_for("a/b/c.PY"), Some(Lang::Python));
        assert_eq!(language_for("x.hpp"), Some(Lang::Cpp));
        assert_eq!(language_for(".rs"), None);
        assert_eq!(language_for("dir.rs/file"), None);
        assert_eq!(language_for("win\\path\\m.go"), Some(Lang::Go));
    }

    #[test]
    fn names() {
        assert_eq!(go_receiver("*Table[T]"), "Table");
        assert_eq!(strip_generics("Table<T>".into()), "Table");
        assert_eq!(collapse("  a \n b  ", 120), "a b");
        assert_eq!(collapse("größe", 3), "grö");
    }
}
