//! The consensus journal (`[consensus] journal = true`): the consensus messages a validator
//! receives that are evidence (signed by a validator of the set, and valid by
//! [`SignedMessage::verify`]), appended to `DATA_DIR/consensus-journal` as a 4-byte
//! big-endian length and the message's bytes. `interpool-node equivocations` reads the
//! journals of several nodes and looks for a validator that signed two different messages
//! of one kind for one height and round: what no honest validator may do, whatever crashes
//! and restarts it went through.
//!
//! Two rules keep the journal useful for as long as the node runs:
//!
//! * **Evidence only.** Each message is checked on the journal's own thread by `evidence`,
//!   the check [`equivocations`] applies when it reads a journal, and recorded only if it
//!   passes. Before, the raw bytes were recorded before anyone verified them, so any peer
//!   able to send on the consensus channel (or a validator replaying junk) could fill the
//!   journal with bytes that could never prove anything.
//! * **The latest, not the first.** When the file reaches half of [`MAX_JOURNAL_BYTES`] it
//!   is renamed to `consensus-journal.1` (replacing the older one, atomically) and a new file
//!   is started, so the two files hold the latest half to whole of the cap. [`read`] reads
//!   both. Before, the journal stopped writing at its cap, and the check was blind to
//!   everything the node received after.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use interpool_consensus::{MessageKind, SignedMessage, StrictVerifier, ValidatorSet};
use interpool_contracts::primitives::to_hex;

/// Most bytes a journal holds, its two files together: the file being written is rotated
/// when the next record would take it past half of this.
pub const MAX_JOURNAL_BYTES: u64 = 256 << 20;
/// Messages waiting to be verified and written; beyond, they are not recorded (never a
/// slowdown).
const QUEUE: usize = 4_096;
/// Bytes of those messages: proposals may be megabytes each, so the queue is bounded in
/// bytes too (4,096 of the largest would be gigabytes).
const QUEUE_BYTES: usize = 64 << 20;

/// The writing end of a journal. Cheap to clone.
#[derive(Clone)]
pub struct Journal {
    queue: mpsc::SyncSender<Vec<u8>>,
    /// Bytes in `queue` now.
    queued: Arc<AtomicUsize>,
}

impl Journal {
    /// Appends to the journal at `path`, from a thread of its own, the messages that are
    /// evidence against `validators` (the chain's set, bound to its domain).
    /// A torn last record (a kill -9 or a full disk in the middle of a write) is cut off
    /// first, so that what is appended after it stays readable.
    pub fn open(path: &Path, validators: ValidatorSet) -> io::Result<Journal> {
        Journal::open_with_limit(path, validators, MAX_JOURNAL_BYTES)
    }

    /// [`Journal::open`] with a cap of `max_bytes` (tests use a small one).
    fn open_with_limit(
        path: &Path,
        validators: ValidatorSet,
        max_bytes: u64,
    ) -> io::Result<Journal> {
        let mut writer = Writer::open(path, max_bytes / 2)?;
        let (queue, messages) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let taken = Arc::clone(&queued);
        std::thread::Builder::new()
            .name("consensus-journal".into())
            .spawn(move || {
                while let Ok(message) = messages.recv() {
                    taken.fetch_sub(message.len(), Ordering::Relaxed);
                    // Verified here, off the network's path. The engine verifies the same
                    // message again: its verdict does not come back to the router.
                    if evidence(&message, &validators).is_none() {
                        continue;
                    }
                    if let Err(error) = writer.append(&message) {
                        tracing::warn!(%error, "consensus journal stopped");
                        return;
                    }
                }
            })?;
        Ok(Journal { queue, queued })
    }

    /// Records a received message if it is evidence (checked on the journal's thread;
    /// dropped unchecked if that thread is behind).
    pub fn record(&self, message: &[u8]) {
        let size = message.len();
        let before = self.queued.fetch_add(size, Ordering::Relaxed);
        if before.saturating_add(size) > QUEUE_BYTES
            || self.queue.try_send(message.to_vec()).is_err()
        {
            self.queued.fetch_sub(size, Ordering::Relaxed);
        }
    }
}

/// Where the journal at `path` keeps its older half: `path` with `.1` appended.
pub fn older_half(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// The file being written, rotated to [`older_half`] at `rotate_at` bytes.
struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    rotate_at: u64,
}

impl Writer {
    fn open(path: &Path, rotate_at: u64) -> io::Result<Writer> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let whole = whole_records_length(&file)?;
        if whole < file.metadata()?.len() {
            file.set_len(whole)?;
        }
        Ok(Writer {
            path: path.to_owned(),
            out: BufWriter::new(file),
            written: whole,
            rotate_at,
        })
    }

    /// Appends one record, rotating first if it would take the file past `rotate_at`.
    fn append(&mut self, message: &[u8]) -> io::Result<()> {
        let Ok(length) = u32::try_from(message.len()) else {
            return Ok(());
        };
        let size = 4u64.saturating_add(u64::from(length));
        if size > self.rotate_at {
            // Larger than a whole file may be (far beyond the network's message limit by
            // default): not recorded, so that the cap holds.
            return Ok(());
        }
        if self.written.saturating_add(size) > self.rotate_at {
            self.rotate()?;
        }
        self.out.write_all(&length.to_be_bytes())?;
        self.out.write_all(message)?;
        // Written through at once: a node killed -9 loses at most the message being
        // written (read() ignores a truncated last record, open() cuts it off).
        self.out.flush()?;
        self.written = self.written.saturating_add(size);
        Ok(())
    }

    /// The full file becomes the older half (replacing the previous one) and a new file is
    /// started. A crash at any point leaves whole files: the rename is atomic, and a crash
    /// between it and the new file's creation leaves only the older half, which [`read`]
    /// reads and the restarted node's [`Writer::open`] starts a new file beside.
    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        // Once per half cap: the older half's bytes reach the disk before its new name does.
        self.out.get_ref().sync_data()?;
        let older = older_half(&self.path);
        std::fs::rename(&self.path, &older)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = BufWriter::new(file);
        self.written = 0;
        tracing::info!(
            older = %older.display(),
            "consensus journal rotated: a new file is started, the older half replaced"
        );
        Ok(())
    }
}

/// The length of the journal's whole records, from its start.
fn whole_records_length(file: &File) -> io::Result<u64> {
    let mut reader = io::BufReader::new(file);
    let mut whole = 0u64;
    let mut prefix = [0u8; 4];
    loop {
        match reader.read_exact(&mut prefix) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(whole),
            Err(error) => return Err(error),
        }
        let length = u64::from(u32::from_be_bytes(prefix));
        let skipped = io::copy(&mut (&mut reader).take(length), &mut io::sink())?;
        if skipped < length {
            return Ok(whole);
        }
        whole = whole.saturating_add(4).saturating_add(length);
    }
}

/// Largest record a journal holds (a message is bounded by `[p2p] max_message_bytes`).
const MAX_RECORD_BYTES: u64 = 256 << 20;

/// Every message in the journal at `path`, oldest first: those of its older half
/// ([`older_half`], if the journal was ever rotated), then those of `path` itself.
/// A truncated last record, from a node killed while writing it, is ignored. A file of
/// bytes whose first record does not fit is not a journal and is refused: before, any file
/// (a config, a genesis) read as an empty journal, and the check reported "no equivocation"
/// for input it never read.
pub fn read(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    // The newer file first: should the node rotate in between, a message is read twice
    // (harmless: [`equivocations`] counts equal messages once) rather than missed.
    let newer = read_file(path);
    let older_path = older_half(path);
    let older = read_file(&older_path).map_err(|error| {
        io::Error::new(error.kind(), format!("{}: {error}", older_path.display()))
    });
    match (older, newer) {
        // Never rotated (or not a journal's path: `path`'s own verdict stands).
        (Err(error), newer) if error.kind() == io::ErrorKind::NotFound => newer,
        // Between a rotation's rename and the new file's creation.
        (Ok(older), Err(error)) if error.kind() == io::ErrorKind::NotFound => Ok(older),
        (Ok(mut older), Ok(newer)) => {
            older.extend(newer);
            Ok(older)
        }
        (Err(error), _) | (_, Err(error)) => Err(error),
    }
}

/// Every message in the one file at `path` (see [`read`]).
fn read_file(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let messages = records(&bytes);
    // A record is one network message, at most 16 MiB by default: a first length far past
    // that is not a journal's (a truncated first record, from a node killed while writing
    // it, still has a plausible one).
    let first = bytes
        .first_chunk::<4>()
        .map(|prefix| u64::from(u32::from_be_bytes(*prefix)));
    if messages.is_empty() && first.is_some_and(|length| length > MAX_RECORD_BYTES) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not a consensus journal: its first record would be {} bytes",
                first.unwrap_or_default()
            ),
        ));
    }
    Ok(messages)
}

/// The length-prefixed records of `bytes`, up to the first that does not fit (a torn last
/// record, or a torn length).
fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut rest = bytes;
    while let Some((prefix, tail)) = rest.split_first_chunk::<4>() {
        let length = u32::from_be_bytes(*prefix) as usize;
        let Some((message, tail)) = tail.split_at_checked(length) else {
            break;
        };
        messages.push(message.to_vec());
        rest = tail;
    }
    messages
}

/// The message `bytes` hold and its signer's index in `validators`, if it is evidence: it
/// decodes, and [`SignedMessage::verify`] accepts it (a validator of the set signed it for
/// this chain, and it is valid on its own, as the engine requires of every message it
/// counts). The one check for both the journal's writer and [`equivocations`]: a message
/// the writer skips is one `equivocations` would have skipped when reading it.
fn evidence(bytes: &[u8], validators: &ValidatorSet) -> Option<(usize, SignedMessage)> {
    let message = SignedMessage::decode(bytes).ok()?;
    let signer = message.verify(validators, &mut StrictVerifier).ok()?;
    Some((signer, message))
}

/// Two validly signed, different messages of one kind by one validator for one height and
/// round.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Equivocation {
    /// The signer's key, hex.
    pub signer: String,
    /// Height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// `proposal`, `prepare`, `commit` or `round_change`.
    pub kind: &'static str,
    /// The signing hashes of the different messages, hex.
    pub signed: Vec<String>,
}

/// What the journals hold: messages read, validly signed, and equivocations.
#[derive(Debug, Default, serde::Serialize)]
pub struct Findings {
    /// Messages read.
    pub messages: u64,
    /// Of those, validly signed by a validator of the set.
    pub valid: u64,
    /// Equivocations found.
    pub equivocations: Vec<Equivocation>,
}

/// Looks across `journals` for equivocations by `validators`.
pub fn equivocations(journals: &[Vec<Vec<u8>>], validators: &ValidatorSet) -> Findings {
    let mut findings = Findings::default();
    let mut seen: BTreeMap<(usize, u64, u32, u8), std::collections::BTreeSet<[u8; 32]>> =
        BTreeMap::new();
    for bytes in journals.iter().flatten() {
        findings.messages = findings.messages.saturating_add(1);
        // Journals written before the writer checked, and files edited by hand, hold
        // messages that are not evidence: still checked here.
        let Some((signer, message)) = evidence(bytes, validators) else {
            continue;
        };
        findings.valid = findings.valid.saturating_add(1);
        let kind = message.message.kind();
        seen.entry((
            signer,
            message.message.height(),
            message.message.round(),
            kind as u8,
        ))
        .or_default()
        .insert(message.message.signing_hash(validators.domain()));
    }
    for ((signer, height, round, kind), hashes) in seen {
        if hashes.len() > 1 {
            findings.equivocations.push(Equivocation {
                signer: validators
                    .key(signer)
                    .map(|k| to_hex(&k.0))
                    .unwrap_or_default(),
                height,
                round,
                kind: match kind {
                    k if k == MessageKind::Proposal as u8 => "proposal",
                    k if k == MessageKind::Prepare as u8 => "prepare",
                    k if k == MessageKind::Commit as u8 => "commit",
                    _ => "round_change",
                },
                signed: hashes.iter().map(|h| to_hex(h)).collect(),
            });
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use interpool_consensus::{ChainDomain, Digest, Message, Vote};
    use interpool_contracts::testkit::key;

    /// A validator's PREPARE for `height` (round 0), signed for `validators`' chain.
    fn prepare(validators: &ValidatorSet, seed: u64, height: u64) -> Vec<u8> {
        Message::Prepare(Vote {
            height,
            round: 0,
            digest: Digest::of(b"block"),
        })
        .sign(&key(seed), validators.domain())
        .encode()
    }

    /// The record for `message`, as the writer lays it out.
    fn record_bytes(message: &[u8]) -> Vec<u8> {
        let mut bytes = (message.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(message);
        bytes
    }

    /// A file that is not a journal (a config file) is refused, not read as an empty
    /// journal; an empty journal (a node that recorded nothing yet) is read as one.
    #[test]
    fn a_file_that_is_not_a_journal_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "[node]\nname = \"validator-0\"\n").expect("write");
        let error = read(&config).expect_err("not a journal");
        assert!(
            error.to_string().contains("not a consensus journal"),
            "{error}"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write");
        assert_eq!(
            read(&empty).expect("an empty journal"),
            Vec::<Vec<u8>>::new()
        );
        // An older half that is not a journal is refused too, and named.
        std::fs::write(older_half(&empty), "[node]\n").expect("write");
        let error = read(&empty).expect_err("not a journal");
        assert!(error.to_string().contains("empty.1"), "{error}");
    }

    #[test]
    fn a_journal_round_trips_and_two_different_votes_are_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let genesis = testkit::genesis();
        let validators = testkit::validator_set(&genesis);
        let domain = *validators.domain();
        let vote = |digest: &[u8]| Vote {
            height: 7,
            round: 1,
            digest: Digest::of(digest),
        };
        let signer = key(testkit::VALIDATOR_SEEDS[2]);
        let first = Message::Prepare(vote(b"a")).sign(&signer, &domain).encode();
        let same = first.clone();
        let other = Message::Prepare(vote(b"b")).sign(&signer, &domain).encode();
        let commit = Message::Commit(vote(b"b")).sign(&signer, &domain).encode();
        {
            let journal = Journal::open(&path, validators.clone()).expect("open");
            for message in [&first, &same, &commit] {
                journal.record(message);
            }
        }
        // The writer thread drains what was queued before the journal was dropped.
        testkit_wait(|| read(&path).map(|m| m.len() == 3).unwrap_or(false));
        let mut with_garbage = read(&path).expect("read");
        with_garbage.push(b"not a message".to_vec());
        let clean = equivocations(&[with_garbage.clone()], &validators);
        assert_eq!((clean.messages, clean.valid), (4, 3));
        assert!(clean.equivocations.is_empty(), "{clean:?}");
        // Another node received the conflicting PREPARE.
        let found = equivocations(&[with_garbage, vec![other]], &validators);
        assert_eq!(found.equivocations.len(), 1, "{found:?}");
        assert_eq!(found.equivocations[0].kind, "prepare");
        assert_eq!(
            (found.equivocations[0].height, found.equivocations[0].round),
            (7, 1)
        );
        // A truncated last record is ignored.
        let mut bytes = std::fs::read(&path).expect("bytes");
        bytes.extend_from_slice(&100u32.to_be_bytes());
        bytes.extend_from_slice(b"short");
        std::fs::write(&path, bytes).expect("write");
        assert_eq!(read(&path).expect("read").len(), 3);
    }

    /// Only evidence is journaled: junk, a stranger's signature, a validator's message with
    /// a broken signature or signed for another chain are not recorded (before, every one
    /// was, and a peer could fill the journal with them).
    #[test]
    fn a_message_that_fails_verification_is_not_journaled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let genesis = testkit::genesis();
        let validators = testkit::validator_set(&genesis);
        let validator = testkit::VALIDATOR_SEEDS[0];
        let stranger = prepare(&validators, 900, 1);
        let mut forged = Message::Prepare(Vote {
            height: 1,
            round: 0,
            digest: Digest::of(b"block"),
        })
        .sign(&key(validator), validators.domain());
        forged.signature.0[0] ^= 1;
        let other_chain = Message::Prepare(Vote {
            height: 1,
            round: 0,
            digest: Digest::of(b"block"),
        })
        .sign(&key(validator), &ChainDomain::UNBOUND)
        .encode();
        let valid = prepare(&validators, validator, 1);
        {
            let journal = Journal::open(&path, validators.clone()).expect("open");
            for message in [
                b"not a message".to_vec(),
                stranger,
                forged.encode(),
                other_chain,
                valid.clone(),
            ] {
                journal.record(&message);
            }
        }
        // One writer, in order: once the valid message is written, the others were judged.
        testkit_wait(|| read(&path).map(|m| !m.is_empty()).unwrap_or(false));
        assert_eq!(read(&path).expect("read"), vec![valid.clone()]);
        assert_eq!(
            std::fs::read(&path).expect("bytes"),
            record_bytes(&valid),
            "nothing but the valid message's record is on disk"
        );
    }

    /// Past half its cap the journal rotates instead of going blind: the latest messages
    /// are always readable, the two files stay within the cap, and `read` of the journal's
    /// path reads both halves.
    #[test]
    fn writing_past_the_cap_rotates_and_keeps_the_latest_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let genesis = testkit::genesis();
        let validators = testkit::validator_set(&genesis);
        let seed = testkit::VALIDATOR_SEEDS[3];
        let messages: Vec<Vec<u8>> = (1..=10).map(|h| prepare(&validators, seed, h)).collect();
        assert!(messages.iter().all(|m| m.len() == messages[0].len()));
        let record = record_bytes(&messages[0]).len() as u64;
        // Three records a file, six in all.
        let cap = 6 * record;
        {
            let journal = Journal::open_with_limit(&path, validators.clone(), cap).expect("open");
            for message in &messages {
                journal.record(message);
            }
        }
        let last = messages.last().cloned();
        testkit_wait(|| {
            read(&path)
                .map(|m| m.last().cloned() == last)
                .unwrap_or(false)
        });
        // Rotated at 4, 7 and 10: the older half holds 7 to 9, the new file 10.
        assert_eq!(read(&path).expect("read"), messages[6..].to_vec());
        assert_eq!(
            read_file(&older_half(&path)).expect("older"),
            messages[6..9].to_vec()
        );
        assert_eq!(read_file(&path).expect("newer"), messages[9..].to_vec());
        let on_disk = std::fs::metadata(&path).expect("newer").len()
            + std::fs::metadata(older_half(&path)).expect("older").len();
        assert!(on_disk <= cap, "{on_disk} bytes on disk, cap {cap}");
        // The latest is still evidence: a conflicting vote for height 10 is found.
        let conflicting = Message::Prepare(Vote {
            height: 10,
            round: 0,
            digest: Digest::of(b"another block"),
        })
        .sign(&key(seed), validators.domain())
        .encode();
        let found = equivocations(
            &[read(&path).expect("read"), vec![conflicting]],
            &validators,
        );
        assert_eq!(found.equivocations.len(), 1, "{found:?}");
        assert_eq!(found.equivocations[0].height, 10);
        // Killed between a rotation's rename and the new file's creation: the older half
        // is read, and a restarted node starts a new file beside it.
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(read(&path).expect("read"), messages[6..9].to_vec());
        {
            let journal = Journal::open_with_limit(&path, validators.clone(), cap).expect("open");
            journal.record(&messages[9]);
        }
        testkit_wait(|| read(&path).map(|m| m.len() == 4).unwrap_or(false));
        assert_eq!(read(&path).expect("read"), messages[6..].to_vec());
    }

    /// A journal whose last record is torn (its length, or its bytes) reads as its complete
    /// records, in each of its two files.
    #[test]
    fn a_torn_last_record_leaves_the_complete_records_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let genesis = testkit::genesis();
        let validators = testkit::validator_set(&genesis);
        let seed = testkit::VALIDATOR_SEEDS[1];
        let messages: Vec<Vec<u8>> = (1..=4).map(|h| prepare(&validators, seed, h)).collect();
        let whole: Vec<u8> = messages[..3].iter().flat_map(|m| record_bytes(m)).collect();
        let last = record_bytes(&messages[3]);
        let torn_bytes = [whole.as_slice(), &last[..10]].concat();
        let torn_length = [whole.as_slice(), &last[..2]].concat();
        for torn in [&torn_bytes, &torn_length] {
            std::fs::write(&path, torn).expect("write");
            assert_eq!(read(&path).expect("read"), messages[..3].to_vec());
        }
        // A torn older half, then a whole newer file.
        std::fs::write(older_half(&path), &torn_bytes).expect("write");
        std::fs::write(&path, record_bytes(&messages[3])).expect("write");
        assert_eq!(read(&path).expect("read"), messages);
    }

    #[test]
    fn a_journal_reopened_after_a_torn_record_keeps_every_later_message_readable() {
        // A full disk (or a kill -9 in the middle of a write) leaves part of a record at
        // the end; the node, restarted, appends to the same file.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let genesis = testkit::genesis();
        let validators = testkit::validator_set(&genesis);
        let at = |height: u64| prepare(&validators, testkit::VALIDATOR_SEEDS[1], height);
        let mut torn = record_bytes(&at(1));
        torn.extend_from_slice(&record_bytes(&at(2))[..14]);
        std::fs::write(&path, torn).expect("write");
        {
            let journal = Journal::open(&path, validators.clone()).expect("open");
            for height in 3..6 {
                journal.record(&at(height));
            }
        }
        testkit_wait(|| read(&path).map(|m| m.len() >= 4).unwrap_or(false));
        assert_eq!(read(&path).expect("read"), vec![at(1), at(3), at(4), at(5)]);
    }

    fn testkit_wait(condition: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !condition() {
            assert!(std::time::Instant::now() < deadline, "journal not written");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
