//! Budget accounting for AI requests: what each budget account has spent this period and what
//! requests in flight have reserved from it.
//!
//! A request reserves its estimated cost from every account it is charged to before it goes
//! upstream, and settles with its real cost when it ends. The admission check counts both spent
//! and reserved money, so concurrent requests can overshoot a budget only by what a request's real
//! cost exceeds its reservation, never by whole requests that all checked before any of them
//! paid. An account's spend at the start of a period is loaded from `ai_requests` once (the
//! surface does that with [`BudgetLedger::load_if_absent`]); from then on it lives here.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// One budget account: a budget, and for a per-user or per-key budget, whose.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountKey {
    pub budget: String,
    /// The user or key the account belongs to; empty for a shared pool.
    pub scope: String,
}

/// What a request is charged to in one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub key: AccountKey,
    pub limit_microdollars: u64,
    /// The start of the budget's current period (UTC).
    pub period_start: DateTime<Utc>,
    /// When the period turns: the earliest a refused request could pass.
    pub period_end: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
struct Account {
    period_start: DateTime<Utc>,
    spent: u64,
    reserved: u64,
}

/// Money held for one request in flight, to be settled with [`BudgetLedger::settle`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reservation {
    accounts: Vec<(AccountKey, DateTime<Utc>)>,
    amount: u64,
}

impl Reservation {
    pub fn amount(&self) -> u64 {
        self.amount
    }
}

/// A refusal: the budget that would be exceeded and when its period turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub budget: String,
    pub limit_microdollars: u64,
    pub spent_microdollars: u64,
    /// Held by requests in flight, which may still cost less.
    pub reserved_microdollars: u64,
    /// What this request would have reserved.
    pub estimate_microdollars: u64,
    pub period_end: DateTime<Utc>,
}

/// Spent and reserved money per account, in this process.
#[derive(Default)]
pub struct BudgetLedger {
    accounts: Mutex<HashMap<AccountKey, Account>>,
}

impl BudgetLedger {
    /// The charges whose account has no figure for its current period yet: the surface loads
    /// their spend from the database and hands it to [`Self::load_if_absent`].
    pub fn missing<'c>(&self, charges: &'c [Charge]) -> Vec<&'c Charge> {
        let accounts = self.lock();
        charges
            .iter()
            .filter(|charge| {
                accounts.get(&charge.key).is_none_or(|account| account.period_start != charge.period_start)
            })
            .collect()
    }

    /// Records the spend of an account's current period as the database knows it, unless another
    /// request loaded it meanwhile (its figure then also holds reservations made since).
    pub fn load_if_absent(&self, charge: &Charge, spent: u64) {
        let mut accounts = self.lock();
        let fresh = Account { period_start: charge.period_start, spent, reserved: 0 };
        match accounts.get_mut(&charge.key) {
            Some(account) if account.period_start == charge.period_start => {}
            Some(account) => *account = fresh,
            None => {
                accounts.insert(charge.key.clone(), fresh);
            }
        }
    }

    /// Reserves `estimate` from every account of `charges`, or refuses with the first budget it
    /// would exceed; nothing is reserved on a refusal.
    pub fn reserve(&self, charges: &[Charge], estimate: u64) -> Result<Reservation, Exceeded> {
        let mut accounts = self.lock();
        for charge in charges {
            let account = accounts.get(&charge.key).filter(|account| account.period_start == charge.period_start);
            let (spent, reserved) = account.map_or((0, 0), |account| (account.spent, account.reserved));
            // An estimate of zero (an unpriced model) still may not start once the budget is spent.
            let after = spent.saturating_add(reserved).saturating_add(estimate);
            if after > charge.limit_microdollars || spent.saturating_add(reserved) >= charge.limit_microdollars {
                return Err(Exceeded {
                    budget: charge.key.budget.clone(),
                    limit_microdollars: charge.limit_microdollars,
                    spent_microdollars: spent,
                    reserved_microdollars: reserved,
                    estimate_microdollars: estimate,
                    period_end: charge.period_end,
                });
            }
        }
        let mut reservation = Reservation { accounts: Vec::with_capacity(charges.len()), amount: estimate };
        for charge in charges {
            let account = accounts.entry(charge.key.clone()).or_insert(Account {
                period_start: charge.period_start,
                spent: 0,
                reserved: 0,
            });
            if account.period_start != charge.period_start {
                *account = Account { period_start: charge.period_start, spent: 0, reserved: 0 };
            }
            account.reserved = account.reserved.saturating_add(estimate);
            reservation.accounts.push((charge.key.clone(), charge.period_start));
        }
        Ok(reservation)
    }

    /// Releases the reservation and books the real cost (none for an unpriced model or a request
    /// that cost nothing). A period that turned meanwhile starts from the database's figure,
    /// which includes this request's row.
    pub fn settle(&self, reservation: Reservation, cost: u64) {
        let mut accounts = self.lock();
        for (key, period_start) in reservation.accounts {
            if let Some(account) = accounts.get_mut(&key)
                && account.period_start == period_start
            {
                account.reserved = account.reserved.saturating_sub(reservation.amount);
                account.spent = account.spent.saturating_add(cost);
            }
        }
    }

    /// Spent and reserved of one account in the given period, for `castellan budgets` and the API.
    pub fn figures(&self, key: &AccountKey, period_start: DateTime<Utc>) -> Option<(u64, u64)> {
        let accounts = self.lock();
        accounts
            .get(key)
            .filter(|account| account.period_start == period_start)
            .map(|account| (account.spent, account.reserved))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountKey, Account>> {
        // A panic while holding the lock cannot leave an account half-updated (every update is a
        // single assignment), so a poisoned lock is still consistent.
        self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;

    fn charge(budget: &str, scope: &str, limit: u64) -> Charge {
        Charge {
            key: AccountKey { budget: budget.into(), scope: scope.into() },
            limit_microdollars: limit,
            period_start: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            period_end: Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn reservations_count_against_the_budget_until_they_settle() {
        let ledger = BudgetLedger::default();
        let charges = [charge("monthly", "alice", 1_000)];
        let first = ledger.reserve(&charges, 600).expect("600 of 1,000 fits");
        let refused =
            ledger.reserve(&charges, 600).expect_err("a second 600 would pass the limit while the first is in flight");
        assert_eq!(refused.budget, "monthly", "the refusal names the budget");
        ledger.settle(first, 100);
        assert_eq!(
            ledger.figures(&charges[0].key, charges[0].period_start),
            Some((100, 0)),
            "settled at its real cost"
        );
        ledger.reserve(&charges, 600).expect("the release made room");
    }

    #[test]
    fn a_refusal_reserves_nothing_in_any_account() {
        let ledger = BudgetLedger::default();
        let charges = [charge("wide", "", 10_000), charge("narrow", "bob", 100)];
        assert_eq!(ledger.reserve(&charges, 500).unwrap_err().budget, "narrow");
        assert_eq!(ledger.figures(&charges[0].key, charges[0].period_start), None, "the wide account was not touched");
    }

    #[test]
    fn a_spent_budget_refuses_even_requests_estimated_at_nothing() {
        let ledger = BudgetLedger::default();
        let charges = [charge("daily", "carol", 1_000)];
        ledger.load_if_absent(&charges[0], 1_000);
        assert!(ledger.reserve(&charges, 0).is_err(), "an unpriced request may not start on a spent budget");
    }

    #[test]
    fn the_database_figure_is_loaded_once_per_period() {
        let ledger = BudgetLedger::default();
        let charges = [charge("monthly", "dave", 1_000)];
        assert_eq!(ledger.missing(&charges).len(), 1, "nothing known yet");
        ledger.load_if_absent(&charges[0], 300);
        let held = ledger.reserve(&charges, 200).unwrap();
        ledger.load_if_absent(&charges[0], 300);
        assert_eq!(
            ledger.figures(&charges[0].key, charges[0].period_start),
            Some((300, 200)),
            "a late load keeps the reservation"
        );
        assert!(ledger.missing(&charges).is_empty());
        let mut next_month = charges[0].clone();
        next_month.period_start = next_month.period_end;
        assert_eq!(ledger.missing(std::slice::from_ref(&next_month)).len(), 1, "a new period is loaded afresh");
        ledger.settle(held, 200);
    }

    #[test]
    fn concurrent_requests_overshoot_by_at_most_their_excess_over_the_reservation() {
        // 20 threads, each reserving 100 and really costing 100: the budget of 1,000 admits ten,
        // however the threads interleave, and spent never passes the limit.
        let ledger = Arc::new(BudgetLedger::default());
        let charges = Arc::new([charge("team", "", 1_000)]);
        let admitted: usize = (0..20)
            .map(|_| {
                let (ledger, charges) = (ledger.clone(), charges.clone());
                std::thread::spawn(move || match ledger.reserve(&charges[..], 100) {
                    Ok(reservation) => {
                        ledger.settle(reservation, 100);
                        1
                    }
                    Err(_) => 0,
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .sum();
        let (spent, reserved) = ledger.figures(&charges[0].key, charges[0].period_start).unwrap();
        assert_eq!((admitted, spent, reserved), (10, 1_000, 0), "exactly the budget, nothing left reserved");
    }
}
