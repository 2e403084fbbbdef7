//! Reading a WebAssembly binary's top-level custom sections, without a parser: shared by the
//! library (the Python guest's manifest) and build.rs (which keeps the manifest beside the
//! compressed guest), so it depends on nothing.

/// The Python guest's manifest (runtimes/python_guest.rs), named here so that build.rs knows it.
pub const PYTHON_MANIFEST_SECTION: &str = "warden:python-packages";

/// A component's preamble: magic, version 0x0d, layer 1.
pub const COMPONENT_PREAMBLE: &[u8] = b"\0asm\x0d\0\x01\0";

/// The payload of the first top-level custom section named `name`. Only the outermost level
/// is walked: a section's size says how far to skip, nested modules included.
pub fn custom_section<'a>(wasm: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut rest = wasm.get(COMPONENT_PREAMBLE.len()..)?;
    while let Some((&id, after_id)) = rest.split_first() {
        let (size, after_size) = leb128_u32(after_id)?;
        let body = after_size.get(..usize::try_from(size).ok()?)?;
        rest = &after_size[body.len()..];
        if id != 0 {
            continue;
        }
        let (name_len, after_len) = leb128_u32(body)?;
        let name_len = usize::try_from(name_len).ok()?;
        if after_len.get(..name_len)? == name.as_bytes() {
            return Some(&after_len[name_len..]);
        }
    }
    None
}

fn leb128_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

/// A custom section named `name` holding `payload`, as a test writes one.
#[cfg(test)]
pub fn section(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![u8::try_from(name.len()).unwrap()];
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = vec![0u8];
    let mut size = body.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        out.push(if size > 0 { byte | 0x80 } else { byte });
        if size == 0 {
            break;
        }
    }
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_manifest_after_other_sections() {
        let mut wasm = COMPONENT_PREAMBLE.to_vec();
        wasm.extend([1u8, 3, 9, 9, 9]); // a non-custom section, skipped by its size
        wasm.extend(section("other", &[0; 200]));
        wasm.extend(section(PYTHON_MANIFEST_SECTION, b"{}"));
        assert_eq!(
            custom_section(&wasm, PYTHON_MANIFEST_SECTION),
            Some(&b"{}"[..])
        );
        assert_eq!(custom_section(&wasm, "missing"), None);
    }

    #[test]
    fn truncated_or_hostile_sizes_find_nothing() {
        let mut wasm = COMPONENT_PREAMBLE.to_vec();
        wasm.extend([0u8, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(custom_section(&wasm, PYTHON_MANIFEST_SECTION), None);
        let mut cut = COMPONENT_PREAMBLE.to_vec();
        cut.extend(section(PYTHON_MANIFEST_SECTION, b"{}"));
        cut.pop();
        assert_eq!(custom_section(&cut, PYTHON_MANIFEST_SECTION), None);
        assert_eq!(custom_section(b"\0asm", PYTHON_MANIFEST_SECTION), None);
    }
}
