//! Finding stages that wait on each other through ports and can never go on.
//!
//! A stage blocked in a port call waits for some peers (the writers it receives from, the
//! readers whose channels are full, or, when the job's channel budget is full, the readers of
//! every message buffered and the writers copying one in). It can go on as soon as one of
//! those peers does
//! something. Start from every blocked stage and repeatedly drop each one that waits for a
//! stage outside the set (running, not started, or already dropped): what remains waits only
//! on itself, and is deadlocked. This never names a stage that could still be woken.

/// `waits[i]`: for a stage blocked in a port call, the peers that could wake it; `None` for
/// a stage that is not blocked. Returns the deadlocked stages, in index order.
pub fn deadlocked(waits: &[Option<Vec<usize>>]) -> Vec<usize> {
    let mut stuck: Vec<bool> = waits.iter().map(Option::is_some).collect();
    loop {
        let mut changed = false;
        for (i, wait) in waits.iter().enumerate() {
            let Some(peers) = wait else { continue };
            if stuck[i]
                && peers
                    .iter()
                    .any(|&p| !stuck.get(p).copied().unwrap_or(false))
            {
                stuck[i] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    (0..waits.len()).filter(|&i| stuck[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::deadlocked;

    #[test]
    fn two_stages_receiving_from_each_other_are_deadlocked() {
        assert_eq!(deadlocked(&[Some(vec![1]), Some(vec![0])]), vec![0, 1]);
    }

    #[test]
    fn a_wait_on_a_running_stage_is_not_a_deadlock() {
        // 0 waits on 1, 1 waits on 2, 2 is running.
        assert!(deadlocked(&[Some(vec![1]), Some(vec![2]), None]).is_empty());
    }

    #[test]
    fn a_stage_that_any_free_peer_can_wake_is_not_stuck() {
        // 0 receives from 1 and 2 (fan-in); 1 waits on 0, 2 is running.
        assert!(deadlocked(&[Some(vec![1, 2]), Some(vec![0]), None]).is_empty());
    }

    #[test]
    fn a_cycle_beside_a_free_chain_is_found_alone() {
        // 0 <-> 1 deadlocked; 2 waits on 3 which runs.
        let waits = [Some(vec![1]), Some(vec![0]), Some(vec![3]), None];
        assert_eq!(deadlocked(&waits), vec![0, 1]);
    }

    #[test]
    fn a_stage_waiting_on_a_deadlocked_cycle_is_deadlocked_too() {
        let waits = [Some(vec![1]), Some(vec![0]), Some(vec![0])];
        assert_eq!(deadlocked(&waits), vec![0, 1, 2]);
    }

    #[test]
    fn a_blocked_stage_with_no_peer_left_is_stuck() {
        assert_eq!(deadlocked(&[Some(vec![])]), vec![0]);
    }
}
