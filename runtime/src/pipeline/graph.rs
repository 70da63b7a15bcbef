//! The stage graph: orders stages so each comes after the stages it reads from, and reports
//! a cycle with the names of the operators on it.

use super::error::Problem;
use super::model::{Location, StageSpec};
use std::collections::HashMap;

/// Orders `stages` (each with the upstream names it reads from) topologically, keeping
/// file order among stages that are ready together, and fills in `depends_on`.
pub fn order_stages(
    stages: Vec<(StageSpec, Vec<(String, Location)>)>,
) -> Result<Vec<StageSpec>, Problem> {
    let index: HashMap<String, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (s.name.clone(), i))
        .collect();
    let upstream: Vec<Vec<usize>> = stages
        .iter()
        .map(|(_, from)| {
            let mut deps: Vec<usize> = from
                .iter()
                .filter_map(|(n, _)| index.get(n).copied())
                .collect();
            deps.sort_unstable();
            deps.dedup();
            deps
        })
        .collect();

    let mut placed: Vec<Option<usize>> = vec![None; stages.len()];
    let mut order = Vec::with_capacity(stages.len());
    while order.len() < stages.len() {
        let ready = (0..stages.len())
            .find(|&i| placed[i].is_none() && upstream[i].iter().all(|&u| placed[u].is_some()));
        match ready {
            Some(i) => {
                placed[i] = Some(order.len());
                order.push(i);
            }
            None => return Err(cycle_problem(&stages, &upstream, &placed)),
        }
    }

    let mut slots: Vec<Option<(StageSpec, Vec<(String, Location)>)>> =
        stages.into_iter().map(Some).collect();
    Ok(order
        .iter()
        .map(|&i| {
            let (mut spec, _) = slots[i].take().expect("each stage is placed once");
            spec.depends_on = upstream[i]
                .iter()
                .map(|&u| placed[u].expect("upstream placed first"))
                .collect();
            spec.depends_on.sort_unstable();
            spec
        })
        .collect())
}

/// Walks upstream edges from an unplaced stage until a stage repeats: that loop is a cycle.
fn cycle_problem(
    stages: &[(StageSpec, Vec<(String, Location)>)],
    upstream: &[Vec<usize>],
    placed: &[Option<usize>],
) -> Problem {
    let start = (0..stages.len())
        .find(|&i| placed[i].is_none())
        .expect("an unplaced stage exists");
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = upstream[current]
            .iter()
            .copied()
            .find(|&u| placed[u].is_none())
            .expect("an unplaced stage waits on another unplaced stage");
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let cycle: Vec<usize> = path[pos..].to_vec();
            // Report in data-flow order: upstream first.
            let mut names: Vec<&str> = cycle
                .iter()
                .rev()
                .map(|&i| stages[i].0.name.as_str())
                .collect();
            names.push(names[0]);
            let first = &stages[cycle[cycle.len() - 1]].0;
            return Problem {
                location: first.location.clone(),
                operator: Some(first.name.clone()),
                message: format!("the operators form a cycle: {}", names.join(" -> ")),
            };
        }
        path.push(next);
        current = next;
    }
}
