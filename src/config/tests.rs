//! Config defaults, layering and validation.
use super::*;

/// `config.example.toml` shows every key with its default value: parsed, it is exactly the
/// defaults, and every default key appears in it.
#[test]
fn the_example_documents_every_key_with_its_default() {
    let example: Config = toml::from_str(EXAMPLE_TOML).expect("the example parses");
    let as_value = |c: &Config| toml::Value::try_from(c).unwrap();
    assert_eq!(as_value(&example), as_value(&Config::default()));
    let table: toml::Table = toml::from_str(EXAMPLE_TOML).unwrap();
    let defaults = as_value(&Config::default());
    for (section, value) in defaults.as_table().unwrap() {
        match value.as_table() {
            Some(keys) => {
                for key in keys.keys() {
                    assert!(
                        table[section].get(key).is_some(),
                        "[{section}] {key} is missing from config.example.toml"
                    );
                }
            }
            None => assert!(table.contains_key(section), "{section} missing"),
        }
    }
}
