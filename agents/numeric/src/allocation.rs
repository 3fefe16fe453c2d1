//! Optimal assignment of MSP technicians to tasks.
//!
//! # Model
//!
//! Each task goes to at most one technician that lists its skill (compared
//! case-insensitively, surrounding whitespace ignored). On technician `t` task
//! `i` takes `d_it = estimated_hours_i / efficiency_t` hours. A technician works
//! its tasks back to back from hour 0 in earliest-deadline-first (EDF) order
//! (tasks without a deadline last). An assignment is feasible when, for every
//! technician, the total time is `<= capacity_hours` and every task finishes by
//! its deadline (both within [`FEASIBILITY_TOLERANCE_HOURS`]).
//!
//! EDF is optimal on one machine, so a set `S` of tasks fits technician `t`
//! exactly when, for every deadline `D` in `S`,
//! `sum_{i in S, deadline_i <= D} d_it <= min(D, capacity_t)` and
//! `sum_{i in S} d_it <= capacity_t`. These are linear knapsack rows, so the
//! whole problem is a 0/1 integer program over the binaries `x_it`, solved with
//! `good_lp` + `microlp` (pure Rust).
//!
//! # Objective
//!
//! Maximise `sum_it x_it * (w(priority_i) - delta * d_it)`.
//!
//! * `w` are integer priority weights. The default,
//!   [`PriorityWeights::Strict`], is lexicographic: `w(1) = 1` and
//!   `w(p+1) = 1 + (sum of w over every task of priority <= p in this request)`,
//!   so assigning one more task of a higher priority always beats any number
//!   of lower-priority tasks: a critical outage is never dropped to fit in
//!   routine tickets. [`PriorityWeights::Fixed`] (e.g. `[1, 2, 4, 8]`) allows
//!   trade-offs instead.
//! * `delta = 0.5 / sum_i max_t d_it` (over assignable tasks), so the whole
//!   secondary term is below 0.5. Weights are integers, so two plans with
//!   different priority totals differ by at least 1 and the duration term
//!   can never outweigh a priority unit. Between plans with equal priority
//!   totals, it prefers shorter total durations (more efficient technicians,
//!   more slack).
//!
//! # Exact or greedy
//!
//! The MILP is used when the number of (task, technician) variables, i.e.
//! eligible pairs where the task fits on its own, is at most
//! [`AllocationOptions::max_exact_pairs`]. It is warm-started with the greedy
//! plan below. If it proves optimality: [`Method::Exact`]. If it hits
//! [`AllocationOptions::time_limit`] holding a plan strictly better than
//! greedy: [`Method::BestFound`] (feasible, not proven optimal). Otherwise
//! (over the size limit, solver error, time limit with nothing better, or a
//! plan failing the EDF check) the greedy plan is returned:
//! [`Method::Greedy`]. Greedy takes tasks by priority (desc), then deadline
//! (asc), and gives each to the eligible technician with the shortest
//! duration that stays EDF-feasible. Every returned plan has been checked by
//! EDF simulation.
//!
//! `allocate` is CPU-bound and synchronous (up to the time limit); call it
//! from a blocking thread (e.g. `spawn_blocking`) in an async service.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use good_lp::{
    microlp, variable, Expression, ProblemVariables, Solution, SolutionStatus, SolverModel,
    Variable, WithInitialSolution, WithTimeLimit,
};

/// Slack, in hours, allowed when checking capacity and deadlines (3.6 ms).
pub const FEASIBILITY_TOLERANCE_HOURS: f64 = 1e-6;
/// Largest accepted value for any hours field (about 114 years).
pub const MAX_HOURS: f64 = 1e6;
/// Smallest accepted technician efficiency.
pub const MIN_EFFICIENCY: f64 = 1e-3;
/// Largest accepted technician efficiency.
pub const MAX_EFFICIENCY: f64 = 1e3;
/// Name reported in [`Method::Exact`].
pub const SOLVER_NAME: &str = "good_lp/microlp";
/// Default for [`AllocationOptions::max_exact_pairs`]. Measured with the
/// 2 s default time limit: up to ~90 pairs (20x5, 30x6 requests) microlp
/// usually proves optimality well within it; up to ~250 (40x8, 50x10) it
/// rarely proves but often beats greedy; at ~400-950 (70x14, 100x20) it
/// almost never improves on greedy in time, so those go straight to greedy.
pub const DEFAULT_MAX_EXACT_PAIRS: usize = 250;
/// Default for [`AllocationOptions::time_limit`].
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(2);
/// Upper cap applied to any requested time limit.
const MAX_TIME_LIMIT: Duration = Duration::from_secs(3600);

/// A unit of work to schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// Unique, non-empty identifier.
    pub id: String,
    /// Required skill (case-insensitive).
    pub skill: String,
    /// 1 = low, 2 = medium, 3 = high, 4 = critical; see [`parse_priority`].
    pub priority: u8,
    /// Effort at nominal efficiency, in hours; `0 < h <= MAX_HOURS`.
    pub estimated_hours: f64,
    /// Must finish within this many hours from now; `None` = no deadline.
    pub deadline_hours: Option<f64>,
}

/// A technician who can take tasks.
#[derive(Clone, Debug, PartialEq)]
pub struct Technician {
    /// Unique, non-empty identifier.
    pub id: String,
    /// Skills held (case-insensitive). May be empty (then never eligible).
    pub skills: Vec<String>,
    /// Hours available from now; `0 < h <= MAX_HOURS`.
    pub capacity_hours: f64,
    /// Speed factor: a task takes `estimated_hours / efficiency`.
    pub efficiency: f64,
}

/// Priority weighting used in the objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorityWeights {
    /// Lexicographic weights derived from the request (see module docs).
    Strict,
    /// Weights for priorities 1..=4; each `>= 1` and non-decreasing.
    Fixed([u32; 4]),
}

/// Solver settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AllocationOptions {
    /// Largest number of eligible (task, technician) pairs solved exactly;
    /// above it the greedy heuristic is used. `0` always uses greedy.
    pub max_exact_pairs: usize,
    /// Wall-clock limit for the MILP solver (capped at one hour); on expiry
    /// the greedy plan is returned.
    pub time_limit: Duration,
    /// Priority weighting.
    pub priority_weights: PriorityWeights,
}

impl Default for AllocationOptions {
    fn default() -> Self {
        Self {
            max_exact_pairs: DEFAULT_MAX_EXACT_PAIRS,
            time_limit: DEFAULT_TIME_LIMIT,
            priority_weights: PriorityWeights::Strict,
        }
    }
}

/// How the plan was computed.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// Proven optimal by the MILP solver.
    Exact {
        /// Solver used, e.g. `"good_lp/microlp"`.
        solver: &'static str,
    },
    /// The solver's best plan when the time limit hit: feasible and strictly
    /// better than greedy, but not proven optimal.
    BestFound {
        /// Solver used, e.g. `"good_lp/microlp"`.
        solver: &'static str,
        /// Why optimality was not proven (currently always the time limit).
        reason: FallbackReason,
    },
    /// Greedy heuristic; feasible but not necessarily optimal.
    Greedy {
        /// Why the exact solver was not used.
        reason: FallbackReason,
    },
}

/// Why the greedy heuristic was used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FallbackReason {
    /// Too many eligible pairs for the exact solver.
    #[error("{pairs} eligible task-technician pairs exceed max_exact_pairs = {limit}")]
    SizeLimit {
        /// Eligible pairs in this request.
        pairs: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The solver ran out of time before proving optimality (and, under
    /// [`Method::Greedy`], had nothing better than the greedy plan).
    #[error("solver time limit of {seconds:.3} s reached")]
    TimeLimit {
        /// The configured limit in seconds.
        seconds: f64,
    },
    /// The solver returned an error (or panicked).
    #[error("solver error: {0}")]
    SolverError(String),
    /// The solver's plan failed the EDF check or scored below greedy.
    #[error("solver returned an unusable plan: {0}")]
    InvalidSolverPlan(String),
}

/// One task placed on a technician's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledTask {
    /// Task id.
    pub task_id: String,
    /// Task priority (1..=4).
    pub priority: u8,
    /// Hours from now when work starts.
    pub start_hours: f64,
    /// Hours from now when work finishes.
    pub finish_hours: f64,
    /// `estimated_hours / efficiency`.
    pub duration_hours: f64,
    /// The task's deadline, if any.
    pub deadline_hours: Option<f64>,
}

/// A technician's plan, tasks in EDF order.
#[derive(Clone, Debug, PartialEq)]
pub struct TechnicianSchedule {
    /// Technician id.
    pub technician_id: String,
    /// Assigned tasks in the order they are worked.
    pub tasks: Vec<ScheduledTask>,
    /// Sum of durations.
    pub hours_used: f64,
    /// The technician's capacity.
    pub capacity_hours: f64,
    /// `hours_used / capacity_hours`.
    pub utilization: f64,
}

/// Why a task was left unassigned.
#[derive(Clone, Debug, PartialEq)]
pub enum UnassignedReason {
    /// No technician lists the task's skill.
    NoTechnicianWithSkill,
    /// Technicians have the skill, but none could finish the task within its
    /// capacity and before the deadline even with nothing else to do.
    NoCapacityBeforeDeadline {
        /// Shortest duration of the task over technicians with the skill.
        shortest_duration_hours: f64,
    },
    /// The task fits on some eligible technician on its own, but their time
    /// went to work the objective values more (higher priority, or equal
    /// priority done faster). Under greedy this is the heuristic's choice.
    OutPrioritised,
}

/// A task left unassigned.
#[derive(Clone, Debug, PartialEq)]
pub struct Unassigned {
    /// Task id.
    pub task_id: String,
    /// Task priority (1..=4).
    pub priority: u8,
    /// Why.
    pub reason: UnassignedReason,
}

/// Result of [`allocate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// Exact or greedy (with reason).
    pub method: Method,
    /// Objective value: priority weight minus the duration term.
    pub objective: f64,
    /// Sum of priority weights of assigned tasks.
    pub total_priority_weight_assigned: f64,
    /// Sum of priority weights of tasks that fit some technician on their
    /// own; no plan can exceed it.
    pub priority_weight_upper_bound: f64,
    /// Weights used for priorities 1..=4.
    pub priority_weights: [f64; 4],
    /// One entry per technician, in input order (possibly with no tasks).
    pub schedule: Vec<TechnicianSchedule>,
    /// Unassigned tasks, in input order.
    pub unassigned: Vec<Unassigned>,
    /// Number of eligible (task, technician) pairs (MILP variables).
    pub eligible_pairs: usize,
    /// Wall-clock time spent in `allocate`.
    pub elapsed: Duration,
}

/// Invalid input; `field` names the offending value, e.g. `tasks[3].estimated_hours`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AllocationError {
    /// The task list is empty.
    #[error("tasks: at least one task is required")]
    NoTasks,
    /// The technician list is empty.
    #[error("technicians: at least one technician is required")]
    NoTechnicians,
    /// An id or skill is empty or whitespace.
    #[error("{field}: must not be empty")]
    Empty {
        /// Offending field.
        field: String,
    },
    /// An id appears twice.
    #[error("{field}: duplicate id {id:?} (also at {first})")]
    DuplicateId {
        /// Offending field.
        field: String,
        /// The repeated id.
        id: String,
        /// Where it first appeared.
        first: String,
    },
    /// NaN or infinite.
    #[error("{field}: must be a finite number, got {value}")]
    NotFinite {
        /// Offending field.
        field: String,
        /// The value given.
        value: f64,
    },
    /// Zero or negative.
    #[error("{field}: must be > 0, got {value}")]
    NotPositive {
        /// Offending field.
        field: String,
        /// The value given.
        value: f64,
    },
    /// Outside the accepted range.
    #[error("{field}: must be in [{min}, {max}], got {value}")]
    OutOfRange {
        /// Offending field.
        field: String,
        /// The value given.
        value: f64,
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },
    /// Priority not in 1..=4.
    #[error("{field}: unknown priority {value}, expected 1..=4")]
    UnknownPriority {
        /// Offending field.
        field: String,
        /// The value given.
        value: u8,
    },
    /// Invalid [`PriorityWeights::Fixed`] entry.
    #[error("{field}: weights must be >= 1 and non-decreasing, got {value}")]
    InvalidWeight {
        /// Offending field.
        field: String,
        /// The value given.
        value: u32,
    },
}

/// Parses `"1"`..`"4"` or `low|medium|high|critical` (case-insensitive).
pub fn parse_priority(s: &str) -> Option<u8> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "low" => Some(1),
        "2" | "medium" => Some(2),
        "3" | "high" => Some(3),
        "4" | "critical" => Some(4),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Internal instance
// ---------------------------------------------------------------------------

/// Validated, normalised problem.
#[derive(Debug)]
pub(crate) struct Instance {
    /// Objective weight per task.
    pub(crate) weight: Vec<f64>,
    /// Deadline per task (`INFINITY` when none).
    pub(crate) deadline: Vec<f64>,
    pub(crate) capacity: Vec<f64>,
    /// `dur[i][t]`: duration when technician `t` has the skill, else `None`.
    pub(crate) dur: Vec<Vec<Option<f64>>>,
    /// `pairs[i]`: technicians that have the skill and on which task `i` fits alone.
    pub(crate) pairs: Vec<Vec<usize>>,
    pub(crate) delta: f64,
    pub(crate) level_weights: [f64; 4],
}

impl Instance {
    pub(crate) fn n_tasks(&self) -> usize {
        self.weight.len()
    }
    pub(crate) fn n_techs(&self) -> usize {
        self.capacity.len()
    }
    /// Objective of an assignment (`a[i] = Some(t)`); assumes eligibility.
    pub(crate) fn objective(&self, a: &[Option<usize>]) -> f64 {
        a.iter()
            .enumerate()
            .filter_map(|(i, t)| {
                t.and_then(|t| self.dur[i][t].map(|d| self.weight[i] - self.delta * d))
            })
            .sum()
    }
    fn priority_weight(&self, a: &[Option<usize>]) -> f64 {
        a.iter()
            .enumerate()
            .filter(|(_, t)| t.is_some())
            .map(|(i, _)| self.weight[i])
            .sum()
    }
    /// EDF check of one technician's task set by simulation.
    fn fits(&self, t: usize, tasks: &[usize]) -> bool {
        let mut jobs: Vec<(f64, f64)> = Vec::with_capacity(tasks.len());
        for &i in tasks {
            match self.dur[i][t] {
                Some(d) => jobs.push((self.deadline[i], d)),
                None => return false,
            }
        }
        jobs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut clock = 0.0;
        for (deadline, d) in jobs {
            clock += d;
            if clock > deadline + FEASIBILITY_TOLERANCE_HOURS {
                return false;
            }
        }
        clock <= self.capacity[t] + FEASIBILITY_TOLERANCE_HOURS
    }
    /// Full feasibility check of an assignment.
    pub(crate) fn feasible(&self, a: &[Option<usize>]) -> Result<(), String> {
        if a.len() != self.n_tasks() {
            return Err("wrong length".into());
        }
        let mut per: Vec<Vec<usize>> = vec![Vec::new(); self.n_techs()];
        for (i, t) in a.iter().enumerate() {
            if let Some(t) = *t {
                if t >= self.n_techs() || self.dur[i][t].is_none() {
                    return Err(format!("task {i} on ineligible technician {t}"));
                }
                per[t].push(i);
            }
        }
        for (t, tasks) in per.iter().enumerate() {
            if !self.fits(t, tasks) {
                return Err(format!("technician {t} violates capacity or a deadline"));
            }
        }
        Ok(())
    }
}

fn check_hours(field: String, v: f64) -> Result<f64, AllocationError> {
    if !v.is_finite() {
        Err(AllocationError::NotFinite { field, value: v })
    } else if v <= 0.0 {
        Err(AllocationError::NotPositive { field, value: v })
    } else if v > MAX_HOURS {
        Err(AllocationError::OutOfRange {
            field,
            value: v,
            min: 0.0,
            max: MAX_HOURS,
        })
    } else {
        Ok(v)
    }
}

fn normalise_skill(s: &str) -> String {
    s.trim().to_lowercase()
}

pub(crate) fn build_instance(
    tasks: &[Task],
    techs: &[Technician],
    options: &AllocationOptions,
) -> Result<Instance, AllocationError> {
    if tasks.is_empty() {
        return Err(AllocationError::NoTasks);
    }
    if techs.is_empty() {
        return Err(AllocationError::NoTechnicians);
    }
    if let PriorityWeights::Fixed(w) = options.priority_weights {
        for (k, &v) in w.iter().enumerate() {
            if v == 0 || (k > 0 && v < w[k - 1]) {
                return Err(AllocationError::InvalidWeight {
                    field: format!("options.priority_weights[{k}]"),
                    value: v,
                });
            }
        }
    }

    let mut seen: HashMap<&str, String> = HashMap::new();
    let mut task_skill = Vec::with_capacity(tasks.len());
    let mut deadline = Vec::with_capacity(tasks.len());
    let mut level_count = [0usize; 4];
    for (i, task) in tasks.iter().enumerate() {
        let f = |name: &str| format!("tasks[{i}].{name}");
        if task.id.trim().is_empty() {
            return Err(AllocationError::Empty { field: f("id") });
        }
        if let Some(first) = seen.insert(task.id.as_str(), f("id")) {
            return Err(AllocationError::DuplicateId {
                field: f("id"),
                id: task.id.clone(),
                first,
            });
        }
        let skill = normalise_skill(&task.skill);
        if skill.is_empty() {
            return Err(AllocationError::Empty { field: f("skill") });
        }
        if !(1..=4).contains(&task.priority) {
            return Err(AllocationError::UnknownPriority {
                field: f("priority"),
                value: task.priority,
            });
        }
        check_hours(f("estimated_hours"), task.estimated_hours)?;
        deadline.push(match task.deadline_hours {
            Some(d) => check_hours(f("deadline_hours"), d)?,
            None => f64::INFINITY,
        });
        level_count[usize::from(task.priority - 1)] += 1;
        task_skill.push(skill);
    }
    let mut seen: HashMap<&str, String> = HashMap::new();
    let mut tech_skills: Vec<Vec<String>> = Vec::with_capacity(techs.len());
    for (t, tech) in techs.iter().enumerate() {
        let f = |name: &str| format!("technicians[{t}].{name}");
        if tech.id.trim().is_empty() {
            return Err(AllocationError::Empty { field: f("id") });
        }
        if let Some(first) = seen.insert(tech.id.as_str(), f("id")) {
            return Err(AllocationError::DuplicateId {
                field: f("id"),
                id: tech.id.clone(),
                first,
            });
        }
        let mut skills = Vec::with_capacity(tech.skills.len());
        for (k, s) in tech.skills.iter().enumerate() {
            let s = normalise_skill(s);
            if s.is_empty() {
                return Err(AllocationError::Empty {
                    field: f(&format!("skills[{k}]")),
                });
            }
            skills.push(s);
        }
        tech_skills.push(skills);
        check_hours(f("capacity_hours"), tech.capacity_hours)?;
        let e = tech.efficiency;
        if !e.is_finite() {
            return Err(AllocationError::NotFinite {
                field: f("efficiency"),
                value: e,
            });
        }
        if e <= 0.0 {
            return Err(AllocationError::NotPositive {
                field: f("efficiency"),
                value: e,
            });
        }
        if !(MIN_EFFICIENCY..=MAX_EFFICIENCY).contains(&e) {
            return Err(AllocationError::OutOfRange {
                field: f("efficiency"),
                value: e,
                min: MIN_EFFICIENCY,
                max: MAX_EFFICIENCY,
            });
        }
    }

    let level_weights: [f64; 4] = match options.priority_weights {
        PriorityWeights::Fixed(w) => w.map(f64::from),
        PriorityWeights::Strict => {
            let mut w = [1.0f64; 4];
            let mut lower_total = 0.0;
            for p in 0..4 {
                w[p] = lower_total + 1.0;
                lower_total += level_count[p] as f64 * w[p];
            }
            w
        }
    };

    let capacity: Vec<f64> = techs.iter().map(|t| t.capacity_hours).collect();
    let mut dur = Vec::with_capacity(tasks.len());
    let mut pairs = Vec::with_capacity(tasks.len());
    let mut max_dur_sum = 0.0;
    for (i, task) in tasks.iter().enumerate() {
        let row: Vec<Option<f64>> = techs
            .iter()
            .zip(&tech_skills)
            .map(|(tech, skills)| {
                skills
                    .contains(&task_skill[i])
                    .then(|| task.estimated_hours / tech.efficiency)
            })
            .collect();
        let fit: Vec<usize> = row
            .iter()
            .enumerate()
            .filter_map(|(t, d)| {
                d.filter(|&d| d <= deadline[i].min(capacity[t]) + FEASIBILITY_TOLERANCE_HOURS)
                    .map(|_| t)
            })
            .collect();
        if let Some(m) = fit.iter().filter_map(|&t| row[t]).reduce(f64::max) {
            max_dur_sum += m;
        }
        dur.push(row);
        pairs.push(fit);
    }
    let delta = if max_dur_sum > 0.0 {
        0.5 / max_dur_sum
    } else {
        0.0
    };
    let weight = tasks
        .iter()
        .map(|t| level_weights[usize::from(t.priority - 1)])
        .collect();
    Ok(Instance {
        weight,
        deadline,
        capacity,
        dur,
        pairs,
        delta,
        level_weights,
    })
}

// ---------------------------------------------------------------------------
// Greedy
// ---------------------------------------------------------------------------

/// Greedy plan: priority desc, deadline asc; shortest feasible technician.
pub(crate) fn greedy(inst: &Instance) -> Vec<Option<usize>> {
    let n = inst.n_tasks();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        inst.weight[b]
            .total_cmp(&inst.weight[a])
            .then(inst.deadline[a].total_cmp(&inst.deadline[b]))
            .then(a.cmp(&b))
    });
    let mut assigned: Vec<Option<usize>> = vec![None; n];
    let mut per: Vec<Vec<usize>> = vec![Vec::new(); inst.n_techs()];
    for i in order {
        let mut cands: Vec<(f64, usize)> = inst.pairs[i]
            .iter()
            .filter_map(|&t| inst.dur[i][t].map(|d| (d, t)))
            .collect();
        cands.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (_, t) in cands {
            per[t].push(i);
            if inst.fits(t, &per[t]) {
                assigned[i] = Some(t);
                break;
            }
            per[t].pop();
        }
    }
    assigned
}

// ---------------------------------------------------------------------------
// Exact (MILP)
// ---------------------------------------------------------------------------

pub(crate) enum ExactOutcome {
    /// Proven optimal.
    Optimal(Vec<Option<usize>>),
    /// Best plan found before the time limit.
    Incumbent(Vec<Option<usize>>, FallbackReason),
    /// No usable plan.
    Fallback(FallbackReason),
}

pub(crate) fn solve_exact(
    inst: &Instance,
    warm: &[Option<usize>],
    time_limit: Duration,
) -> ExactOutcome {
    let n = inst.n_tasks();
    let mut vars = ProblemVariables::new();
    // (task, tech, var)
    let mut x: Vec<(usize, usize, Variable)> = Vec::new();
    for i in 0..n {
        for &t in &inst.pairs[i] {
            x.push((i, t, vars.add(variable().binary())));
        }
    }
    if x.is_empty() {
        return ExactOutcome::Optimal(vec![None; n]);
    }
    let mut objective = Expression::with_capacity(x.len());
    for &(i, t, v) in &x {
        let d = inst.dur[i][t].unwrap_or(0.0);
        objective.add_mul(inst.weight[i] - inst.delta * d, v);
    }
    let time_limit = time_limit.min(MAX_TIME_LIMIT);
    let warm_values: Vec<(Variable, f64)> = x
        .iter()
        .map(|&(i, t, v)| (v, if warm[i] == Some(t) { 1.0 } else { 0.0 }))
        .collect();
    let mut model = vars
        .maximise(objective)
        .using(microlp)
        .with_time_limit(time_limit.as_secs_f64())
        .with_initial_solution(warm_values);

    // At most one technician per task.
    let mut by_task: Vec<Vec<Variable>> = vec![Vec::new(); n];
    let mut by_tech: Vec<Vec<(f64, f64, Variable)>> = vec![Vec::new(); inst.n_techs()];
    for &(i, t, v) in &x {
        by_task[i].push(v);
        by_tech[t].push((inst.deadline[i], inst.dur[i][t].unwrap_or(0.0), v));
    }
    for vs in by_task.iter().filter(|vs| vs.len() > 1) {
        let mut e = Expression::with_capacity(vs.len());
        for &v in vs {
            e.add_mul(1.0, v);
        }
        model.add_constraint(e.leq(1.0));
    }
    // EDF knapsack rows: per technician, per distinct deadline below capacity,
    // plus total capacity. Rows that cannot bind are skipped. The rhs gets half
    // the tolerance so float noise on exact fits (e.g. 0.1 + 0.2 vs 0.3)
    // matches the simulation check.
    let slack = FEASIBILITY_TOLERANCE_HOURS / 2.0;
    for (t, jobs) in by_tech.iter_mut().enumerate() {
        jobs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let cap = inst.capacity[t];
        let mut k = 0;
        while k < jobs.len() {
            let d = jobs[k].0;
            let mut end = k;
            while end < jobs.len() && jobs[end].0 == d {
                end += 1;
            }
            let rhs = d.min(cap);
            // A group with d >= cap is dominated by the capacity row (the last group).
            if d < cap || end == jobs.len() {
                let prefix = &jobs[..end];
                let total: f64 = prefix.iter().map(|j| j.1).sum();
                if total > rhs + slack {
                    let mut e = Expression::with_capacity(prefix.len());
                    for &(_, dd, v) in prefix {
                        e.add_mul(dd, v);
                    }
                    model.add_constraint(e.leq(rhs + slack));
                }
            }
            k = end;
        }
    }

    let started = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || model.solve()));
    let solution = match result {
        Err(_) => {
            return ExactOutcome::Fallback(FallbackReason::SolverError("solver panicked".into()));
        }
        Ok(Err(e)) => {
            if started.elapsed() >= time_limit {
                return ExactOutcome::Fallback(FallbackReason::TimeLimit {
                    seconds: time_limit.as_secs_f64(),
                });
            }
            return ExactOutcome::Fallback(FallbackReason::SolverError(e.to_string()));
        }
        Ok(Ok(s)) => s,
    };
    let proven = match solution.status() {
        SolutionStatus::Optimal => true,
        SolutionStatus::TimeLimit | SolutionStatus::GapLimit => false,
    };
    let mut a = vec![None; n];
    for &(i, t, v) in &x {
        if solution.value(v) > 0.5 {
            if a[i].is_some() {
                return ExactOutcome::Fallback(FallbackReason::InvalidSolverPlan(format!(
                    "task {i} assigned twice"
                )));
            }
            a[i] = Some(t);
        }
    }
    if proven {
        ExactOutcome::Optimal(a)
    } else {
        ExactOutcome::Incumbent(
            a,
            FallbackReason::TimeLimit {
                seconds: time_limit.as_secs_f64(),
            },
        )
    }
}

/// Picks the plan to return from the solver outcome and the greedy plan.
pub(crate) fn choose(
    inst: &Instance,
    greedy_plan: Vec<Option<usize>>,
    outcome: ExactOutcome,
) -> (Method, Vec<Option<usize>>) {
    let greedy_obj = inst.objective(&greedy_plan);
    match outcome {
        ExactOutcome::Fallback(reason) => (Method::Greedy { reason }, greedy_plan),
        ExactOutcome::Optimal(plan) => {
            let problem = match inst.feasible(&plan) {
                Err(e) => Some(e),
                Ok(()) if inst.objective(&plan) < greedy_obj - 1e-9 => {
                    Some("proven-optimal plan scores below the greedy plan".to_string())
                }
                Ok(()) => None,
            };
            match problem {
                Some(msg) => (
                    Method::Greedy {
                        reason: FallbackReason::InvalidSolverPlan(msg),
                    },
                    greedy_plan,
                ),
                None => (
                    Method::Exact {
                        solver: SOLVER_NAME,
                    },
                    plan,
                ),
            }
        }
        ExactOutcome::Incumbent(plan, reason) => {
            if inst.feasible(&plan).is_ok() && inst.objective(&plan) > greedy_obj + 1e-9 {
                (
                    Method::BestFound {
                        solver: SOLVER_NAME,
                        reason,
                    },
                    plan,
                )
            } else {
                (Method::Greedy { reason }, greedy_plan)
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Public entry point
// ---------------------------------------------------------------------------

/// Number of eligible (task, technician) pairs, i.e. MILP variables, for a
/// valid request.
pub fn eligible_pairs(
    tasks: &[Task],
    technicians: &[Technician],
    options: &AllocationOptions,
) -> Result<usize, AllocationError> {
    let inst = build_instance(tasks, technicians, options)?;
    Ok(inst.pairs.iter().map(Vec::len).sum())
}

/// Assigns tasks to technicians; see the module docs for model and objective.
pub fn allocate(
    tasks: &[Task],
    technicians: &[Technician],
    options: &AllocationOptions,
) -> Result<Allocation, AllocationError> {
    let started = Instant::now();
    let inst = build_instance(tasks, technicians, options)?;
    let n_pairs: usize = inst.pairs.iter().map(Vec::len).sum();
    let greedy_plan = greedy(&inst);

    let (method, plan) = if n_pairs > options.max_exact_pairs {
        let reason = FallbackReason::SizeLimit {
            pairs: n_pairs,
            limit: options.max_exact_pairs,
        };
        (Method::Greedy { reason }, greedy_plan)
    } else {
        let outcome = solve_exact(&inst, &greedy_plan, options.time_limit);
        choose(&inst, greedy_plan, outcome)
    };

    Ok(render(
        &inst,
        tasks,
        technicians,
        method,
        &plan,
        n_pairs,
        started,
    ))
}

fn render(
    inst: &Instance,
    tasks: &[Task],
    techs: &[Technician],
    method: Method,
    plan: &[Option<usize>],
    n_pairs: usize,
    started: Instant,
) -> Allocation {
    let mut per: Vec<Vec<usize>> = vec![Vec::new(); techs.len()];
    for (i, t) in plan.iter().enumerate() {
        if let Some(t) = *t {
            per[t].push(i);
        }
    }
    let schedule = per
        .into_iter()
        .enumerate()
        .map(|(t, mut list)| {
            // EDF; ties: higher priority first, then input order.
            list.sort_by(|&a, &b| {
                inst.deadline[a]
                    .total_cmp(&inst.deadline[b])
                    .then(tasks[b].priority.cmp(&tasks[a].priority))
                    .then(a.cmp(&b))
            });
            let mut clock = 0.0;
            let items: Vec<ScheduledTask> = list
                .into_iter()
                .map(|i| {
                    let d = inst.dur[i][t].unwrap_or(0.0);
                    let start = clock;
                    clock += d;
                    ScheduledTask {
                        task_id: tasks[i].id.clone(),
                        priority: tasks[i].priority,
                        start_hours: start,
                        finish_hours: clock,
                        duration_hours: d,
                        deadline_hours: tasks[i].deadline_hours,
                    }
                })
                .collect();
            TechnicianSchedule {
                technician_id: techs[t].id.clone(),
                tasks: items,
                hours_used: clock,
                capacity_hours: techs[t].capacity_hours,
                utilization: clock / techs[t].capacity_hours,
            }
        })
        .collect();
    let unassigned = plan
        .iter()
        .enumerate()
        .filter(|(_, t)| t.is_none())
        .map(|(i, _)| {
            let shortest = inst.dur[i].iter().flatten().copied().reduce(f64::min);
            let reason = match shortest {
                None => UnassignedReason::NoTechnicianWithSkill,
                Some(s) if inst.pairs[i].is_empty() => UnassignedReason::NoCapacityBeforeDeadline {
                    shortest_duration_hours: s,
                },
                Some(_) => UnassignedReason::OutPrioritised,
            };
            Unassigned {
                task_id: tasks[i].id.clone(),
                priority: tasks[i].priority,
                reason,
            }
        })
        .collect();
    let upper: f64 = (0..inst.n_tasks())
        .filter(|&i| !inst.pairs[i].is_empty())
        .map(|i| inst.weight[i])
        .sum();
    Allocation {
        method,
        objective: inst.objective(plan),
        total_priority_weight_assigned: inst.priority_weight(plan),
        priority_weight_upper_bound: upper,
        priority_weights: inst.level_weights,
        schedule,
        unassigned,
        eligible_pairs: n_pairs,
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests;
