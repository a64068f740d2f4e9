//! Fair order among owners: start-time fair queuing, the schedule the outbox
//! relay releases owned jobs by (`api-server/src/relay.rs`).
//!
//! Every owner has a virtual *finish*: where its last released job ended on a
//! virtual clock. The next job of an owner starts at its finish, or at the
//! clock when the owner was idle and its finish lags behind (so an idle owner
//! saves no credit to burst with later), and a job takes `1 / weight` of
//! virtual time. The job released next is the waiting owner's with the
//! earliest start; ties go to the owner served least recently, then to the
//! owner whose next job is oldest. With equal
//! weights, owners with work waiting take turns one job each, whatever their
//! backlogs; an owner of weight 2 takes two turns to another's one. This is
//! deficit round robin with a quantum of one job per unit of weight, kept as
//! two numbers per owner instead of a ring.

use std::collections::VecDeque;

use uuid::Uuid;

/// The schedule's clock: the start of the job released last, and the number
/// of releases so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Clock {
    pub virtual_time: f64,
    pub turn: i64,
}

/// An owner with work waiting: its place in the schedule and its jobs, in
/// its own order (priority first, then age).
#[derive(Debug, Clone)]
pub struct Owner<T> {
    pub id: Uuid,
    /// Virtual finish of its last released job (0 for an owner never served).
    pub finish: f64,
    /// The turn of its last release (0: never).
    pub turn: i64,
    /// Its share's weight, at least 1.
    pub weight: u32,
    pub waiting: VecDeque<T>,
}

impl<T> Owner<T> {
    /// When its next job would start on `clock`.
    fn start(&self, clock: &Clock) -> f64 {
        self.finish.max(clock.virtual_time)
    }
}

/// Takes up to `n` jobs in fair order, advancing `clock` and each owner's
/// place as it goes; `age` orders jobs by when they were queued (lower is
/// older).
pub fn take<T, A: Ord>(clock: &mut Clock, owners: &mut [Owner<T>], n: usize, age: impl Fn(&T) -> A) -> Vec<T> {
    let mut taken = Vec::with_capacity(n);
    while taken.len() < n {
        let next = owners.iter_mut().filter(|owner| !owner.waiting.is_empty()).min_by(|a, b| {
            a.start(clock)
                .total_cmp(&b.start(clock))
                .then(a.turn.cmp(&b.turn))
                .then_with(|| a.waiting.front().map(&age).cmp(&b.waiting.front().map(&age)))
        });
        let Some(owner) = next else { break };
        let start = owner.start(clock);
        clock.virtual_time = start;
        clock.turn += 1;
        owner.finish = start + 1.0 / f64::from(owner.weight.max(1));
        owner.turn = clock.turn;
        taken.extend(owner.waiting.pop_front());
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(name: char, weight: u32, jobs: usize) -> Owner<String> {
        Owner {
            id: Uuid::from_u128(name as u128),
            finish: 0.0,
            turn: 0,
            weight,
            waiting: (1..=jobs).map(|n| format!("{name}{n}")).collect(),
        }
    }

    fn order(taken: Vec<String>) -> String {
        taken.join(" ")
    }

    #[test]
    fn owners_take_turns_whatever_their_backlogs() {
        let mut clock = Clock::default();
        let mut owners = vec![owner('a', 1, 100), owner('b', 1, 2), owner('c', 1, 3)];
        assert_eq!(order(take(&mut clock, &mut owners, 9, String::clone)), "a1 b1 c1 a2 b2 c2 a3 c3 a4");
        assert_eq!(clock.turn, 9);
    }

    #[test]
    fn a_newcomer_goes_next_and_an_idle_owner_saves_no_credit() {
        let mut clock = Clock::default();
        let mut owners = vec![owner('a', 1, 100)];
        assert_eq!(
            order(take(&mut clock, &mut owners, 50, String::clone)),
            (1..=50).map(|n| format!("a{n}")).collect::<Vec<_>>().join(" ")
        );
        // B arrives after A's fiftieth job: its next job starts at the clock,
        // before A's next, and the two then alternate rather than B taking
        // fifty in a row.
        owners.push(owner('b', 1, 5));
        assert_eq!(order(take(&mut clock, &mut owners, 6, String::clone)), "b1 a51 b2 a52 b3 a53");
    }

    #[test]
    fn a_weight_of_two_takes_two_turns_to_one() {
        let mut clock = Clock::default();
        let mut owners = vec![owner('a', 1, 100), owner('c', 2, 100)];
        let taken = take(&mut clock, &mut owners, 30, String::clone);
        let c = taken.iter().filter(|job| job.starts_with('c')).count();
        assert_eq!(c, 20, "{taken:?}");
    }

    #[test]
    fn nothing_waiting_takes_nothing() {
        let mut clock = Clock::default();
        let mut owners = vec![owner('a', 1, 2)];
        assert_eq!(take(&mut clock, &mut owners, 5, String::clone).len(), 2);
        assert!(take(&mut clock, &mut owners, 5, String::clone).is_empty());
        assert_eq!(clock.turn, 2);
    }
}
