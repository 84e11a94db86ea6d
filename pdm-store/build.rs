//! Discovers the migrations of each backend: every `migrations/<backend>/NNNN_name.sql` becomes
//! an entry of `SQLITE_MIGRATIONS` / `POSTGRES_MIGRATIONS` (in `$OUT_DIR/migrations.rs`,
//! included by `src/migrate.rs`). A file breaking the naming rule, a gap or a duplicate
//! version fails the build, naming the file.

use std::fmt::Write as _;
use std::path::Path;

#[path = "src/migration_files.rs"]
#[allow(dead_code)]
mod migration_files;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let root = std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?;
    let out = std::env::var("OUT_DIR").map_err(|e| e.to_string())?;
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/migration_files.rs");
    let mut code = String::new();
    for (backend, constant, feature) in [
        ("sqlite", "SQLITE_MIGRATIONS", "sqlite"),
        ("postgres", "POSTGRES_MIGRATIONS", "postgres"),
    ] {
        let dir = Path::new(&root).join("migrations").join(backend);
        // A directory: cargo rescans it, so an added, renamed or edited file reruns this.
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| format!("{}: file name {n:?} is not UTF-8", dir.display()))?;
            files.push(name);
        }
        let found =
            migration_files::check(&files).map_err(|e| format!("{}: {e}", dir.display()))?;
        let _ = writeln!(code, "/// Migrations of the {backend} backend, in order (discovered in `migrations/{backend}`).");
        let _ = writeln!(code, "#[cfg(feature = \"{feature}\")]");
        let _ = writeln!(code, "pub const {constant}: &[Migration] = &[");
        for m in found {
            let path = dir.join(&m.file);
            let _ = writeln!(
                code,
                "    Migration {{ version: {}, name: {:?}, sql: include_str!({:?}) }},",
                m.version,
                m.name,
                path.display().to_string()
            );
        }
        let _ = writeln!(code, "];");
    }
    std::fs::write(Path::new(&out).join("migrations.rs"), code).map_err(|e| e.to_string())
}
