//! `interpool-node backup` and `interpool-node restore`: online backups of a node's data
//! directory, and a new data directory from one.
//!
//! A backup is taken while the node runs: the database is opened as a RocksDB secondary
//! instance (no lock, nothing written to the node's folder; the same way `audit` reads it)
//! and every record of every column family is copied into a new database under
//! `OUT/db`, as the chain stood at that moment (a commit is one atomic batch, so the copy
//! is a consistent chain, checkpoint included). `OUT/backup.json` says what it is: the
//! genesis hash it belongs to, its height, its checkpoint.
//!
//! `restore` copies a backup's database into a new data directory, after checking the
//! backup is whole (its description matches its database) and, given `--genesis`, that it
//! belongs to that chain. A node started on a data directory of another chain refuses to
//! start in any case (the database is bound to its genesis hash).
//!
//! Validators: a backup holds the consensus state (the last votes) as it was when the
//! backup was taken. A validator restored from it must not sign again what it signed after
//! that moment; restore a validator only from a backup taken after it stopped, or restore
//! into an observer (the data directories have the same form), as ADR 0011 explains.

use std::path::{Path, PathBuf};
use std::time::Instant;

use interpool_contracts::Hash;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::storage::{StorageError, Store};

/// Format version of `backup.json`.
pub const BACKUP_FORMAT: u32 = 1;

/// `OUT/backup.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// [`BACKUP_FORMAT`].
    pub format: u32,
    /// The genesis hash of the chain.
    pub genesis_hash: Hash,
    /// The last committed height in the backup.
    pub height: u64,
    /// The height of the state checkpoint in the backup (0: none; a node started on it
    /// replays from the genesis).
    pub checkpoint_height: u64,
    /// Records copied.
    pub records: u64,
    /// Their size in bytes (keys and values).
    pub bytes: u64,
    /// When it was taken (Unix seconds).
    pub created_unix: u64,
    /// How long taking it took, in milliseconds.
    pub millis: u64,
}

/// Why a backup or a restore failed.
#[derive(Debug, Error)]
pub enum BackupError {
    /// The source has no database.
    #[error("{0} holds no node database (expected {0}/db)")]
    NoDatabase(PathBuf),
    /// The target exists already.
    #[error("{0} exists already: a backup or restore never overwrites anything")]
    Exists(PathBuf),
    /// The database is not bound to a chain yet.
    #[error("the database in {0} belongs to no chain yet (the node never started)")]
    Unbound(PathBuf),
    /// The backup belongs to another chain.
    #[error(
        "the backup belongs to another chain (genesis {found}); the genesis given is {expected}"
    )]
    OtherChain {
        /// The backup's genesis hash.
        found: Hash,
        /// The genesis given.
        expected: Hash,
    },
    /// The backup's description does not match its database.
    #[error("the backup in {path} is not whole: {message}")]
    Damaged {
        /// The backup.
        path: PathBuf,
        /// What differs.
        message: String,
    },
    /// Storage.
    #[error("database: {0}")]
    Storage(#[from] StorageError),
    /// Files.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Takes a backup of the node database in `data_dir` (running or not) into `out`, which
/// must not exist.
pub fn backup(data_dir: &Path, out: &Path) -> Result<BackupInfo, BackupError> {
    let started = Instant::now();
    let source = data_dir.join("db");
    if !source.join("CURRENT").is_file() {
        return Err(BackupError::NoDatabase(data_dir.to_path_buf()));
    }
    if out.exists() {
        return Err(BackupError::Exists(out.to_path_buf()));
    }
    let store = Store::open_secondary(&source)?;
    let genesis_hash = store
        .genesis()?
        .ok_or_else(|| BackupError::Unbound(data_dir.to_path_buf()))?;
    let height = store.height()?;
    let checkpoint_height = store.checkpoint()?.map_or(0, |c| c.height);
    std::fs::create_dir_all(out).map_err(io(out))?;
    let (records, bytes) = store.copy_to(&out.join("db"))?;
    let info = BackupInfo {
        format: BACKUP_FORMAT,
        genesis_hash,
        height,
        checkpoint_height,
        records,
        bytes,
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let path = out.join("backup.json");
    let text = serde_json::to_string_pretty(&info).map_err(|e| BackupError::Damaged {
        path: out.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(&path, text).map_err(io(&path))?;
    Ok(info)
}

/// Makes `data_dir` (which must not hold a database) from the backup in `from`; with
/// `genesis`, refuses a backup of another chain.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    genesis: Option<Hash>,
) -> Result<BackupInfo, BackupError> {
    let path = from.join("backup.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let damaged = |message: String| BackupError::Damaged {
        path: from.to_path_buf(),
        message,
    };
    let info: BackupInfo = serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
    if info.format != BACKUP_FORMAT {
        return Err(damaged(format!(
            "format {}, expected {BACKUP_FORMAT}",
            info.format
        )));
    }
    if let Some(expected) = genesis {
        if info.genesis_hash != expected {
            return Err(BackupError::OtherChain {
                found: info.genesis_hash,
                expected,
            });
        }
    }
    let target = data_dir.join("db");
    if target.exists() {
        return Err(BackupError::Exists(target));
    }
    // The backup's own database must say what its description says.
    {
        let store = Store::open_secondary(&from.join("db"))?;
        if store.genesis()? != Some(info.genesis_hash) || store.height()? != info.height {
            return Err(damaged(
                "its database's genesis or height differs from backup.json".into(),
            ));
        }
    }
    std::fs::create_dir_all(&target).map_err(io(&target))?;
    let source = from.join("db");
    for entry in std::fs::read_dir(&source).map_err(io(&source))? {
        let entry = entry.map_err(io(&source))?;
        let file = entry.path();
        if file.is_file() {
            let copy = target.join(entry.file_name());
            std::fs::copy(&file, &copy).map_err(io(&copy))?;
        }
    }
    Ok(info)
}
