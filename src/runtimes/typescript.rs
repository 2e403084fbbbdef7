//! TypeScript: types are stripped on the host with oxc (parse, semantic analysis, the
//! TypeScript transform, codegen with a source map), and the JavaScript runs in the QuickJS
//! guest. Enums and namespaces are transformed, not just erased. Syntax errors carry the line
//! and column in the caller's TypeScript, and so do runtime tracebacks (via the source map).

use std::path::Path;

use oxc::allocator::{Allocator, TakeIn};
use oxc::ast::ast::Statement;
use oxc::codegen::{Codegen, CodegenOptions};
use oxc::diagnostics::OxcDiagnostic;
use oxc::parser::Parser;
use oxc::semantic::SemanticBuilder;
use oxc::span::SourceType;
use oxc::transformer::{TransformOptions, Transformer};

use super::javascript::{JAVASCRIPT_GUEST, reject_nul};
use super::{Language, Prepared, Runtime};
use crate::contract::{ErrorInfo, ErrorKind};
use crate::sandbox::GuestProgram;

const FILENAME: &str = "main.ts";

pub struct TypeScript;

impl Runtime for TypeScript {
    fn language(&self) -> Language {
        Language::Typescript
    }

    fn guest(&self) -> &'static GuestProgram {
        &JAVASCRIPT_GUEST
    }

    fn filename(&self) -> &'static str {
        FILENAME
    }

    fn prepare(&self, code: &str) -> Result<Prepared, ErrorInfo> {
        reject_nul(code)?;
        reject_deep_nesting(code)?;
        // oxc's parser, transformer and code generator recurse once per nesting level, with no
        // depth limit, and a Rust stack overflow aborts the whole server. Every level of
        // nesting takes at least one byte of source, and the deepest shapes measured need
        // under 1.6 KiB of stack per level, so a stack of 4 KiB per source byte cannot
        // overflow. It is reserved, not committed: only what the recursion touches is used.
        let stack = code
            .len()
            .saturating_mul(STACK_BYTES_PER_SOURCE_BYTE)
            .clamp(MIN_COMPILER_STACK, MAX_COMPILER_STACK);
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("warden-typescript".into())
                .stack_size(stack)
                .spawn_scoped(scope, || strip_types(code))
                .map_err(|e| {
                    ErrorInfo::new(
                        ErrorKind::InternalError,
                        format!("could not start the TypeScript compiler thread: {e}"),
                    )
                })?
                .join()
                .map_err(|_| {
                    ErrorInfo::new(ErrorKind::InternalError, "the TypeScript compiler failed")
                })?
        })
    }
}

/// No real program nests brackets this deep; refusing it up front keeps a hostile one from
/// costing seconds of CPU and hundreds of MiB of stack in the compiler.
const MAX_BRACKET_NESTING: usize = 1000;

/// Bracket depth, counted over the raw text (brackets inside strings count too: an
/// over-estimate is harmless at this limit).
fn reject_deep_nesting(code: &str) -> Result<(), ErrorInfo> {
    let mut depth = 0usize;
    for (offset, byte) in code.bytes().enumerate() {
        match byte {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_BRACKET_NESTING {
                    return Err(position_error(
                        code,
                        u32::try_from(offset).unwrap_or(u32::MAX),
                        &format!("brackets nest more than {MAX_BRACKET_NESTING} levels deep"),
                    ));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

const STACK_BYTES_PER_SOURCE_BYTE: usize = 4 * 1024;
const MIN_COMPILER_STACK: usize = 8 * 1024 * 1024;
const MAX_COMPILER_STACK: usize = 4 * 1024 * 1024 * 1024;

/// Generated-to-original positions (1-based lines and columns), from oxc's source map.
#[derive(Debug, Clone, Default)]
pub struct PositionMap {
    /// (generated line, generated column, original line, original column), 0-based, sorted.
    tokens: Vec<(u32, u32, u32, u32)>,
}

impl PositionMap {
    /// The original position of a generated 1-based `line:column`, if the map knows its line.
    pub fn original(&self, line: u32, column: u32) -> Option<(u32, u32)> {
        let key = (line.checked_sub(1)?, column.saturating_sub(1));
        let idx = self
            .tokens
            .partition_point(|t| (t.0, t.1) <= key)
            .checked_sub(1)?;
        let t = self.tokens[idx];
        (t.0 == key.0).then_some((
            t.2.saturating_add(1),
            t.3.saturating_add(1).saturating_add(key.1 - t.1),
        ))
    }
}

fn strip_types(code: &str) -> Result<Prepared, ErrorInfo> {
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, code, SourceType::ts()).parse();
    if let Some(e) = parsed.diagnostics.errors().next() {
        return Err(syntax_error(code, e));
    }
    if parsed.panicked {
        return Err(ErrorInfo::new(
            ErrorKind::SyntaxError,
            "the TypeScript could not be parsed",
        ));
    }
    let mut program = parsed.program;
    // Enums are transformed from the semantic model's evaluated members: without them oxc's
    // transformer panics on any `enum` (found by the sandbox_js fuzz target).
    let semantic = SemanticBuilder::new()
        .with_check_syntax_error(true)
        .with_enum_eval(true)
        .build(&program);
    if let Some(e) = semantic.diagnostics.errors().next() {
        return Err(syntax_error(code, e));
    }
    let scoping = semantic.semantic.into_scoping();
    let transformed = Transformer::new(
        &allocator,
        Path::new(FILENAME),
        &TransformOptions::default(),
    )
    .build_with_scoping(scoping, &mut program);
    if let Some(e) = transformed.diagnostics.errors().next() {
        return Err(syntax_error(code, e));
    }
    unwrap_module_syntax(code, &allocator, &mut program.body)?;
    let generated = Codegen::new()
        .with_options(CodegenOptions {
            source_map_path: Some(FILENAME.into()),
            ..CodegenOptions::default()
        })
        .build(&program);
    let positions = generated.map.map(|map| {
        let mut tokens: Vec<_> = map
            .get_tokens()
            .map(|t| {
                (
                    t.get_dst_line(),
                    t.get_dst_col(),
                    t.get_src_line(),
                    t.get_src_col(),
                )
            })
            .collect();
        tokens.sort_unstable();
        PositionMap { tokens }
    });
    Ok(Prepared {
        source: generated.code,
        positions,
    })
}

/// The sandbox runs one script, not modules: `export` on a declaration is dropped (LLM-written
/// code often has it), while a remaining runtime `import` is an error that says why.
fn unwrap_module_syntax<'a>(
    code: &str,
    allocator: &'a Allocator,
    body: &mut oxc::allocator::Vec<'a, Statement<'a>>,
) -> Result<(), ErrorInfo> {
    let ast = oxc::ast::builder::AstBuilder::new(allocator);
    for statement in body.iter_mut() {
        let unwrapped = match statement {
            Statement::ExportDeclaration(export) => {
                Some(Statement::from(export.declaration.take_in(&ast)))
            }
            // `export { a, b }` of local bindings: nothing to run.
            Statement::ExportNamedDeclaration(export) => {
                Some(Statement::new_empty_statement(export.span, &ast))
            }
            Statement::ImportDeclaration(import) => {
                return Err(position_error(
                    code,
                    import.span.start,
                    "imports are not available in the sandbox: the code runs as one script, \
                     without modules or packages",
                ));
            }
            other if other.is_module_declaration() => {
                let span = oxc::span::GetSpan::span(other);
                return Err(position_error(
                    code,
                    span.start,
                    "this export form is not supported: the code runs as one script; end it with \
                     the value to return instead",
                ));
            }
            _ => None,
        };
        if let Some(s) = unwrapped {
            *statement = s;
        }
    }
    Ok(())
}

fn syntax_error(code: &str, diagnostic: &OxcDiagnostic) -> ErrorInfo {
    let offset = diagnostic
        .labels
        .first()
        .map(|l| l.offset())
        .unwrap_or_default();
    let mut e = position_error(code, offset, &diagnostic.message);
    if let Some(help) = &diagnostic.help {
        e.message.push_str(&format!(" ({help})"));
    }
    e
}

fn position_error(code: &str, offset: u32, message: &str) -> ErrorInfo {
    let offset = (offset as usize).min(code.len());
    let before = &code[..floor_char_boundary(code, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let source_line = code[line_start..].lines().next().unwrap_or_default();
    let mut e = ErrorInfo::new(
        ErrorKind::SyntaxError,
        format!("{message} ({FILENAME}:{line}:{column})"),
    );
    e.traceback = Some(format!(
        "    at {FILENAME}:{line}:{column}\n{source_line}\n{}^",
        " ".repeat(column - 1)
    ));
    e
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(ts: &str) -> String {
        TypeScript.prepare(ts).unwrap().source
    }

    #[test]
    fn interfaces_generics_and_assertions_are_erased() {
        let out = js(
            "interface P { x: number }\nfunction id<T>(v: T): T { return v }\n\
                      const p = { x: 1 } as P;\nconst q = p!;\nconst r = { x: 2 } satisfies P;\nid(q.x + r.x)",
        );
        assert!(!out.contains("interface"), "{out}");
        assert!(!out.contains("satisfies"), "{out}");
        assert!(!out.contains(": number"), "{out}");
        assert!(out.contains("id(q.x + r.x)"), "{out}");
    }

    #[test]
    fn enums_become_objects() {
        let out = js("enum Color { Red, Green = 5 }\nColor.Green");
        assert!(
            out.contains("Color[\"Red\"] = 0") || out.contains("Color[Color[\"Red\"] = 0]"),
            "{out}"
        );
    }

    #[test]
    fn type_only_imports_vanish_and_exports_are_unwrapped() {
        let out = js(
            "import type { X } from './x';\nexport const a: number = 1;\nexport function f() { return a }\nf()",
        );
        assert!(!out.contains("import"), "{out}");
        assert!(!out.contains("export"), "{out}");
        assert!(out.contains("const a = 1"), "{out}");
    }

    #[test]
    fn runtime_imports_are_refused_with_a_position() {
        let e = TypeScript
            .prepare("const a = 1;\nimport fs from 'fs';\nfs")
            .unwrap_err();
        assert_eq!(e.kind, "SyntaxError");
        assert!(
            e.message.contains("imports are not available"),
            "{}",
            e.message
        );
        assert!(e.message.contains("main.ts:2:1"), "{}", e.message);
    }

    #[test]
    fn syntax_error_reports_line_and_column_in_the_typescript() {
        let e = TypeScript
            .prepare("let a: number = 1;\nlet b: string = ;\n")
            .unwrap_err();
        assert_eq!(e.kind, "SyntaxError");
        assert!(e.message.contains("main.ts:2:17"), "{}", e.message);
        assert!(e.traceback.unwrap().contains("let b: string = ;"));
    }

    #[test]
    fn top_level_await_is_kept() {
        assert!(js("const v: number = await Promise.resolve(1);\nv").contains("await"));
    }

    #[test]
    fn deep_brackets_are_refused_before_the_compiler_sees_them() {
        let n = 120_000;
        for code in [
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("{}1{}", "[".repeat(n), "]".repeat(n)),
            format!("{}{}", "{".repeat(n), "}".repeat(n)),
        ] {
            let e = TypeScript.prepare(&code).unwrap_err();
            assert_eq!(e.kind, "SyntaxError");
            assert!(e.message.contains("more than 1000 levels"), "{}", e.message);
            assert!(e.message.contains("main.ts:1:1001"), "{}", e.message);
        }
        let ok = format!("{}1{}", "(".repeat(999), ")".repeat(999));
        assert!(TypeScript.prepare(&ok).is_ok());
    }

    #[test]
    fn deep_nesting_without_brackets_cannot_overflow_the_servers_stack() {
        // Each of these nests ~60,000 levels; a 16 MiB stack overflows on some (measured).
        // The compiler thread's stack grows with the source, so none may abort the process.
        let n = 60_000;
        for code in [
            format!("{}1", "a?b:".repeat(n)),
            format!("{}1", "()=>".repeat(n)),
            format!("{}x", "!".repeat(4 * n)),
            format!("1{}", "+1".repeat(2 * n)),
            format!("{}1", "if(1)".repeat(n / 2)),
        ] {
            let _ = TypeScript.prepare(&code);
        }
    }

    #[test]
    fn a_forged_position_cannot_overflow_the_remapping() {
        let map = PositionMap {
            tokens: vec![(0, 0, 0, 0)],
        };
        assert_eq!(map.original(1, u32::MAX), Some((1, u32::MAX)));
        assert_eq!(map.original(0, 5), None);
    }

    #[test]
    fn positions_map_back_to_the_typescript() {
        let p = TypeScript
            .prepare(
                "interface A {\n  x: number\n}\n\nconst a: A = { x: 1 };\nthrow new Error('boom')",
            )
            .unwrap();
        let map = p.positions.unwrap();
        let generated_line = p.source.lines().position(|l| l.contains("throw")).unwrap() as u32 + 1;
        let (line, _) = map.original(generated_line, 1).unwrap();
        assert_eq!(line, 6);
    }
}
