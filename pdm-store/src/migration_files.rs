//! The naming rule of migration files, shared by the build script (which fails the build when a
//! directory breaks it) and the unit tests: every file of `migrations/<backend>/` is
//! `NNNN_name.sql` (four digits, then lowercase letters, digits and underscores), and the
//! versions run from 1 without gaps or duplicates.

/// One migration file that follows the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MigrationFile {
    /// The version, from the four digits.
    pub(crate) version: i64,
    /// The name after the underscore, without `.sql`.
    pub(crate) name: String,
    /// The file name.
    pub(crate) file: String,
}

/// The migrations named by `files` (file names of one directory, in any order), sorted by
/// version; or a sentence naming what breaks the rule. Hidden files (`.gitkeep`) and editors'
/// backup and lock files (`name~`, `#name#`) are ignored.
pub(crate) fn check(files: &[String]) -> Result<Vec<MigrationFile>, String> {
    let mut found = Vec::new();
    let ignored = |f: &str| f.starts_with('.') || f.starts_with('#') || f.ends_with('~');
    for file in files.iter().filter(|f| !ignored(f)) {
        let bad = || format!("migration file '{file}' is not named NNNN_name.sql");
        let stem = file.strip_suffix(".sql").ok_or_else(bad)?;
        let (digits, name) = stem.split_once('_').ok_or_else(bad)?;
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) || !name_ok {
            return Err(bad());
        }
        let version = digits.parse().map_err(|_| bad())?;
        found.push(MigrationFile {
            version,
            name: name.to_owned(),
            file: file.clone(),
        });
    }
    found.sort_by(|a, b| (a.version, &a.file).cmp(&(b.version, &b.file)));
    for (i, m) in found.iter().enumerate() {
        let expected = i as i64 + 1;
        if m.version == 0 {
            return Err(format!(
                "'{}' has version 0; versions run from 1 without gaps",
                m.file
            ));
        }
        if m.version < expected {
            return Err(format!(
                "two migrations have version {}: '{}' and '{}'",
                m.version,
                found[i - 1].file,
                m.file
            ));
        }
        if m.version > expected {
            return Err(format!(
                "migration version {expected} is missing (the next file is '{}'); versions \
                 run from 1 without gaps",
                m.file
            ));
        }
    }
    Ok(found)
}
