//! The built-in template library, embedded in the binary so it works from any directory.
//!
//! Modules are addressed by their dotted path without the template name, as in PyRates:
//! `model_templates.montbrio.simple_montbrio` → the YAML text of that file.

/// Every built-in module: (dotted module path, YAML text).
pub fn modules() -> &'static [(&'static str, &'static str)] {
    MODULES
}

/// The YAML text of a built-in module, if there is one.
pub fn module_source(dotted: &str) -> Option<&'static str> {
    MODULES.iter().find(|(name, _)| *name == dotted).map(|(_, text)| *text)
}

static MODULES: &[(&str, &str)] = &[];
