//! The liquidity-saving pass: gridlocks that no bank can break alone settle together, what
//! settles keeps every bank within its headroom and is a prefix of each bank's release
//! order, and malformed candidates never settle.
//!
//! Two independent references check it: a brute-force oracle (every subset of a small input)
//! and today's per-bank sequential release ("greedy"). The feasible, prefix-closed sets are
//! closed under union (the longer prefix brings the same outflow and at least the same
//! inflow), so there is exactly one largest such set; the pass only ever drops a payment
//! outside it, so the pass alone, and greedy + pass + greedy, must settle exactly that set.

use proptest::prelude::*;

use super::*;

fn pay(from: usize, to: usize, amount: u64) -> Candidate {
    Candidate { from, to, amount }
}

/// Bank `i` pays `amounts[i]` to bank `(i + 1) % n`.
fn ring(amounts: &[u64]) -> Vec<Candidate> {
    let banks = amounts.len();
    amounts
        .iter()
        .enumerate()
        .map(|(from, &amount)| pay(from, (from + 1) % banks, amount))
        .collect()
}

/// A candidate the pass may settle: two different banks, both known.
fn is_valid(banks: usize, candidate: &Candidate) -> bool {
    candidate.from != candidate.to && candidate.from < banks && candidate.to < banks
}

/// What bank `bank` may pay out net: its headroom, a negative one counting as none.
fn room(headroom: &[i128], bank: usize) -> i128 {
    headroom[bank].max(0)
}

/// Σ out − Σ in per bank over the chosen (valid) candidates.
fn net_positions(banks: usize, candidates: &[Candidate], chosen: &[usize]) -> Vec<i128> {
    let mut net = vec![0i128; banks];
    for &index in chosen {
        let candidate = candidates[index];
        net[candidate.from] += i128::from(candidate.amount);
        net[candidate.to] -= i128::from(candidate.amount);
    }
    net
}

fn value(candidates: &[Candidate], chosen: &[usize]) -> u128 {
    chosen
        .iter()
        .map(|&index| u128::from(candidates[index].amount))
        .sum()
}

fn valid_count(banks: usize, candidates: &[Candidate]) -> usize {
    candidates
        .iter()
        .filter(|candidate| is_valid(banks, candidate))
        .count()
}

/// Every chosen candidate is valid and no bank ends beyond its headroom.
fn is_feasible(headroom: &[i128], candidates: &[Candidate], chosen: &[usize]) -> bool {
    let banks = headroom.len();
    chosen
        .iter()
        .all(|&index| is_valid(banks, &candidates[index]))
        && net_positions(banks, candidates, chosen)
            .iter()
            .enumerate()
            .all(|(bank, &net)| net <= room(headroom, bank))
}

/// For every bank, the chosen candidates are the first k of its valid candidates in slice
/// order: none is chosen after one of the same bank was passed over.
fn is_prefix_closed(banks: usize, candidates: &[Candidate], chosen: &[usize]) -> bool {
    let mut picked = vec![false; candidates.len()];
    for &index in chosen {
        picked[index] = true;
    }
    let mut passed_over = vec![false; banks];
    for (index, candidate) in candidates.iter().enumerate() {
        if !is_valid(banks, candidate) {
            continue;
        }
        if !picked[index] {
            passed_over[candidate.from] = true;
        } else if passed_over[candidate.from] {
            return false;
        }
    }
    true
}

/// Ascending and unique, valid, within every headroom, a prefix of every bank's order.
fn assert_sound(headroom: &[i128], candidates: &[Candidate], settled: &[usize]) {
    assert!(
        settled.windows(2).all(|pair| pair[0] < pair[1]),
        "settled indices not ascending and unique: {settled:?}"
    );
    assert!(
        settled.iter().all(|&index| index < candidates.len()),
        "settled index out of range: {settled:?}"
    );
    assert!(
        is_feasible(headroom, candidates, settled),
        "settled set breaks a headroom or names an invalid candidate: {settled:?}, net {:?}, headroom {headroom:?}",
        settled
            .iter()
            .all(|&index| is_valid(headroom.len(), &candidates[index]))
            .then(|| net_positions(headroom.len(), candidates, settled))
    );
    assert!(
        is_prefix_closed(headroom.len(), candidates, settled),
        "settled set skips a payment of some bank's order: {settled:?}"
    );
}

/// The most valuable feasible, prefix-closed set, by trying every subset. Ties go to the
/// larger set, so that zero-amount payments do not make the answer ambiguous.
fn oracle(headroom: &[i128], candidates: &[Candidate]) -> Vec<usize> {
    assert!(candidates.len() <= 16, "the oracle enumerates 2^n subsets");
    let banks = headroom.len();
    let mut best: Vec<usize> = Vec::new();
    let mut best_key = (0u128, 0usize);
    for mask in 0u32..(1u32 << candidates.len()) {
        let chosen: Vec<usize> = (0..candidates.len())
            .filter(|&index| mask & (1u32 << index) != 0)
            .collect();
        if !is_feasible(headroom, candidates, &chosen)
            || !is_prefix_closed(banks, candidates, &chosen)
        {
            continue;
        }
        let key = (value(candidates, &chosen), chosen.len());
        if key > best_key {
            best_key = key;
            best = chosen;
        }
    }
    best
}

/// Today's release, one bank at a time: passes over the banks in index order; each bank
/// releases its payments in order while the next one, applied alone on the current
/// positions (inflows already settled count), keeps it within its headroom, and stops at
/// the first that does not fit. Repeats until a pass changes nothing.
fn greedy(headroom: &[i128], candidates: &[Candidate]) -> Vec<usize> {
    let banks = headroom.len();
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); banks];
    for (index, candidate) in candidates.iter().enumerate() {
        if is_valid(banks, candidate) {
            order[candidate.from].push(index);
        }
    }
    let mut next = vec![0usize; banks];
    let mut net = vec![0i128; banks];
    let mut settled = Vec::new();
    loop {
        let mut changed = false;
        for bank in 0..banks {
            while next[bank] < order[bank].len() {
                let index = order[bank][next[bank]];
                let candidate = candidates[index];
                let amount = i128::from(candidate.amount);
                if net[bank] + amount > room(headroom, bank) {
                    break;
                }
                net[bank] += amount;
                net[candidate.to] -= amount;
                settled.push(index);
                next[bank] += 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    settled.sort_unstable();
    settled
}

/// The headroom left once `settled` has settled (never negative when `settled` is feasible).
fn headroom_after(headroom: &[i128], candidates: &[Candidate], settled: &[usize]) -> Vec<i128> {
    let net = net_positions(headroom.len(), candidates, settled);
    headroom
        .iter()
        .zip(&net)
        .map(|(&room, &used)| room.max(0).saturating_sub(used))
        .collect()
}

/// The candidates not in `settled`, in their relative order, and each one's original index.
fn remaining(candidates: &[Candidate], settled: &[usize]) -> (Vec<Candidate>, Vec<usize>) {
    let mut taken = vec![false; candidates.len()];
    for &index in settled {
        taken[index] = true;
    }
    let original: Vec<usize> = (0..candidates.len())
        .filter(|&index| !taken[index])
        .collect();
    let rest = original.iter().map(|&index| candidates[index]).collect();
    (rest, original)
}

/// What the ledger does: greedy release, then the pass on what is left (headroom reduced by
/// what greedy settled), then greedy again on what is still left.
fn composite(headroom: &[i128], candidates: &[Candidate]) -> Vec<usize> {
    let mut settled = greedy(headroom, candidates);

    let after_greedy = headroom_after(headroom, candidates, &settled);
    let (rest, original) = remaining(candidates, &settled);
    let pass = resolve(&after_greedy, &rest);
    settled.extend(pass.settled.iter().map(|&index| original[index]));
    settled.sort_unstable();

    let after_pass = headroom_after(headroom, candidates, &settled);
    let (rest, original) = remaining(candidates, &settled);
    let again = greedy(&after_pass, &rest);
    settled.extend(again.iter().map(|&index| original[index]));
    settled.sort_unstable();
    settled
}

/// The pass written plainly: while some bank is over its headroom, the lowest-numbered one
/// drops its latest remaining payment. A different drop order from `resolve`'s (furthest
/// over first), but the largest feasible prefix-closed set is unique, so both must end there.
fn naive_pass(headroom: &[i128], candidates: &[Candidate]) -> Vec<usize> {
    let banks = headroom.len();
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); banks];
    for (index, candidate) in candidates.iter().enumerate() {
        if is_valid(banks, candidate) {
            order[candidate.from].push(index);
        }
    }
    let all: Vec<usize> = order.iter().flatten().copied().collect();
    let mut net = net_positions(banks, candidates, &all);
    loop {
        let over = (0..banks).find(|&bank| net[bank] > room(headroom, bank));
        let Some(bank) = over else {
            break;
        };
        let index = order[bank]
            .pop()
            .expect("a bank over its headroom still pays something");
        let candidate = candidates[index];
        net[bank] -= i128::from(candidate.amount);
        net[candidate.to] += i128::from(candidate.amount);
    }
    let mut settled: Vec<usize> = order.into_iter().flatten().collect();
    settled.sort_unstable();
    settled
}

/// xorshift64: a fixed-seed source for the reported summary, no RNG crate needed.
struct XorShift(u64);

impl XorShift {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform enough in `0..bound` for a test.
    fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// `banks` banks with little headroom (half of them none), `payments` payments between
/// distinct banks: most such vectors are gridlocked for one-bank-at-a-time release.
fn gridlock_vector(
    rng: &mut XorShift,
    banks: usize,
    payments: usize,
    max_amount: u64,
) -> (Vec<i128>, Vec<Candidate>) {
    let headroom: Vec<i128> = (0..banks)
        .map(|_| {
            if rng.below(2) == 0 {
                0
            } else {
                i128::from(rng.below(max_amount / 2 + 1))
            }
        })
        .collect();
    let candidates: Vec<Candidate> = (0..payments)
        .map(|_| {
            let from = rng.below(banks as u64) as usize;
            let to = (from + 1 + rng.below((banks - 1) as u64) as usize) % banks;
            pay(from, to, 1 + rng.below(max_amount))
        })
        .collect();
    (headroom, candidates)
}

// ---- Gridlocks ----------------------------------------------------------------------

#[test]
fn ring_of_banks_each_at_its_cap_settles_in_one_pass() {
    let headroom = [0i128; 5];
    let candidates = ring(&[100; 5]);
    // Gridlock: no payment fits alone, so sequential release moves nothing.
    for candidate in &candidates {
        assert!(resolve(&headroom, &[*candidate]).settled.is_empty());
    }
    assert!(greedy(&headroom, &candidates).is_empty());

    assert_eq!(
        resolve(&headroom, &candidates),
        Resolution {
            settled: vec![0, 1, 2, 3, 4],
            all_at_once: true,
            dropped: 0
        }
    );
}

#[test]
fn unequal_ring_settles_at_once_when_the_one_net_payer_has_the_difference() {
    // Bank 1 pays 120 and receives 100: a net payer of 20; bank 2 a net receiver of 20.
    let candidates = ring(&[100, 120, 100, 100, 100]);
    assert_eq!(
        resolve(&[0, 20, 0, 0, 0], &candidates),
        Resolution {
            settled: vec![0, 1, 2, 3, 4],
            all_at_once: true,
            dropped: 0
        }
    );
}

#[test]
fn ring_short_by_one_unit_unwinds_entirely() {
    // Bank 1 drops its payment; bank 2 then lacks its inflow, and so on around the ring:
    // each drop takes an inflow from the next bank.
    let candidates = ring(&[100, 120, 100, 100, 100]);
    assert_eq!(
        resolve(&[0, 19, 0, 0, 0], &candidates),
        Resolution {
            settled: vec![],
            all_at_once: false,
            dropped: 5
        }
    );
}

// ---- Partial settlement ---------------------------------------------------------------

#[test]
fn extra_payment_over_the_limit_is_dropped_and_the_ring_settles() {
    let candidates = vec![
        pay(0, 1, 100),
        pay(1, 2, 100),
        pay(2, 0, 100),
        pay(0, 1, 50),
    ];
    assert_eq!(
        resolve(&[0, 0, 0], &candidates),
        Resolution {
            settled: vec![0, 1, 2],
            all_at_once: false,
            dropped: 1
        }
    );
}

#[test]
fn of_two_equal_payments_the_later_one_is_dropped() {
    // Bank 0: ring leg, then 40, then another 40; room for one of the 40s.
    let candidates = vec![
        pay(0, 1, 100),
        pay(1, 2, 100),
        pay(2, 0, 100),
        pay(0, 2, 40),
        pay(0, 2, 40),
    ];
    assert_eq!(
        resolve(&[40, 0, 0], &candidates),
        Resolution {
            settled: vec![0, 1, 2, 3],
            all_at_once: false,
            dropped: 1
        }
    );
}

#[test]
fn the_over_limit_bank_drops_its_latest_payment_not_its_largest() {
    // Bank 0 is 20 over: dropping the later 20 fits, and so would dropping the earlier 50,
    // but release order says the later one waits.
    let candidates = vec![
        pay(0, 1, 100),
        pay(1, 2, 100),
        pay(2, 0, 100),
        pay(0, 2, 50),
        pay(0, 2, 20),
    ];
    let resolution = resolve(&[50, 0, 0], &candidates);
    assert_eq!(resolution.settled, vec![0, 1, 2, 3]);
    assert_eq!(resolution.dropped, 1);
    assert!(!resolution.all_at_once);
}

#[test]
fn a_later_payment_never_settles_ahead_of_an_earlier_one_that_does_not_fit() {
    // 10 alone would fit in 50, but the 60 before it does not, so neither settles.
    let candidates = vec![pay(0, 1, 60), pay(0, 1, 10)];
    assert_eq!(
        resolve(&[50, 0], &candidates),
        Resolution {
            settled: vec![],
            all_at_once: false,
            dropped: 2
        }
    );
}

#[test]
fn amounts_at_u64_max_offset_without_overflow() {
    let max = u64::MAX;
    let candidates = vec![
        pay(0, 1, max),
        pay(1, 2, max),
        pay(2, 0, max),
        pay(0, 1, max),
        pay(0, 1, max),
    ];
    // Bank 0 would pay out 2 × u64::MAX net; it has room for one.
    assert_eq!(
        resolve(&[i128::from(max), 0, 0], &candidates),
        Resolution {
            settled: vec![0, 1, 2, 3],
            all_at_once: false,
            dropped: 1
        }
    );
    // A bank with unbounded room pays out far beyond u64 in one pass.
    let many = vec![pay(0, 1, max); 100];
    let resolution = resolve(&[i128::MAX, 0], &many);
    assert_eq!(resolution.settled, (0..100).collect::<Vec<usize>>());
    assert!(resolution.all_at_once);
}

// ---- Edges ----------------------------------------------------------------------------

#[test]
fn no_candidates_settle_nothing_at_once() {
    let nothing = Resolution {
        settled: vec![],
        all_at_once: true,
        dropped: 0,
    };
    assert_eq!(resolve(&[0, 0, 0], &[]), nothing);
    assert_eq!(resolve(&[], &[]), nothing);
}

#[test]
fn self_payments_and_unknown_banks_are_never_settled_nor_counted() {
    let candidates = vec![
        // To itself: never settles, and does not block bank 1's order.
        pay(1, 1, 5),
        // From an unknown bank: no inflow for bank 0...
        pay(3, 0, 100),
        // ...so this one does not fit bank 0's zero headroom.
        pay(0, 1, 100),
        // To an unknown bank, though bank 2 has room.
        pay(2, 7, 5),
        // Fits bank 1's 10.
        pay(1, 0, 10),
    ];
    assert_eq!(
        resolve(&[0, 10, 1_000], &candidates),
        Resolution {
            settled: vec![4],
            all_at_once: false,
            dropped: 1
        }
    );
    // Only malformed candidates: nothing settles and nothing counts as dropped.
    let malformed = [pay(0, 0, 1), pay(0, 2, 1), pay(5, 1, 1)];
    let resolution = resolve(&[100, 100], &malformed);
    assert!(resolution.settled.is_empty());
    assert_eq!(resolution.dropped, 0);
    assert!(resolve(&[], &malformed).settled.is_empty());
}

#[test]
fn negative_headroom_counts_as_none() {
    // A ring nets to zero: it settles even for a bank below zero (not held to −500).
    let ring_of_two = vec![pay(0, 1, 100), pay(1, 0, 100)];
    assert_eq!(
        resolve(&[-500, 0], &ring_of_two),
        Resolution {
            settled: vec![0, 1],
            all_at_once: true,
            dropped: 0
        }
    );
    // It may not pay out net, not even one unit.
    assert!(resolve(&[-500, 0], &[pay(0, 1, 1)]).settled.is_empty());
    // It may still receive.
    assert_eq!(resolve(&[-500, 50], &[pay(1, 0, 50)]).settled, vec![0]);
}

// ---- Properties on large inputs -------------------------------------------------------

/// Mostly small amounts, sometimes at or near `u64::MAX`.
fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0u64..=400,
        1 => Just(u64::MAX),
        1 => (u64::MAX - 1_000)..=u64::MAX,
        1 => any::<u64>(),
    ]
}

/// Mostly 0..=1000, sometimes negative, `u64::MAX` or unbounded.
fn headroom_value() -> impl Strategy<Value = i128> {
    prop_oneof![
        3 => (0i64..=1_000).prop_map(i128::from),
        2 => Just(0i128),
        1 => (-1_000i64..0).prop_map(i128::from),
        1 => Just(i128::from(u64::MAX)),
        1 => Just(i128::MAX),
    ]
}

/// Up to 20 banks and 500 candidates; bank indices run one past the last bank, and
/// `from == to` happens, so some candidates are malformed.
fn large_case() -> impl Strategy<Value = (Vec<i128>, Vec<Candidate>)> {
    (1usize..=20).prop_flat_map(|banks| {
        let candidate = (0..=banks, 0..=banks, amount()).prop_map(|(from, to, amount)| Candidate {
            from,
            to,
            amount,
        });
        (
            proptest::collection::vec(headroom_value(), banks),
            proptest::collection::vec(candidate, 0..=500),
        )
    })
}

/// Up to 5 banks and 10 candidates (some malformed), amounts and headroom of the same
/// order, so that gridlocks are common.
fn small_case() -> impl Strategy<Value = (Vec<i128>, Vec<Candidate>)> {
    (1usize..=5).prop_flat_map(|banks| {
        let headroom = prop_oneof![
            2 => Just(0i128),
            3 => (-20i64..=150).prop_map(i128::from),
        ];
        let candidate = (0..=banks, 0..=banks, 0u64..=100)
            .prop_map(|(from, to, amount)| Candidate { from, to, amount });
        (
            proptest::collection::vec(headroom, banks),
            proptest::collection::vec(candidate, 0..=10),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn settled_set_keeps_every_bank_within_its_headroom((headroom, candidates) in large_case()) {
        let resolution = resolve(&headroom, &candidates);
        assert_sound(&headroom, &candidates, &resolution.settled);
        prop_assert_eq!(
            resolution.settled.len() + resolution.dropped,
            valid_count(headroom.len(), &candidates)
        );
        // All at once exactly when every valid candidate fits together, and then none dropped.
        let all: Vec<usize> = (0..candidates.len())
            .filter(|&index| is_valid(headroom.len(), &candidates[index]))
            .collect();
        prop_assert_eq!(resolution.all_at_once, is_feasible(&headroom, &candidates, &all));
        if resolution.all_at_once {
            prop_assert_eq!(resolution.dropped, 0);
        }
        prop_assert_eq!(&resolve(&headroom, &candidates), &resolution);
    }

    #[test]
    fn settled_set_is_a_prefix_of_each_banks_order((headroom, candidates) in large_case()) {
        let settled = resolve(&headroom, &candidates).settled;
        prop_assert!(
            is_prefix_closed(headroom.len(), &candidates, &settled),
            "settled {:?} skips a payment of some bank's order", settled
        );
    }

    #[test]
    fn resolve_settles_the_same_set_as_a_plain_drop_loop((headroom, candidates) in large_case()) {
        prop_assert_eq!(resolve(&headroom, &candidates).settled, naive_pass(&headroom, &candidates));
    }
}

// ---- Against the oracle and today's release -------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pass_alone_and_after_greedy_settles_the_brute_force_optimum(
        (headroom, candidates) in small_case()
    ) {
        let best = oracle(&headroom, &candidates);
        let alone = greedy(&headroom, &candidates);
        let both = composite(&headroom, &candidates);
        let pass = resolve(&headroom, &candidates).settled;
        assert_sound(&headroom, &candidates, &alone);
        assert_sound(&headroom, &candidates, &both);
        assert_sound(&headroom, &candidates, &pass);

        prop_assert!(value(&candidates, &both) >= value(&candidates, &alone));
        prop_assert!(value(&candidates, &both) <= value(&candidates, &best));
        // Stronger, by the uniqueness of the largest feasible prefix-closed set (file doc):
        // the pass alone and the composite both reach the optimum itself.
        prop_assert_eq!(&pass, &best);
        prop_assert_eq!(&both, &best);
    }
}

/// Reported in the notes: what greedy release alone leaves in gridlock, and what the pass
/// recovers, over fixed-seed vectors.
#[test]
fn composite_release_recovers_what_greedy_leaves_in_gridlock() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);

    const SMALL_CASES: usize = 500;
    let (mut greedy_total, mut composite_total, mut oracle_total) = (0u128, 0u128, 0u128);
    let mut improved = 0usize;
    for _ in 0..SMALL_CASES {
        let banks = 2 + rng.below(4) as usize;
        let payments = 2 + rng.below(9) as usize;
        let (headroom, candidates) = gridlock_vector(&mut rng, banks, payments, 100);
        let alone = greedy(&headroom, &candidates);
        let both = composite(&headroom, &candidates);
        let best = oracle(&headroom, &candidates);
        assert_sound(&headroom, &candidates, &both);
        let (g, c, o) = (
            value(&candidates, &alone),
            value(&candidates, &both),
            value(&candidates, &best),
        );
        assert!(g <= c && c <= o, "greedy {g}, composite {c}, optimum {o}");
        greedy_total += g;
        composite_total += c;
        oracle_total += o;
        if c > g {
            improved += 1;
        }
    }
    eprintln!(
        "liquidity pass, {SMALL_CASES} seeded vectors (2-5 banks, 2-10 payments of 1-100): \
         settled value greedy {greedy_total}, greedy+pass+greedy {composite_total}, \
         optimum {oracle_total}; pass improved on greedy in {improved} vectors"
    );

    const LARGE_CASES: usize = 50;
    let (mut greedy_large, mut composite_large, mut offered_large) = (0u128, 0u128, 0u128);
    for _ in 0..LARGE_CASES {
        let (headroom, candidates) = gridlock_vector(&mut rng, 20, 300, 500);
        let alone = greedy(&headroom, &candidates);
        let both = composite(&headroom, &candidates);
        assert_sound(&headroom, &candidates, &both);
        assert_eq!(both, resolve(&headroom, &candidates).settled);
        let all: Vec<usize> = (0..candidates.len()).collect();
        greedy_large += value(&candidates, &alone);
        composite_large += value(&candidates, &both);
        offered_large += value(&candidates, &all);
    }
    eprintln!(
        "liquidity pass, {LARGE_CASES} seeded vectors (20 banks, 300 payments of 1-500): \
         offered {offered_large}, settled value greedy {greedy_large}, \
         greedy+pass+greedy {composite_large}"
    );

    assert!(composite_total > greedy_total, "the pass recovered nothing");
    assert_eq!(composite_total, oracle_total);
    assert!(composite_large >= greedy_large);
}
