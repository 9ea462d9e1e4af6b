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

/// Why a template PyRates 1.2.3 ships is not built in, if it is one of those (dotted path
/// with the template name). The list is the one the library walk test
/// (tests/python/test_pyrates_library.py) checks against PyRates' package.
pub fn left_out(dotted: &str) -> Option<&'static str> {
    if dotted.starts_with("model_templates.test_resources.") {
        return Some(
            "PyRates 1.2.3's `model_templates.test_resources` are fixtures of its own test suite, \
             not model templates; they are not built in (load them from PyRates' file by path)",
        );
    }
    LEFT_OUT.iter().find(|(name, _)| *name == dotted).map(|(_, why)| *why)
}

static LEFT_OUT: &[(&str, &str)] = &[(
    "model_templates.neural_mass_models.qif.qif_alpha_syn",
    "PyRates 1.2.3's qif_alpha_syn uses an edge template `alpha_edge` that its package does \
         not define, so PyRates cannot load it either; it is not built in (an alpha-kernel \
         synapse: `model_templates.base_templates.alpha_op` in an edge template of your own)",
)];

static MODULES: &[(&str, &str)] = &[
    (
        "model_templates.CNS_2019_Tutorial.templates",
        include_str!("model_templates/CNS_2019_Tutorial/templates.yaml"),
    ),
    (
        "model_templates.base_templates",
        include_str!("model_templates/base_templates.yaml"),
    ),
    (
        "model_templates.montbrio.simple_montbrio",
        include_str!("model_templates/montbrio/simple_montbrio.yaml"),
    ),
    (
        "model_templates.neural_mass_models.ik",
        include_str!("model_templates/neural_mass_models/ik.yaml"),
    ),
    (
        "model_templates.neural_mass_models.jansenrit",
        include_str!("model_templates/neural_mass_models/jansenrit.yaml"),
    ),
    (
        "model_templates.neural_mass_models.qif",
        include_str!("model_templates/neural_mass_models/qif.yaml"),
    ),
    (
        "model_templates.neural_mass_models.synaptic_plasticity",
        include_str!("model_templates/neural_mass_models/synaptic_plasticity.yaml"),
    ),
    (
        "model_templates.neural_mass_models.theta",
        include_str!("model_templates/neural_mass_models/theta.yaml"),
    ),
    (
        "model_templates.neural_mass_models.wilsoncowan",
        include_str!("model_templates/neural_mass_models/wilsoncowan.yaml"),
    ),
    (
        "model_templates.oscillators.kuramoto",
        include_str!("model_templates/oscillators/kuramoto.yaml"),
    ),
    (
        "model_templates.oscillators.stuartlandau",
        include_str!("model_templates/oscillators/stuartlandau.yaml"),
    ),
    (
        "model_templates.oscillators.vanderpol",
        include_str!("model_templates/oscillators/vanderpol.yaml"),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_source_known_path_returns_its_file() {
        let text = module_source("model_templates.montbrio.simple_montbrio").expect("simple_montbrio is built in");
        assert!(text.contains("\nNet3:\n"));
        assert!(module_source("model_templates.montbrio.simple_montbri").is_none());
    }

    #[test]
    fn left_out_templates_are_not_built_in() {
        for (dotted, why) in LEFT_OUT {
            let (module, name) = dotted.rsplit_once('.').expect("dotted path with a name");
            let built_in = module_source(module).is_some_and(|text| text.contains(&format!("\n{name}:\n")));
            assert!(!built_in, "{dotted} is built in but listed as left out ({why})");
        }
        assert!(left_out("model_templates.test_resources.test_backend.net0").is_some());
        assert!(left_out("model_templates.oscillators.kuramoto.kmo").is_none());
    }

    #[test]
    fn modules_paths_unique_and_rooted_in_model_templates() {
        let mut names: Vec<&str> = modules().iter().map(|(n, _)| *n).collect();
        assert!(names.iter().all(|n| n.starts_with("model_templates.")));
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a dotted module path appears twice");
    }

    /// Every built-in file must at least be YAML with one mapping per template; whether the
    /// templates load without diagnostics is checked by the integration tests.
    #[test]
    fn modules_all_parse_as_yaml_mappings() {
        use saphyr::{LoadableYamlNode, Yaml};
        for (name, text) in modules() {
            let docs = Yaml::load_from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(docs.len(), 1, "{name}: one YAML document per file");
            let map = docs[0].as_mapping().unwrap_or_else(|| panic!("{name}: not a mapping"));
            assert!(map.len() >= 3, "{name}: expected templates");
        }
    }
}
