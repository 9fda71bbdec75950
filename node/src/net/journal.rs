//! The consensus journal (`[consensus] journal = true`): every consensus message a node
//! receives from a validator, appended to `DATA_DIR/consensus-journal` as a 4-byte
//! big-endian length and the message's bytes. `interpool-node equivocations` reads the
//! journals of several nodes and looks for a validator that signed two different messages
//! of one kind for one height and round: what no honest validator may do, whatever crashes
//! and restarts it went through.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::mpsc;

use interpool_consensus::{MessageKind, SignedMessage, StrictVerifier, ValidatorSet};
use interpool_contracts::primitives::to_hex;

/// Most bytes one journal grows to; later messages are not recorded.
pub const MAX_JOURNAL_BYTES: u64 = 256 << 20;
/// Messages waiting to be written; beyond, they are not recorded (never a slowdown).
const QUEUE: usize = 4_096;

/// The writing end of a journal. Cheap to clone.
#[derive(Clone)]
pub struct Journal {
    queue: mpsc::SyncSender<Vec<u8>>,
}

impl Journal {
    /// Appends to the journal at `path` from a thread of its own.
    /// A torn last record (a kill -9 or a full disk in the middle of a write) is cut off
    /// first, so that what is appended after it stays readable.
    pub fn open(path: &Path) -> io::Result<Journal> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let whole = whole_records_length(&file)?;
        if whole < file.metadata()?.len() {
            file.set_len(whole)?;
        }
        let mut written = whole;
        let (queue, messages) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
        std::thread::Builder::new()
            .name("consensus-journal".into())
            .spawn(move || {
                let mut out = BufWriter::new(file);
                while let Ok(message) = messages.recv() {
                    let Ok(length) = u32::try_from(message.len()) else {
                        continue;
                    };
                    let size = 4u64.saturating_add(u64::from(length));
                    if written.saturating_add(size) > MAX_JOURNAL_BYTES {
                        continue;
                    }
                    written = written.saturating_add(size);
                    let result = out
                        .write_all(&length.to_be_bytes())
                        .and_then(|()| out.write_all(&message))
                        // Written through at once: a node killed -9 loses at most the
                        // message being written (read() ignores a truncated last record).
                        .and_then(|()| out.flush());
                    if let Err(error) = result {
                        tracing::warn!(%error, "consensus journal stopped");
                        return;
                    }
                }
            })?;
        Ok(Journal { queue })
    }

    /// Records a received message (dropped if the writer is behind).
    pub fn record(&self, message: &[u8]) {
        let _ = self.queue.try_send(message.to_vec());
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

/// Every message in the journal at `path` (a truncated last record, from a node killed while
/// writing it, is ignored). A file of bytes whose first record does not fit is not a journal
/// and is refused: before, any file (a config, a genesis) read as an empty journal, and the
/// check reported "no equivocation" for input it never read.
pub fn read(path: &Path) -> io::Result<Vec<Vec<u8>>> {
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

/// The length-prefixed records of `bytes`, up to the first that does not fit.
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
        let Ok(message) = SignedMessage::decode(bytes) else {
            continue;
        };
        let Ok(signer) = message.verify(validators, &mut StrictVerifier) else {
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
    use interpool_consensus::{Digest, Message, Vote};
    use interpool_contracts::testkit::key;

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
            let journal = Journal::open(&path).expect("open");
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

    #[test]
    fn a_journal_reopened_after_a_torn_record_keeps_every_later_message_readable() {
        // A full disk (or a kill -9 in the middle of a write) leaves part of a record at
        // the end; the node, restarted, appends to the same file.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let genesis = testkit::genesis();
        let validators = testkit::validator_set(&genesis);
        let domain = *validators.domain();
        let signer = key(testkit::VALIDATOR_SEEDS[1]);
        let prepare = |height: u64| {
            Message::Prepare(Vote {
                height,
                round: 0,
                digest: Digest::of(b"block"),
            })
            .sign(&signer, &domain)
            .encode()
        };
        let mut torn = Vec::new();
        torn.extend_from_slice(&(prepare(1).len() as u32).to_be_bytes());
        torn.extend_from_slice(&prepare(1));
        torn.extend_from_slice(&(prepare(2).len() as u32).to_be_bytes());
        torn.extend_from_slice(&prepare(2)[..10]);
        std::fs::write(&path, torn).expect("write");
        {
            let journal = Journal::open(&path).expect("open");
            for height in 3..6 {
                journal.record(&prepare(height));
            }
        }
        testkit_wait(|| read(&path).map(|m| m.len() >= 4).unwrap_or(false));
        assert_eq!(
            read(&path).expect("read"),
            vec![prepare(1), prepare(3), prepare(4), prepare(5)]
        );
    }

    fn testkit_wait(condition: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !condition() {
            assert!(std::time::Instant::now() < deadline, "journal not written");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
