//! The netting oracle: on random obligation sets among up to 50 banks, each bank's net
//! position is what it received minus what it sent, positions sum to zero, and each pool
//! moves by exactly its position.

use std::collections::BTreeMap;

use interpool_contracts::outcome::SettlementTrigger;
use interpool_contracts::testkit::{self, account, customer_seed, key, AUTHORITY_SEED};
use interpool_contracts::{Amount, Body, Ledger, Outcome, Transaction, VerifiedTransaction};
use proptest::prelude::*;

const POOL: u64 = 1_000_000_000;

fn signed(seed: u64, nonce: u64, body: Body) -> VerifiedTransaction {
    let tx = Transaction {
        chain_id: "test".into(),
        signer: account(seed),
        nonce,
        valid_until_height: 10,
        body,
    }
    .sign(&key(seed));
    // Signature checking is not under test here; skip its cost.
    VerifiedTransaction::from_trusted_store(tx, "test").expect("well-formed")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn net_positions_match_the_oracle(
        banks in 2usize..=50,
        obligations in proptest::collection::vec((0usize..50, 0usize..50, 1u64..1_000_000), 0..300),
    ) {
        // Caps equal to the pools, and pools far above any cycle's flows: nothing queues,
        // so every generated obligation is recorded.
        let genesis = testkit::genesis(banks, 1, POOL, POOL, POOL);
        let mut ledger = Ledger::from_genesis(&genesis).expect("genesis");
        let mut nonces = vec![0u64; banks];
        let mut txs = Vec::new();
        let mut sent = BTreeMap::new();
        let mut received = BTreeMap::new();
        for (i, (from, to, amount)) in obligations.into_iter().enumerate() {
            let (from, to) = (from % banks, to % banks);
            if from == to {
                continue;
            }
            txs.push(signed(
                customer_seed(from, 0),
                nonces[from],
                Body::Transfer {
                    to: account(customer_seed(to, 0)),
                    amount: Amount(amount),
                    end_to_end_id: format!("N{i}"),
                    reference: String::new(),
                    terms: Default::default(),
                },
            ));
            nonces[from] += 1;
            *sent.entry(from).or_insert(0u128) += u128::from(amount);
            *received.entry(to).or_insert(0u128) += u128::from(amount);
        }
        txs.push(signed(AUTHORITY_SEED, 0, Body::SettleCycle));
        let outcome = ledger.apply_block(1, 1_000, &txs);
        for receipt in &outcome.receipts {
            prop_assert_eq!(&receipt.outcome, &Outcome::Committed);
        }
        let report = outcome.settlement.expect("SettleCycle closes the cycle");
        prop_assert_eq!(report.trigger, SettlementTrigger::Authority);
        prop_assert_eq!(report.banks.len(), banks);
        let mut net_sum = 0i128;
        let mut positive = 0i128;
        for position in &report.banks {
            let b = (0..banks).find(|b| testkit::bank_id(*b) == position.bank).expect("known bank");
            let expected = received.get(&b).copied().unwrap_or(0) as i128 - sent.get(&b).copied().unwrap_or(0) as i128;
            prop_assert_eq!(position.net, expected);
            prop_assert_eq!(u128::from(position.sent.0), sent.get(&b).copied().unwrap_or(0));
            prop_assert_eq!(u128::from(position.received.0), received.get(&b).copied().unwrap_or(0));
            prop_assert_eq!(i128::from(position.pool_after.0) - i128::from(position.pool_before.0), position.net);
            prop_assert_eq!(ledger.bank(&position.bank).expect("bank").pool, position.pool_after);
            net_sum += position.net;
            positive += position.net.max(0);
        }
        prop_assert_eq!(net_sum, 0);
        prop_assert_eq!(i128::from(report.net_total.0), positive);
        prop_assert_eq!(u128::from(report.gross_total.0), sent.values().sum::<u128>());
        ledger.check_invariants().expect("invariants");
    }
}
