//! The attachments directory (`<data_dir>/attachments`): files under generated names only.
//!
//! An upload is written to `<name>.part` and renamed to `<name>` once it is whole and accepted;
//! its record then names it. A name is 32 lowercase hex digits from the system's random source:
//! nothing a client sends ever becomes part of a path. [`FileDir::sweep`] removes what no record
//! names (a crash between writing and recording, an owner deleted by cascade).

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rand::RngCore;

/// Files older than this without a record are removed by [`FileDir::sweep`] (younger ones may
/// be an upload between its rename and its record).
pub const SWEEP_GRACE: Duration = Duration::from_secs(600);

/// The attachments directory.
#[derive(Debug, Clone)]
pub struct FileDir {
    dir: PathBuf,
}

/// Whether `name` is a generated name (and so safe to join to the directory).
pub fn is_generated(name: &str) -> bool {
    name.len() == 32
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FileDir {
    /// `<data_dir>/attachments`, created (mode 0700 on Unix) when absent.
    pub fn open(data_dir: &Path) -> io::Result<FileDir> {
        let dir = data_dir.join("attachments");
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(FileDir { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A fresh generated name.
    pub fn new_name() -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn file(&self, name: &str) -> io::Result<PathBuf> {
        if is_generated(name) {
            Ok(self.dir.join(name))
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("'{name}' is not a generated attachment name"),
            ))
        }
    }

    /// Creates `<name>.part` for writing.
    pub async fn create_part(&self, name: &str) -> io::Result<tokio::fs::File> {
        let path = self.file(name)?.with_extension("part");
        tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .await
    }

    /// Makes `<name>.part` the file `<name>`.
    pub async fn commit(&self, name: &str) -> io::Result<()> {
        let path = self.file(name)?;
        tokio::fs::rename(path.with_extension("part"), path).await
    }

    /// Removes `<name>.part` (an upload refused or cut short); absent is fine.
    pub async fn discard(&self, name: &str) {
        if let Ok(p) = self.file(name) {
            let _ = tokio::fs::remove_file(p.with_extension("part")).await;
        }
    }

    /// Opens `<name>` for reading.
    pub async fn open_file(&self, name: &str) -> io::Result<tokio::fs::File> {
        tokio::fs::File::open(self.file(name)?).await
    }

    /// Removes `<name>`; absent is fine.
    pub async fn remove(&self, name: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.file(name)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether `<name>` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.file(name).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Removes every file older than `grace` that `known` does not name (parts included);
    /// returns how many.
    pub fn sweep(&self, known: &HashSet<String>, grace: Duration) -> io::Result<usize> {
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".part").unwrap_or(&name);
            let finished = !name.ends_with(".part");
            if finished && known.contains(stem) {
                continue;
            }
            let age = entry
                .metadata()?
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if age >= grace && entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_generated_names_reach_the_disk() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = FileDir::open(tmp.path()).expect("dir");
        let name = FileDir::new_name();
        assert!(is_generated(&name), "{name}");
        assert!(dir.create_part("../../etc/passwd").await.is_err());
        assert!(dir.open_file("../pdm.db").await.is_err());
        use tokio::io::AsyncWriteExt;
        let mut f = dir.create_part(&name).await.expect("part");
        f.write_all(b"x").await.expect("write");
        drop(f);
        dir.commit(&name).await.expect("commit");
        assert!(dir.exists(&name));
        let orphan = FileDir::new_name();
        dir.create_part(&orphan).await.expect("part");
        let known: HashSet<String> = [name.clone()].into();
        assert_eq!(
            dir.sweep(&known, Duration::from_secs(3600)).expect("sweep"),
            0
        );
        assert_eq!(dir.sweep(&known, Duration::ZERO).expect("sweep"), 1);
        assert!(dir.exists(&name));
        dir.remove(&name).await.expect("remove");
        dir.remove(&name).await.expect("absent is fine");
    }
}
