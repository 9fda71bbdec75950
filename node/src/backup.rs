//! `interpool-node backup` and `interpool-node restore`: online backups of a node's data
//! directory, and a new data directory from one.
//!
//! A backup is taken while the node runs: the database is opened as a RocksDB secondary
//! instance (no lock, nothing written to the node's folder; the same way `audit` reads it)
//! and every record of every column family is copied into a new database under
//! `OUT/db`, as the chain stood at that moment (a commit is one atomic batch, so the copy
//! is a consistent chain, checkpoint included). `OUT/backup.json` says what it is: the
//! genesis hash it belongs to, its height, its checkpoint, and how many records and bytes
//! it holds with their digest ([`ContentSummary`]). The copy is read back before the
//! backup is reported taken: a backup that cannot be restored is found while another can
//! still be taken.
//!
//! `restore` copies a backup's database record by record, the way `backup` made it, into a
//! folder next to the target (`DATA/db.restoring-…`), and renames that folder to `DATA/db`
//! only once everything checks: every record was read with RocksDB's checksums verified (a
//! missing or damaged table file fails the read), the records, bytes and digest read match
//! `backup.json`, the database's genesis and height match it, and the copy reads back as
//! the same records. Anything else is an error and leaves no `DATA/db` behind (the
//! temporary folder is removed; one killed mid-way stays, under its temporary name, and a
//! node never reads it). Given `--genesis`, restore also refuses a backup of another chain;
//! a node started on a data directory of another chain refuses to start in any case (the
//! database is bound to its genesis hash). A backup of format 1 (before the digest) is
//! restored with its records and bytes checked, and no digest.
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

use crate::storage::{ContentSummary, StorageError, Store};

/// Format version of `backup.json`: 2 records the digest of the records.
pub const BACKUP_FORMAT: u32 = 2;

/// The format before [`BACKUP_FORMAT`], still restored: without a digest, its records and
/// bytes are checked.
const FORMAT_WITHOUT_DIGEST: u32 = 1;

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
    /// The digest of the records ([`ContentSummary::digest`]); absent only in a backup of
    /// format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Hash>,
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
    /// The backup's description does not match its database, or its database cannot be
    /// read whole.
    #[error("the backup in {path} is not whole: {message}")]
    Damaged {
        /// The backup.
        path: PathBuf,
        /// What differs.
        message: String,
    },
    /// A copy just written does not read back as the records written (the disk under it
    /// lost or changed some).
    #[error("the copy in {path} does not read back as written: {message}")]
    CopyDiffers {
        /// The copy.
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

/// How `found` differs from `expected`, which `expected_by` says (`None`: it does not).
fn difference(
    found: &ContentSummary,
    expected: &ContentSummary,
    expected_by: &str,
) -> Option<String> {
    if found.records != expected.records {
        Some(format!(
            "{} records, {expected_by} says {}",
            grouped(found.records),
            grouped(expected.records)
        ))
    } else if found.bytes != expected.bytes {
        Some(format!(
            "{} bytes of records, {expected_by} says {}",
            grouped(found.bytes),
            grouped(expected.bytes)
        ))
    } else if found.digest != expected.digest {
        Some(format!(
            "the records' digest is {}, {expected_by} says {}",
            found.digest, expected.digest
        ))
    } else {
        None
    }
}

/// `1234567` as `1,234,567`.
fn grouped(number: u64) -> String {
    let digits = number.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// Reads the database just written at `path` back, and checks it holds what was written.
fn read_back(path: &Path, written: &ContentSummary) -> Result<(), BackupError> {
    let found = Store::open_secondary(path)?.summarize()?;
    match difference(&found, written, "the copy made") {
        Some(message) => Err(BackupError::CopyDiffers {
            path: path.to_path_buf(),
            message,
        }),
        None => Ok(()),
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
    let copy = out.join("db");
    let summary = store.copy_to(&copy)?;
    drop(store);
    read_back(&copy, &summary)?;
    let info = BackupInfo {
        format: BACKUP_FORMAT,
        genesis_hash,
        height,
        checkpoint_height,
        records: summary.records,
        bytes: summary.bytes,
        digest: Some(summary.digest),
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
/// `genesis`, refuses a backup of another chain. The backup is checked whole (see the
/// module's documentation) before `data_dir/db` appears; a failed restore leaves none.
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
    let recorded_digest = match (info.format, info.digest) {
        (BACKUP_FORMAT, Some(digest)) => Some(digest),
        (BACKUP_FORMAT, None) => {
            return Err(damaged("backup.json records no digest".into()));
        }
        (FORMAT_WITHOUT_DIGEST, _) => None,
        (format, _) => {
            return Err(damaged(format!(
                "format {format}, expected {BACKUP_FORMAT} (or {FORMAT_WITHOUT_DIGEST})"
            )));
        }
    };
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
    // Reading the backup fails as a damaged backup, except where the cause is not the
    // backup's (another storage format has its own message; the scratch folder is ours).
    let unreadable = |error: StorageError| match error {
        StorageError::Format { .. } | StorageError::Scratch(_) | StorageError::Folder(_) => {
            BackupError::Storage(error)
        }
        other => damaged(format!("its database cannot be read: {other}")),
    };
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    // Removed, with everything in it, on every return before the rename below.
    let staging = tempfile::Builder::new()
        .prefix("db.restoring-")
        .tempdir_in(data_dir)
        .map_err(io(data_dir))?;
    let copy = staging.path().join("db");
    let written = {
        let source = Store::open_secondary(&from.join("db")).map_err(unreadable)?;
        if source.genesis().map_err(unreadable)? != Some(info.genesis_hash)
            || source.height().map_err(unreadable)? != info.height
        {
            return Err(damaged(
                "its database's genesis or height differs from backup.json".into(),
            ));
        }
        // Record by record, reading as `backup` did: what is compared below is exactly
        // what was written.
        source.copy_to(&copy).map_err(|error| match error {
            StorageError::Unreadable { .. } => unreadable(error),
            other => BackupError::Storage(other),
        })?
    };
    let expected = ContentSummary {
        records: info.records,
        bytes: info.bytes,
        // Format 1 recorded no digest: its records and bytes are compared, and every record
        // was read with its checksums verified.
        digest: recorded_digest.unwrap_or(written.digest),
    };
    if let Some(message) = difference(&written, &expected, "backup.json") {
        return Err(damaged(message));
    }
    read_back(&copy, &written)?;
    if target.exists() {
        return Err(BackupError::Exists(target));
    }
    std::fs::rename(&copy, &target).map_err(io(&target))?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use interpool_contracts::outcome::{BlockOutcome, Outcome, Receipt};
    use interpool_contracts::primitives::sha256;
    use interpool_contracts::AccountId;

    use crate::storage::CommittedBlock;

    const GENESIS: Hash = Hash([0x6e; 32]);

    /// A block of 8 KiB that does not compress (so that the blocks' table file is mostly
    /// data blocks), with one receipt (so that the indexes hold something too).
    fn committed(height: u64) -> CommittedBlock {
        let block = (0u8..=255)
            .flat_map(|part| sha256(&[&height.to_be_bytes(), &[part]]).0)
            .collect();
        let tx_hash = sha256(&[b"tx", &height.to_be_bytes()]);
        CommittedBlock {
            height,
            block,
            certificate: vec![7; 64],
            outcome: BlockOutcome {
                height,
                receipts: vec![Receipt {
                    tx_hash,
                    height,
                    index: 0,
                    outcome: Outcome::Committed,
                }],
                released: vec![],
                expired: vec![],
                dropped: vec![],
                warned: vec![],
                gridlock: None,
                day_report: None,
                settlement: None,
                state_root: sha256(&[&height.to_be_bytes()]),
            },
            parties: vec![vec![AccountId(tx_hash.0), AccountId([9; 32])]],
            end_to_end_ids: vec![],
            remembered: None,
            checked_new: false,
        }
    }

    /// A stopped node's data directory with `height` blocks.
    fn data_dir(height: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        store.bind_genesis(&GENESIS).expect("bind");
        for height in 1..=height {
            store.commit_block(&committed(height)).expect("commit");
        }
        dir
    }

    fn damaged(result: Result<BackupInfo, BackupError>) -> String {
        match result {
            Err(error @ BackupError::Damaged { .. }) => error.to_string(),
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(info) => panic!("restored height {}", info.height),
        }
    }

    /// The files of the backup's database whose names end with `extension`, largest first.
    fn files(backup: &Path, extension: &str) -> Vec<PathBuf> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(backup.join("db"))
            .expect("list")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.extension().is_some_and(|found| found == extension))
            .map(|path| (std::fs::metadata(&path).expect("size").len(), path))
            .collect();
        files.sort();
        files.into_iter().rev().map(|(_, path)| path).collect()
    }

    fn edit_info(backup: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = backup.join("backup.json");
        let mut info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        edit(&mut info);
        std::fs::write(&path, info.to_string()).expect("write");
    }

    #[test]
    fn a_backup_restores_into_a_database_holding_the_same_records() {
        let source = data_dir(12);
        let work = tempfile::tempdir().expect("tempdir");
        let out = work.path().join("backup");
        let info = backup(source.path(), &out).expect("backup");
        assert_eq!((info.format, info.height), (BACKUP_FORMAT, 12));
        let original = Store::open_secondary(&source.path().join("db"))
            .expect("open")
            .summarize()
            .expect("summarize");
        assert_eq!(
            (info.records, info.bytes, info.digest),
            (original.records, original.bytes, Some(original.digest))
        );
        assert!(
            !files(&out, "sst").is_empty(),
            "the backup is in table files"
        );

        let restored = work.path().join("restored");
        let again = restore(&out, &restored, Some(GENESIS)).expect("restore");
        assert_eq!(again, info);
        let entries: Vec<_> = std::fs::read_dir(&restored)
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(entries, ["db"], "nothing but the database is left");
        let store = Store::open(&restored.join("db")).expect("the restored database opens");
        assert_eq!(store.height().expect("height"), 12);
        assert_eq!(store.genesis().expect("genesis"), Some(GENESIS));
        assert_eq!(store.block(7).expect("read"), Some(committed(7).block));
        assert_eq!(store.summarize().expect("summarize"), original);
        drop(store);

        // Never over a database, never another chain's.
        assert!(matches!(
            restore(&out, &restored, None),
            Err(BackupError::Exists(_))
        ));
        let elsewhere = work.path().join("elsewhere");
        assert!(matches!(
            restore(&out, &elsewhere, Some(Hash([1; 32]))),
            Err(BackupError::OtherChain { .. })
        ));
        assert!(!elsewhere.join("db").exists());

        // A backup of format 1 (no digest) is restored with its records and bytes checked.
        edit_info(&out, |json| {
            json["format"] = 1.into();
            json.as_object_mut().expect("object").remove("digest");
        });
        let older = work.path().join("older");
        restore(&out, &older, None).expect("restore format 1");
        assert_eq!(
            Store::open_secondary(&older.join("db"))
                .expect("open")
                .height()
                .expect("height"),
            12
        );
        edit_info(&out, |json| json["records"] = (original.records + 1).into());
        damaged(restore(&out, &work.path().join("older-damaged"), None));
    }

    #[test]
    fn a_backup_missing_or_with_a_damaged_table_file_restores_nothing() {
        let source = data_dir(12);
        let work = tempfile::tempdir().expect("tempdir");
        let missing = work.path().join("missing");
        let flipped = work.path().join("flipped");
        backup(source.path(), &missing).expect("backup");
        backup(source.path(), &flipped).expect("backup");
        let leaves_nothing = |data_dir: &Path| {
            // The data directory is made, but holds neither a database nor the copy.
            let left: Vec<_> = std::fs::read_dir(data_dir)
                .expect("list")
                .map(|entry| entry.expect("entry").file_name())
                .collect();
            assert!(left.is_empty(), "{left:?}");
        };

        for file in files(&missing, "sst") {
            // Each table file holds records of its own family: without any one of them
            // the backup is not whole.
            let moved = file.with_extension("moved");
            std::fs::rename(&file, &moved).expect("remove");
            let target = work.path().join("from-missing");
            // Damaged, whichever it shows first: RocksDB refusing to read, the height read
            // not the one recorded, or fewer records than were written.
            damaged(restore(&missing, &target, None));
            leaves_nothing(&target);
            std::fs::rename(&moved, &file).expect("put back");
        }
        restore(&missing, &work.path().join("whole-again"), None).expect("restore");

        // One byte changed in the middle of the largest table file (the blocks': data
        // blocks, each with its checksum).
        let largest = files(&flipped, "sst").remove(0);
        let mut bytes = std::fs::read(&largest).expect("read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&largest, bytes).expect("write");
        let target = work.path().join("from-flipped");
        let message = damaged(restore(&flipped, &target, None));
        assert!(message.contains("cannot be read"), "{message}");
        leaves_nothing(&target);
    }

    #[test]
    fn a_backup_whose_description_differs_from_its_records_restores_nothing() {
        let source = data_dir(3);
        let work = tempfile::tempdir().expect("tempdir");
        let out = work.path().join("backup");
        let info = backup(source.path(), &out).expect("backup");
        let target = work.path().join("restored");

        edit_info(&out, |json| json["records"] = (info.records + 6).into());
        let message = damaged(restore(&out, &target, None));
        let expected = format!(
            "{} records, backup.json says {}",
            grouped(info.records),
            grouped(info.records + 6)
        );
        assert!(message.contains(&expected), "{message}");
        assert!(!target.join("db").exists());

        edit_info(&out, |json| {
            json["records"] = info.records.into();
            json["bytes"] = (info.bytes - 1).into();
        });
        let message = damaged(restore(&out, &target, None));
        assert!(message.contains("bytes of records"), "{message}");

        edit_info(&out, |json| {
            json["bytes"] = info.bytes.into();
            json["digest"] = Hash([0xab; 32]).to_hex().into();
        });
        let message = damaged(restore(&out, &target, None));
        assert!(message.contains("digest"), "{message}");

        edit_info(&out, |json| json["height"] = 4.into());
        let message = damaged(restore(&out, &target, None));
        assert!(message.contains("height"), "{message}");

        edit_info(&out, |json| {
            json["height"] = 3.into();
            json.as_object_mut().expect("object").remove("digest");
        });
        let message = damaged(restore(&out, &target, None));
        assert!(message.contains("no digest"), "{message}");
        assert!(!target.join("db").exists());

        // As written, it restores.
        edit_info(&out, |json| {
            json["digest"] = info.digest.expect("digest").to_hex().into()
        });
        restore(&out, &target, None).expect("restore");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        for (number, text) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (1_234_567, "1,234,567"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ] {
            assert_eq!(grouped(number), text);
        }
    }
}
