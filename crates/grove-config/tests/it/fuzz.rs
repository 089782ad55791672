//! `load` never panics, whatever the files contain.

use grove_config::{MemoryTree, load};
use proptest::prelude::*;

/// Strings built from YAML's structural characters and config words, so that the
/// generator reaches deep into the schema code instead of failing at the first byte.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("name: app\n".to_string()),
        Just("type: php:8.3\n".to_string()),
        Just("type: python\n".to_string()),
        Just("web:\n  commands:\n    start: x\n".to_string()),
        Just("mounts:\n".to_string()),
        Just("relationships:\n".to_string()),
        Just("crons:\n".to_string()),
        Just("routes:\n".to_string()),
        Just("applications:\n".to_string()),
        Just("  ".to_string()),
        Just("- ".to_string()),
        Just(": ".to_string()),
        Just("\n".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(", ".to_string()),
        Just("&a ".to_string()),
        Just("*a ".to_string()),
        Just("!include ".to_string()),
        Just("'https://{default}/'".to_string()),
        Just("\"".to_string()),
        Just("|\n".to_string()),
        Just("~".to_string()),
        "[a-z:/.*{}0-9 ]{0,12}",
    ];
    prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

const PATHS: [&str; 7] = [
    ".platform.app.yaml",
    "app/.magento.app.yaml",
    ".platform/applications.yaml",
    ".platform/routes.yaml",
    ".platform/services.yaml",
    ".upsun/config.yaml",
    ".upsun/extra.yaml",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(files in prop::collection::vec((0..PATHS.len(), prop::collection::vec(any::<u8>(), 0..200)), 1..4)) {
        let tree = MemoryTree::new(files.iter().map(|(i, bytes)| (PATHS[*i], bytes.clone())));
        let _ = load(&tree);
    }

    #[test]
    fn yamlish_text_never_panics(files in prop::collection::vec((0..PATHS.len(), yamlish()), 1..4)) {
        let tree = MemoryTree::new(files.iter().map(|(i, text)| (PATHS[*i], text.clone())));
        if let Err(errors) = load(&tree) {
            // Rendering must not panic either.
            let _ = errors.to_string();
        }
    }
}
