//! The node's chain: the ledger, the store and the tip, and the three things consensus asks
//! of the application — build a block, validate a block, commit a block.
//!
//! On open, the ledger is rebuilt by re-executing every stored block from genesis and the
//! result is checked against the state roots stored when each block was first committed
//! (a paired check: what was written must be what is read back and recomputed).

use std::collections::HashMap;

use interpool_contracts::block::{Block, BlockError, BlockHeader, ChainTip};
use interpool_contracts::outcome::BlockOutcome;
use interpool_contracts::tx::check_stateless_batch;
use interpool_contracts::{AccountId, Genesis, Hash, Ledger, TxError, VerifiedTransaction};
use thiserror::Error;

use crate::mempool::Mempool;
use crate::storage::{CommittedBlock, StorageError, Store};

/// Block limits from the node config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    /// Most transactions in a block.
    pub max_transactions: usize,
    /// Largest encoded block.
    pub max_bytes: usize,
}

/// Why a proposed block is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidBlock {
    /// Header or encoding.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// A transaction fails its stateless checks (bad signature, wrong chain, ...).
    #[error("transaction {index}: {error}")]
    Transaction {
        /// Position in the block.
        index: usize,
        /// Why.
        error: TxError,
    },
}

/// Errors that stop the node.
#[derive(Debug, Error)]
pub enum ChainError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored chain does not replay to what was stored.
    #[error("stored chain is inconsistent at height {height}: {message}")]
    Inconsistent {
        /// Where.
        height: u64,
        /// What.
        message: String,
    },
    /// A block that consensus finalized is invalid here: this node and a quorum disagree.
    #[error("finalized block {height} is invalid on this node: {reason}")]
    FinalizedInvalid {
        /// Height.
        height: u64,
        /// Why.
        reason: InvalidBlock,
    },
}

/// The chain. See the module documentation.
pub struct Chain {
    genesis_hash: Hash,
    ledger: Ledger,
    store: Store,
    tip: ChainTip,
    limits: BlockLimits,
    /// Transactions of proposals validated but not yet committed, by block hash, so that a
    /// commit does not verify them again.
    validated: HashMap<Hash, Vec<VerifiedTransaction>>,
}

impl Chain {
    /// Opens the chain: builds the genesis ledger and replays every stored block.
    pub fn open(genesis: &Genesis, store: Store, limits: BlockLimits) -> Result<Chain, ChainError> {
        let ledger = Ledger::from_genesis(genesis).map_err(|e| ChainError::Inconsistent {
            height: 0,
            message: e.to_string(),
        })?;
        let tip = ChainTip::genesis(genesis, ledger.state_root());
        let genesis_hash = tip.hash;
        let mut chain = Chain {
            genesis_hash,
            ledger,
            store,
            tip,
            limits,
            validated: HashMap::new(),
        };
        let stored = chain.store.height()?;
        for height in 1..=stored {
            chain.replay(height)?;
        }
        Ok(chain)
    }

    fn replay(&mut self, height: u64) -> Result<(), ChainError> {
        let inconsistent = |message: String| ChainError::Inconsistent { height, message };
        let bytes = self
            .store
            .block(height)?
            .ok_or_else(|| inconsistent("block missing".into()))?;
        let block = Block::decode(&bytes, u64::MAX).map_err(|e| inconsistent(e.to_string()))?;
        block
            .check_extends(&self.tip)
            .map_err(|e| inconsistent(e.to_string()))?;
        // These transactions were verified before they were first committed.
        let txs = block
            .transactions
            .iter()
            .cloned()
            .map(|tx| VerifiedTransaction::from_trusted_store(tx, &self.tip.chain_id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| inconsistent(e.to_string()))?;
        let outcome = self.ledger.apply_block(height, &txs);
        let stored = self
            .store
            .outcome(height)?
            .ok_or_else(|| inconsistent("outcome missing".into()))?;
        if stored != outcome {
            return Err(inconsistent(format!(
                "re-execution gives state root {}, stored {}",
                outcome.state_root, stored.state_root
            )));
        }
        self.advance_tip(&block.header, Block::hash_of(&bytes));
        Ok(())
    }

    fn advance_tip(&mut self, header: &BlockHeader, hash: Hash) {
        self.tip = ChainTip {
            chain_id: self.tip.chain_id.clone(),
            height: header.height,
            hash,
            state_root: self.ledger.state_root(),
            timestamp_ms: header.timestamp_ms,
        };
    }

    /// The last committed block.
    pub fn tip(&self) -> &ChainTip {
        &self.tip
    }

    /// The genesis hash.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// The ledger after the last committed block.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Builds the next block from the mempool's transactions; returns its encoding.
    pub fn build_block(&self, mempool: &Mempool, proposer: AccountId, now_ms: u64) -> Vec<u8> {
        let header = BlockHeader {
            chain_id: self.tip.chain_id.clone(),
            height: self.tip.height + 1,
            parent_hash: self.tip.hash,
            previous_state_root: self.tip.state_root,
            timestamp_ms: now_ms.max(self.tip.timestamp_ms),
            proposer,
        };
        // Leave room for the header and length prefixes.
        let budget = self.limits.max_bytes.saturating_sub(1024);
        let transactions = mempool
            .select(&self.ledger, self.limits.max_transactions, budget)
            .into_iter()
            .map(VerifiedTransaction::into_signed)
            .collect();
        Block {
            header,
            transactions,
        }
        .encode()
    }

    /// Validates a proposed next block: size, header, and every transaction's stateless
    /// checks (those already in the mempool were verified on admission; the rest are
    /// verified now, in one batch). Remembers the result for [`Self::commit`].
    pub fn validate_block(&mut self, bytes: &[u8], mempool: &Mempool) -> Result<(), InvalidBlock> {
        let hash = Block::hash_of(bytes);
        if self.validated.contains_key(&hash) {
            return Ok(());
        }
        let txs = self.check_block(bytes, mempool)?;
        self.validated.insert(hash, txs);
        Ok(())
    }

    fn check_block(
        &self,
        bytes: &[u8],
        mempool: &Mempool,
    ) -> Result<Vec<VerifiedTransaction>, InvalidBlock> {
        if bytes.len() > self.limits.max_bytes {
            return Err(BlockError::TooLarge(format!(
                "{} bytes, the limit is {}",
                bytes.len(),
                self.limits.max_bytes
            ))
            .into());
        }
        let block = Block::decode(bytes, self.limits.max_bytes as u64).map_err(BlockError::from)?;
        block.check_extends(&self.tip)?;
        if block.transactions.len() > self.limits.max_transactions {
            return Err(BlockError::TooLarge(format!(
                "{} transactions, the limit is {}",
                block.transactions.len(),
                self.limits.max_transactions
            ))
            .into());
        }
        let mut verified: Vec<Option<VerifiedTransaction>> =
            Vec::with_capacity(block.transactions.len());
        let mut unknown = Vec::new();
        let mut unknown_positions = Vec::new();
        for (index, tx) in block.transactions.into_iter().enumerate() {
            match mempool
                .get(&tx.hash())
                .filter(|known| known.signed() == &tx)
            {
                Some(known) => verified.push(Some(known.clone())),
                None => {
                    verified.push(None);
                    unknown.push(tx);
                    unknown_positions.push(index);
                }
            }
        }
        for (result, index) in check_stateless_batch(unknown, &self.tip.chain_id)
            .into_iter()
            .zip(unknown_positions)
        {
            verified[index] =
                Some(result.map_err(|error| InvalidBlock::Transaction { index, error })?);
        }
        Ok(verified.into_iter().flatten().collect())
    }

    /// Commits the finalized block at the next height: executes it, then writes block,
    /// certificate and outcome in one atomic batch. Returns the outcome and the block's
    /// transactions (for the mempool).
    pub fn commit(
        &mut self,
        bytes: &[u8],
        certificate: Vec<u8>,
        mempool: &Mempool,
    ) -> Result<(BlockOutcome, Vec<VerifiedTransaction>), ChainError> {
        let hash = Block::hash_of(bytes);
        let height = self.tip.height + 1;
        let txs = match self.validated.remove(&hash) {
            Some(txs) => txs,
            // Finalized without this node validating it (decided while it was away, or
            // fetched by sync): check it now.
            None => self
                .check_block(bytes, mempool)
                .map_err(|reason| ChainError::FinalizedInvalid { height, reason })?,
        };
        self.validated.clear();
        let block = Block::decode(bytes, u64::MAX).map_err(|e| ChainError::FinalizedInvalid {
            height,
            reason: BlockError::from(e).into(),
        })?;
        let outcome = self.ledger.apply_block(height, &txs);
        self.store.commit_block(&CommittedBlock {
            height,
            block: bytes.to_vec(),
            certificate,
            outcome: outcome.clone(),
            parties: block
                .transactions
                .iter()
                .map(|tx| tx.tx.parties())
                .collect(),
        })?;
        self.advance_tip(&block.header, hash);
        Ok((outcome, txs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mempool::MempoolLimits;
    use interpool_contracts::testkit::{self, account, customer_seed, key};
    use interpool_contracts::{Amount, Body, Transaction};

    const LIMITS: BlockLimits = BlockLimits {
        max_transactions: 100,
        max_bytes: 1 << 20,
    };

    fn genesis() -> Genesis {
        testkit::genesis(2, 2, 100_000, 1_000_000, 1_000_000)
    }

    fn transfer(seed: u64, nonce: u64) -> VerifiedTransaction {
        Transaction {
            chain_id: "test".into(),
            signer: account(seed),
            nonce,
            valid_until_height: 100,
            body: Body::Transfer {
                to: account(customer_seed(1, 0)),
                amount: Amount(10),
                end_to_end_id: format!("C{nonce}"),
                reference: String::new(),
            },
        }
        .sign(&key(seed))
        .check_stateless("test")
        .expect("valid")
    }

    fn mempool() -> Mempool {
        Mempool::new(MempoolLimits {
            max_transactions: 100,
            max_per_signer: 10,
        })
    }

    #[test]
    fn build_validate_commit_and_replay_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = genesis();
        let a = customer_seed(0, 0);
        let (root, tip_hash) = {
            let mut chain = Chain::open(&genesis, Store::open(dir.path()).expect("store"), LIMITS)
                .expect("open");
            let mut pool = mempool();
            for n in 0..3 {
                pool.insert(transfer(a, n), chain.ledger(), 1)
                    .expect("admit");
            }
            let block = chain.build_block(&pool, account(99), 1_000);
            chain
                .validate_block(&block, &pool)
                .expect("own block is valid");
            let (outcome, txs) = chain.commit(&block, vec![1, 2, 3], &pool).expect("commit");
            assert_eq!(outcome.receipts.len(), 3);
            pool.after_commit(&txs, chain.ledger(), 1);
            assert!(pool.is_empty());
            // Block 2, validated by a node whose mempool never saw its transaction.
            let mut other_pool = mempool();
            other_pool
                .insert(transfer(a, 3), chain.ledger(), 2)
                .expect("admit");
            let block2 = chain.build_block(&other_pool, account(99), 900);
            chain
                .validate_block(&block2, &mempool())
                .expect("unknown transactions are verified");
            chain
                .commit(&block2, vec![4], &mempool())
                .expect("commit 2");
            assert_eq!(chain.tip().height, 2);
            assert_eq!(chain.tip().timestamp_ms, 1_000, "timestamps never go back");
            (chain.ledger().state_root(), chain.tip().hash)
        };
        let chain =
            Chain::open(&genesis, Store::open(dir.path()).expect("store"), LIMITS).expect("reopen");
        assert_eq!(chain.tip().height, 2);
        assert_eq!(chain.ledger().state_root(), root);
        assert_eq!(chain.tip().hash, tip_hash);
        assert_eq!(chain.store().certificate(2).expect("read"), Some(vec![4]));
    }

    #[test]
    fn invalid_proposals_are_refused_with_reasons() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain =
            Chain::open(&genesis(), Store::open(dir.path()).expect("store"), LIMITS).expect("open");
        let pool = mempool();
        assert!(matches!(
            chain.validate_block(b"garbage", &pool),
            Err(InvalidBlock::Block(BlockError::Decode(_)))
        ));
        let good =
            Block::decode(&chain.build_block(&pool, account(99), 5), u64::MAX).expect("decode");
        let mut wrong_parent = good.clone();
        wrong_parent.header.parent_hash = Hash([1; 32]);
        assert!(matches!(
            chain.validate_block(&wrong_parent.encode(), &pool),
            Err(InvalidBlock::Block(BlockError::WrongParent { .. }))
        ));
        let mut forged = good.clone();
        let mut tx = transfer(customer_seed(0, 0), 0).into_signed();
        tx.tx.nonce = 7; // no longer matches the signature
        forged.transactions.push(tx);
        assert!(matches!(
            chain.validate_block(&forged.encode(), &pool),
            Err(InvalidBlock::Transaction {
                index: 0,
                error: TxError::BadSignature
            })
        ));
        let mut huge = good;
        huge.transactions = (0..101)
            .map(|n| transfer(customer_seed(0, 1), n).into_signed())
            .collect();
        assert!(matches!(
            chain.validate_block(&huge.encode(), &pool),
            Err(InvalidBlock::Block(BlockError::TooLarge(_)))
        ));
        // A finalized invalid block stops the node rather than diverging.
        assert!(matches!(
            chain.commit(&forged.encode(), vec![], &pool),
            Err(ChainError::FinalizedInvalid { height: 1, .. })
        ));
    }
}
