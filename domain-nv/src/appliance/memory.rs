//! The memory budget ([`MemoryBudget`]): the buffer memory the open connections take, and
//! whether one more may open (`memory_budget_mb`; 0 is unlimited).
//!
//! What is accounted, per connection: the memory its socket buffers (client and replicas) and
//! its voter's buffers hold now, which grow with the bytes in flight and shrink when the
//! connection goes idle, plus a fixed part for its state ([`state_memory`]). A new connection
//! is admitted while the total plus its fixed part fits the budget; connections already open
//! may grow past it (their windows are bounded by `tcp_buffer` and `buffer_limit`).

use std::mem::size_of;

use smoltcp::socket::tcp;

use super::connection::Connection;
use crate::voter::Voter;

/// The memory of one connection's state besides its buffers, with `replicas` replica sockets:
/// the connection, its voter and its sockets (client and replicas), by their sizes.
pub(super) fn state_memory(replicas: usize) -> usize {
    size_of::<Connection>() + size_of::<Voter>() + (1 + replicas) * size_of::<tcp::Socket>()
}

/// The budget was reached: a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BudgetReached {
    /// Bytes accounted to the open connections.
    pub in_use: usize,
    /// The budget, in bytes.
    pub budget: usize,
}

/// The memory the open connections take, against the budget.
pub(super) struct MemoryBudget {
    /// Most bytes accounted before new connections are refused; 0: unlimited.
    budget: usize,
    /// Bytes accounted to the open connections.
    in_use: usize,
}

impl MemoryBudget {
    /// No connection open yet; a `budget` (bytes) of 0 is unlimited.
    pub fn new(budget: usize) -> MemoryBudget {
        MemoryBudget { budget, in_use: 0 }
    }

    /// Changes the budget (a config change); connections already open stay open even if over.
    pub fn set(&mut self, budget: usize) {
        self.budget = budget;
    }

    /// Whether a connection whose state takes `state` bytes may open: the budget must hold it
    /// on top of what is accounted already.
    pub fn admit(&self, state: usize) -> Result<(), BudgetReached> {
        if self.budget != 0 && self.in_use.saturating_add(state) > self.budget {
            return Err(BudgetReached {
                in_use: self.in_use,
                budget: self.budget,
            });
        }
        Ok(())
    }

    /// A connection that was accounted `before` bytes now takes `after` (0 once released).
    pub fn charge(&mut self, before: usize, after: usize) {
        self.in_use = self.in_use - before + after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_unlimited() {
        let mut b = MemoryBudget::new(0);
        b.charge(0, usize::MAX / 2);
        assert_eq!(b.admit(usize::MAX / 2), Ok(()));
    }

    #[test]
    fn admits_while_the_state_fits_and_follows_the_charges() {
        let mut b = MemoryBudget::new(100_000);
        assert_eq!(b.admit(100_000), Ok(()));
        assert!(b.admit(100_001).is_err());
        // Two connections: one idle (its state only), one that grew its buffers.
        b.charge(0, 10_000);
        b.charge(0, 10_000);
        b.charge(10_000, 85_000);
        assert_eq!(b.in_use, 95_000);
        assert_eq!(
            b.admit(10_000),
            Err(BudgetReached {
                in_use: 95_000,
                budget: 100_000
            })
        );
        assert_eq!(b.admit(5_000), Ok(()));
        // The busy one goes idle and shrinks: room again.
        b.charge(85_000, 10_000);
        assert_eq!(b.admit(10_000), Ok(()));
        // Released connections give everything back.
        b.charge(10_000, 0);
        b.charge(10_000, 0);
        assert_eq!(b.in_use, 0);
    }

    #[test]
    fn lowering_the_budget_refuses_new_connections_only() {
        let mut b = MemoryBudget::new(0);
        b.charge(0, 50_000);
        b.set(40_000);
        assert!(b.admit(1).is_err());
        assert_eq!(b.in_use, 50_000);
        b.charge(50_000, 0);
        assert_eq!(b.admit(40_000), Ok(()));
    }

    #[test]
    fn state_memory_grows_with_the_replicas_and_stays_small() {
        assert!(state_memory(3) > state_memory(1));
        assert!(state_memory(3) < 16 * 1024, "{}", state_memory(3));
    }
}
