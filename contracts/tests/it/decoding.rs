//! Decoding never panics, and what decodes re-encodes to the same bytes.

use interpool_contracts::testkit::{account, key};
use interpool_contracts::{Amount, BankId, Body, SignedTransaction, Transaction};
use proptest::prelude::*;

fn sample_bodies() -> Vec<Body> {
    let bank = BankId::new("BANK_A").expect("valid");
    vec![
        Body::Transfer {
            to: account(2),
            amount: Amount(12_34),
            end_to_end_id: "INV-2026-0001".into(),
            reference: "rent — november".into(),
            terms: Default::default(),
        },
        Body::OpenAccount { owner: account(3) },
        Body::Deposit {
            account: account(3),
            amount: Amount(1),
        },
        Body::Withdraw {
            account: account(3),
            amount: Amount(1),
        },
        Body::Issue {
            bank: bank.clone(),
            amount: Amount(1),
        },
        Body::Redeem {
            bank: bank.clone(),
            amount: Amount(1),
        },
        Body::SetNetDebitCap {
            bank,
            cap: Amount(0),
        },
        Body::SettleCycle,
        Body::Freeze {
            account: account(3),
        },
        Body::Unfreeze {
            account: account(3),
        },
        Body::CancelTransfer {
            tx_hash: interpool_contracts::Hash([7; 32]),
        },
        Body::Reprioritise {
            tx_hash: interpool_contracts::Hash([8; 32]),
            priority: interpool_contracts::Priority::High,
        },
        Body::ResolveGridlock,
    ]
}

fn signed(body: Body) -> SignedTransaction {
    Transaction {
        chain_id: "interpool-test".into(),
        signer: account(1),
        nonce: 42,
        valid_until_height: 1_000,
        body,
    }
    .sign(&key(1))
}

#[test]
fn every_body_round_trips_and_every_truncation_fails() {
    for body in sample_bodies() {
        let tx = signed(body);
        let bytes = tx.encode();
        assert_eq!(SignedTransaction::decode(&bytes).as_ref(), Ok(&tx));
        for len in 0..bytes.len() {
            assert!(
                SignedTransaction::decode(&bytes[..len]).is_err(),
                "prefix {len} decoded"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            SignedTransaction::decode(&longer).is_err(),
            "trailing byte accepted"
        );
    }
}

#[test]
fn json_form_round_trips() {
    for body in sample_bodies() {
        let tx = signed(body);
        let json = serde_json::to_string(&tx).expect("json");
        let back: SignedTransaction = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, tx);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2_100)) {
        if let Ok(tx) = SignedTransaction::decode(&bytes) {
            prop_assert_eq!(tx.encode(), bytes);
        }
    }

    #[test]
    fn mutated_valid_encodings_never_panic(
        which in 0usize..10,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = signed(sample_bodies().swap_remove(which)).encode();
        for (index, value) in flips {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok(tx) = SignedTransaction::decode(&bytes) {
            prop_assert_eq!(tx.encode(), bytes);
        }
    }
}
