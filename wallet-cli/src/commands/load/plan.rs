//! What the load sends: the customers that sign it, and the transfers between them.

use ed25519_dalek::SigningKey;
use interpool_contracts::{AccountId, Amount, Body, Hash, Transaction};
use sha2::{Digest, Sha256};

/// A customer that signs load transfers.
pub struct Customer {
    /// Its key.
    pub key: SigningKey,
    /// Its account (the key's public half).
    pub id: AccountId,
    /// Its bank's position in the manifest.
    pub bank: usize,
    /// The nonce of its first transfer.
    pub nonce: u64,
}

impl Customer {
    /// A customer for `key` at bank `bank`, whose next nonce is `nonce`.
    pub fn new(key: SigningKey, bank: usize, nonce: u64) -> Customer {
        let id = AccountId(key.verifying_key().to_bytes());
        Customer {
            key,
            id,
            bank,
            nonce,
        }
    }
}

/// `count` fresh customers derived from `seed` (the same seed gives the same keys), spread
/// over `banks` banks in turn.
pub fn derive_customers(seed: u64, count: usize, banks: usize) -> Vec<Customer> {
    (0..count)
        .map(|i| {
            let mut hasher = Sha256::new();
            hasher.update(b"interpool/load/customer/v1");
            hasher.update(seed.to_le_bytes());
            hasher.update((i as u64).to_le_bytes());
            let key = SigningKey::from_bytes(&hasher.finalize().into());
            Customer::new(key, i % banks.max(1), 0)
        })
        .collect()
}

/// Most padding the load adds to a transfer's free-text reference: with it the transfers'
/// encodings span about 160 to 230 bytes, as payments with short and longer remittance
/// text do.
const REFERENCE_PADDING: usize = 70;

/// The `count` transfers of the load, unsigned: customer `i % K` pays in turn, each time to
/// another customer (any bank, its own included, so about one transfer in `banks` stays
/// within a bank), a small amount, with consecutive nonces per payer.
pub fn transfers(
    chain_id: &str,
    customers: &[Customer],
    count: usize,
    valid_until_height: u64,
) -> Vec<Transaction> {
    let k = customers.len();
    if k < 2 {
        return Vec::new();
    }
    let mut next: Vec<u64> = customers.iter().map(|c| c.nonce).collect();
    (0..count)
        .map(|i| {
            let s = i % k;
            let round = i / k;
            // Another customer than the payer: s + 1 + (0..=k-2), modulo k.
            let offset = (round.wrapping_mul(7919).wrapping_add(s.wrapping_mul(13))) % (k - 1);
            let to = customers[(s + 1 + offset) % k].id;
            let nonce = next[s];
            next[s] = nonce.saturating_add(1);
            let reference = format!(
                "load transfer {i} {}",
                ".".repeat(i.wrapping_mul(37) % REFERENCE_PADDING)
            );
            Transaction {
                chain_id: chain_id.to_string(),
                signer: customers[s].id,
                nonce,
                valid_until_height,
                body: Body::Transfer {
                    to,
                    amount: Amount(1 + (i % 100) as u64),
                    end_to_end_id: format!("LOAD-{nonce}"),
                    reference,
                    terms: Default::default(),
                },
            }
        })
        .collect()
}

/// Signs `txs` (each by its signer among `customers`) on every core; each one's hash and
/// canonical encoding, in order.
pub fn sign_all(txs: Vec<Transaction>, customers: &[Customer]) -> Signed {
    let keys: std::collections::HashMap<AccountId, &SigningKey> =
        customers.iter().map(|c| (c.id, &c.key)).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = txs.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = txs
            .chunks(chunk)
            .map(|part| {
                let keys = &keys;
                scope.spawn(move || {
                    part.iter()
                        .map(|tx| {
                            let signed = tx.clone().sign(keys[&tx.signer]);
                            (signed.hash(), signed.encode())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Signed transactions: each one's hash and canonical encoding.
pub type Signed = Vec<(Hash, Vec<u8>)>;

/// The transactions that open and fund `customers` at their banks, signed by each bank's
/// operator (`operators[bank]`: key and next nonce) with consecutive nonces: first an
/// `OpenAccount` for each of its customers, then a `Deposit` of `deposit` for each (a node
/// admits a deposit only to an account that exists, so the openings must commit first).
/// For each bank, its openings and its deposits.
pub fn openings(
    chain_id: &str,
    customers: &[&Customer],
    operators: &[(SigningKey, u64)],
    deposit: Amount,
    valid_until_height: u64,
) -> Vec<[Signed; 2]> {
    operators
        .iter()
        .enumerate()
        .map(|(bank, (key, first_nonce))| {
            let operator = AccountId(key.verifying_key().to_bytes());
            let mut nonce = *first_nonce;
            let mut sign = |body: Body| {
                let signed = Transaction {
                    chain_id: chain_id.to_string(),
                    signer: operator,
                    nonce,
                    valid_until_height,
                    body,
                }
                .sign(key);
                nonce = nonce.saturating_add(1);
                (signed.hash(), signed.encode())
            };
            let at_bank: Vec<&&Customer> = customers.iter().filter(|c| c.bank == bank).collect();
            let opens = at_bank
                .iter()
                .map(|c| sign(Body::OpenAccount { owner: c.id }))
                .collect();
            let deposits = at_bank
                .iter()
                .map(|c| {
                    sign(Body::Deposit {
                        account: c.id,
                        amount: deposit,
                    })
                })
                .collect();
            [opens, deposits]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use interpool_contracts::SignedTransaction;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn transfers_are_between_distinct_customers_with_consecutive_nonces_and_realistic_sizes() {
        let customers = derive_customers(7, 40, 4);
        let txs = transfers("c", &customers, 2_000, 100);
        let signed = sign_all(txs.clone(), &customers);
        assert_eq!(signed.len(), 2_000);
        let bank: HashMap<AccountId, usize> = customers.iter().map(|c| (c.id, c.bank)).collect();
        let mut last: HashMap<AccountId, u64> = HashMap::new();
        let (mut cross, mut within) = (0, 0);
        let mut pairs = HashSet::new();
        let mut sizes = HashSet::new();
        for ((hash, bytes), tx) in signed.iter().zip(&txs) {
            let decoded = SignedTransaction::decode(bytes).expect("canonical");
            assert_eq!(decoded.hash(), *hash);
            assert!(decoded.clone().check_stateless("c").is_ok());
            assert!((150..=250).contains(&bytes.len()), "{} bytes", bytes.len());
            sizes.insert(bytes.len());
            let Body::Transfer { to, .. } = &tx.body else {
                panic!("a transfer");
            };
            assert_ne!(*to, tx.signer);
            pairs.insert((tx.signer, *to));
            if bank[to] == bank[&tx.signer] {
                within += 1;
            } else {
                cross += 1;
            }
            if let Some(previous) = last.insert(tx.signer, tx.nonce) {
                assert_eq!(tx.nonce, previous + 1);
            }
        }
        assert!(
            cross > within && within > 200,
            "{cross} cross-bank, {within} within"
        );
        assert!(pairs.len() > 1_000, "{} distinct pairs", pairs.len());
        assert_eq!(last.len(), 40);
        assert!(sizes.len() > 50, "sizes vary: {sizes:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_customers_and_another_seed_others() {
        let a = derive_customers(1, 5, 2);
        let b = derive_customers(1, 5, 2);
        let c = derive_customers(2, 5, 2);
        assert!(a.iter().zip(&b).all(|(x, y)| x.id == y.id));
        assert!(a.iter().zip(&c).all(|(x, y)| x.id != y.id));
        assert_eq!(
            a.iter().map(|c| c.bank).collect::<Vec<_>>(),
            [0, 1, 0, 1, 0]
        );
    }

    #[test]
    fn openings_open_then_fund_each_customer_with_the_operators_nonces() {
        let customers = derive_customers(3, 5, 2);
        let operators = vec![
            (SigningKey::from_bytes(&[1; 32]), 4),
            (SigningKey::from_bytes(&[2; 32]), 0),
        ];
        let refs: Vec<&Customer> = customers.iter().collect();
        let lists = openings("c", &refs, &operators, Amount(500), 100);
        let decode = |list: &Signed| -> Vec<SignedTransaction> {
            list.iter()
                .map(|(_, b)| SignedTransaction::decode(b).expect("tx"))
                .collect()
        };
        let [opens, deposits] = &lists[0];
        let (opens, deposits) = (decode(opens), decode(deposits));
        assert_eq!(lists[1][0].len(), 2);
        assert_eq!(
            opens
                .iter()
                .chain(&deposits)
                .map(|t| t.tx.nonce)
                .collect::<Vec<_>>(),
            [4, 5, 6, 7, 8, 9]
        );
        assert_eq!(
            opens[0].tx.body,
            Body::OpenAccount {
                owner: customers[0].id
            }
        );
        assert_eq!(
            deposits[2].tx.body,
            Body::Deposit {
                account: customers[4].id,
                amount: Amount(500)
            }
        );
    }
}
