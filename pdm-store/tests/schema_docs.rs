//! The two backends' migrations create the same tables, and `docs/data-model.md` describes each
//! (a forgotten step of CONTRIBUTING.md's "new table" checklist fails here).

use std::collections::BTreeSet;
use std::path::Path;

fn tables(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("a migrations folder") {
        let path = entry.expect("an entry").path();
        if path.extension().is_none_or(|x| x != "sql") {
            continue;
        }
        let sql = std::fs::read_to_string(&path).expect("a migration");
        for piece in sql.split("CREATE TABLE").skip(1) {
            let name: String = piece
                .trim_start()
                .trim_start_matches("IF NOT EXISTS")
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn both_backends_create_the_same_documented_tables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sqlite = tables(&root.join("migrations/sqlite"));
    let postgres = tables(&root.join("migrations/postgres"));
    assert!(sqlite.contains("readings"), "tables not found: {sqlite:?}");
    assert_eq!(
        sqlite, postgres,
        "a table is created by one backend's migrations only"
    );
    let docs = std::fs::read_to_string(root.join("../docs/data-model.md")).expect("data-model.md");
    let undocumented: Vec<_> = sqlite
        .iter()
        .filter(|t| !docs.contains(&format!("## `{t}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "tables without a `## `name`` section in docs/data-model.md: {undocumented:?}"
    );
}
