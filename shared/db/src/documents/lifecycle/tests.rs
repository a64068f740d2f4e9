use super::*;

/// The table of the module doc, as (transition, from, to) rows (`to` None:
/// removed; `waiting` is checked on its own, it keeps the state it finds): a
/// change to either without the other fails here.
const TABLE: &[(Transition, &[State], Option<State>)] = &[
    (Transition::Store, &[], Some(Queued)),
    (Transition::StartTry, &[Queued, RetryWait, Processing], Some(Processing)),
    (Transition::StageDone, &[Processing], Some(Processing)),
    (Transition::Progress, &[Processing], Some(Processing)),
    (Transition::Ready, &[Processing], Some(Ready)),
    (Transition::ScheduleRetry, &[Queued, RetryWait, Processing], Some(RetryWait)),
    (Transition::Fail, &[Queued, RetryWait, Processing], Some(Failed)),
    (Transition::TakeBack, &[Processing], Some(Queued)),
    (Transition::Waiting, &[Queued, RetryWait], None),
    (Transition::CancelRequested, &[Processing], Some(Processing)),
    (Transition::Cancelled, &[Queued, RetryWait, Processing], Some(Cancelled)),
    (Transition::RetryRequested, &[Failed, Cancelled], Some(Queued)),
    (Transition::ReindexQueued, &[Ready], Some(Ready)),
    (Transition::Reindexed, &[Ready], Some(Ready)),
    (Transition::OriginalDeleted, &[Ready, Failed, Cancelled], None),
    (Transition::Delete, State::ALL, None),
];

#[test]
fn every_transition_leaves_exactly_the_states_of_the_table() {
    assert_eq!(TABLE.len(), Transition::ALL.len());
    for (transition, from, to) in TABLE {
        for state in State::ALL {
            assert_eq!(transition.leaves(*state), from.contains(state), "{transition} from {state}");
        }
        for state in from.iter() {
            let expected = if matches!(transition, Transition::Waiting | Transition::OriginalDeleted) {
                Some(*state)
            } else {
                *to
            };
            assert_eq!(transition.to(*state), expected, "{transition} from {state}");
        }
    }
}

#[test]
fn a_terminal_state_is_left_only_by_a_users_retry_a_reindex_or_delete() {
    for state in [Ready, Failed, Cancelled] {
        let leaving: Vec<Transition> = Transition::ALL.iter().copied().filter(|t| t.leaves(state)).collect();
        let expected: &[Transition] = match state {
            Ready => &[
                Transition::ReindexQueued,
                Transition::Reindexed,
                Transition::OriginalDeleted,
                Transition::Delete,
            ],
            _ => &[Transition::RetryRequested, Transition::OriginalDeleted, Transition::Delete],
        };
        assert_eq!(leaving, expected, "from {state}");
    }
}

#[test]
fn allowed_pairs_follow_the_table_and_refused_ones_do_not() {
    let refused = [
        (Ready, Processing),
        (Ready, Failed),
        (Ready, RetryWait),
        (Ready, Queued),
        (Failed, Ready),
        (Failed, Processing),
        (Cancelled, Ready),
        (Cancelled, Processing),
        (Queued, Ready),
        (RetryWait, Ready),
        (Failed, Cancelled),
        (Cancelled, Failed),
    ];
    for (from, to) in refused {
        assert!(!allowed(from, to), "{from} -> {to} must be refused");
    }
    let permitted = [
        (Queued, Processing),
        (Processing, Processing),
        (Processing, Ready),
        (Processing, RetryWait),
        (RetryWait, Processing),
        (Processing, Failed),
        (Queued, Cancelled),
        (Processing, Cancelled),
        (Failed, Queued),
        (Cancelled, Queued),
        (Ready, Ready),
        (Queued, Queued),
        (RetryWait, RetryWait),
        (Processing, Queued),
    ];
    for (from, to) in permitted {
        assert!(allowed(from, to), "{from} -> {to} must be allowed");
    }
}

#[test]
fn a_refusal_says_what_it_found() {
    let error = LifecycleError::Refused {
        transition: Transition::Ready,
        found: Found {
            state: Processing,
            attempt: 2,
            try_number: 3,
            cancel_requested: true,
            original_kept: true,
        },
    };
    assert_eq!(
        error.to_string(),
        "ready refused: the document is PROCESSING on attempt 2, try 3, cancel requested"
    );
    let error = LifecycleError::Refused {
        transition: Transition::RetryRequested,
        found: Found {
            state: Failed,
            attempt: 1,
            try_number: 3,
            cancel_requested: false,
            original_kept: false,
        },
    };
    assert_eq!(
        error.to_string(),
        "retry_requested refused: the document is FAILED on attempt 1, try 3, its original deleted by retention"
    );
}
