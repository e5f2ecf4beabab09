//! How errors display: positions left out when unknown.

use std::path::PathBuf;

use super::*;

#[test]
fn error_display_omits_unknown_positions() {
    let file = PathBuf::from("config/modules.yaml");
    let whole = ConfigError::new(&file, "missing", "create it");
    assert_eq!(
        whole.to_string(),
        "config/modules.yaml: missing\n  hint: create it"
    );
    let line_only = ConfigError::new(&file, "bad", "").at(Some(3), None);
    assert_eq!(line_only.to_string(), "config/modules.yaml:3: bad");
    let both = ConfigErrors(vec![whole.clone(), line_only.at(Some(3), Some(7))]);
    assert_eq!(
        both.to_string(),
        "config/modules.yaml: missing\n  hint: create it\n\
         config/modules.yaml:3:7: bad\n\
         2 configuration errors; nothing was started"
    );
    assert_eq!(
        ConfigErrors(vec![whole]).to_string(),
        "config/modules.yaml: missing\n  hint: create it"
    );
}
