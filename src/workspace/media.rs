//! The media type of a file a run produced, for the result's file list and its content blocks.
//! An image type is claimed only when the bytes carry that format's signature: a client shows
//! an `image` block as a picture, so a `.png` that is not a PNG is just bytes.

/// Image formats a result may show as `image` content.
const IMAGE_SIGNATURES: &[(&str, &[u8])] = &[
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", b"\xff\xd8\xff"),
    ("image/gif", b"GIF87a"),
    ("image/gif", b"GIF89a"),
];

/// By extension, for everything that is not a signed image format.
const BY_EXTENSION: &[(&str, &str)] = &[
    ("txt", "text/plain"),
    ("log", "text/plain"),
    ("md", "text/markdown"),
    ("csv", "text/csv"),
    ("tsv", "text/tab-separated-values"),
    ("json", "application/json"),
    ("jsonl", "application/jsonl"),
    ("html", "text/html"),
    ("htm", "text/html"),
    ("xml", "application/xml"),
    ("svg", "image/svg+xml"),
    ("yaml", "application/yaml"),
    ("yml", "application/yaml"),
    ("toml", "application/toml"),
    ("js", "text/javascript"),
    ("ts", "text/typescript"),
    ("py", "text/x-python"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
];

/// The media type of `name` with content `bytes` (`application/octet-stream` if unknown).
pub fn media_type(name: &str, bytes: &[u8]) -> &'static str {
    if let Some((media, _)) = IMAGE_SIGNATURES
        .iter()
        .find(|(_, sig)| bytes.starts_with(sig))
    {
        return media;
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return "image/webp";
    }
    by_extension(BY_EXTENSION, name).unwrap_or("application/octet-stream")
}

/// The media type `table` gives `name`'s extension (compared without case).
fn by_extension(table: &[(&str, &'static str)], name: &str) -> Option<&'static str> {
    let (_, extension) = name.rsplit_once('.')?;
    table
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(extension))
        .map(|(_, media)| *media)
}

/// The media type `name` suggests, without its content (a listing): image types by extension
/// too, since no content is shown as an image on the strength of this answer.
pub fn media_type_by_name(name: &str) -> &'static str {
    const IMAGES: &[(&str, &str)] = &[
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
    ];
    by_extension(IMAGES, name).unwrap_or_else(|| media_type(name, &[]))
}

/// Whether a client may show `media` as an `image` block. SVG is not: it is a document that
/// can carry script and links, so it is returned as a file (text), never rendered by Warden.
pub fn is_raster_image(media: &str) -> bool {
    matches!(
        media,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

/// Whether `media` is text (returned as text, not base64).
pub fn is_text(media: &str) -> bool {
    media.starts_with("text/")
        || matches!(
            media,
            "application/json"
                | "application/jsonl"
                | "application/xml"
                | "image/svg+xml"
                | "application/yaml"
                | "application/toml"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_known_by_their_signature_not_their_name() {
        assert_eq!(
            media_type("chart.png", b"\x89PNG\r\n\x1a\n...."),
            "image/png"
        );
        assert_eq!(media_type("a.bin", b"GIF89a..."), "image/gif");
        assert_eq!(media_type("x", b"RIFF\0\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(
            media_type("fake.png", b"<script>"),
            "application/octet-stream"
        );
        assert_eq!(media_type("photo.JPG", b"\xff\xd8\xff\xe0"), "image/jpeg");
    }

    #[test]
    fn other_files_are_known_by_extension() {
        assert_eq!(media_type("data.CSV", b"a,b"), "text/csv");
        assert_eq!(media_type("chart.svg", b"<svg/>"), "image/svg+xml");
        assert_eq!(media_type("noext", b"hi"), "application/octet-stream");
        assert_eq!(media_type_by_name("charts/a.PNG"), "image/png");
        assert_eq!(media_type_by_name("a.csv"), "text/csv");
        assert!(!is_raster_image("image/svg+xml"));
        assert!(is_text("image/svg+xml") && is_text("text/csv") && !is_text("image/png"));
    }
}
