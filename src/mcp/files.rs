//! A run's files in MCP terms: content blocks in the tool result (images as `image`, other
//! files embedded as resources without a session or linked with one), and a session's files
//! as resources (`resources/list`, `resources/read`).

use base64::Engine as _;
use rmcp::model::{
    CacheScope, ContentBlock, ListResourcesResult, ReadResourceResult, Resource, ResourceContents,
};

use crate::contract::{ExecutionResult, FileInfo};
use crate::service::{ResourceContent, ResourceEntry, is_text_file};

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The content blocks for a result's files, after its text block.
pub fn file_blocks(result: &ExecutionResult) -> Vec<ContentBlock> {
    result.files.iter().filter_map(file_block).collect()
}

fn file_block(file: &FileInfo) -> Option<ContentBlock> {
    if let Some(content) = &file.content {
        if crate::workspace::is_raster_image(&file.media_type) {
            return Some(ContentBlock::image(base64(content), &file.media_type));
        }
        // Without a session nothing can read it later: it comes embedded.
        let uri = file
            .uri
            .clone()
            .unwrap_or_else(|| format!("file://{}", file.path));
        let contents = if is_text_file(file) {
            ResourceContents::text(String::from_utf8_lossy(content), uri)
        } else {
            ResourceContents::blob(base64(content), uri)
        };
        return Some(ContentBlock::resource(
            contents.with_mime_type(&file.media_type),
        ));
    }
    // A session's file, or one over the result's size budget: a link, if it can be read.
    let uri = file.uri.as_ref()?;
    Some(ContentBlock::resource_link(
        Resource::new(uri, &file.path)
            .with_mime_type(&file.media_type)
            .with_size(file.size),
    ))
}

/// `resources/list`: the caller's sessions' files. Private to the caller, and never fresh
/// for long (the code changes them).
pub fn list_result(entries: Vec<ResourceEntry>) -> ListResourcesResult {
    let resources = entries
        .into_iter()
        .map(|e| {
            Resource::new(e.uri, e.name)
                .with_mime_type(e.media_type)
                .with_size(e.size)
        })
        .collect();
    ListResourcesResult::with_all_items(resources)
        .with_ttl_ms(0)
        .with_cache_scope(CacheScope::Private)
}

pub fn read_result(content: ResourceContent) -> ReadResourceResult {
    let is_text = crate::workspace::is_text(&content.media_type)
        && std::str::from_utf8(&content.bytes).is_ok();
    let contents = if is_text {
        ResourceContents::text(String::from_utf8_lossy(&content.bytes), content.uri)
    } else {
        ResourceContents::blob(base64(&content.bytes), content.uri)
    };
    ReadResourceResult::new(vec![contents.with_mime_type(content.media_type)])
        .with_ttl_ms(0)
        .with_cache_scope(CacheScope::Private)
}
