use super::*;

// ---------------------------------------------------------------------------
// Helpers (independent of the solver's internals)
// ---------------------------------------------------------------------------

/// [`crate::rng::SplitMix64`] with the draws the generated instances need.
pub(crate) struct SplitMix64(crate::rng::SplitMix64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(crate::rng::SplitMix64::new(seed))
    }
    /// Uniform in [lo, hi).
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.0.next_f64()
    }
    /// Uniform integer in [0, n).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }
    /// Rounded to quarter hours so exact ties and exact fits occur.
    fn hours(&mut self, lo: f64, hi: f64) -> f64 {
        (self.range(lo, hi) * 4.0).round().max(1.0) / 4.0
    }
}

fn task(id: &str, skill: &str, priority: u8, hours: f64, deadline: Option<f64>) -> Task {
    Task {
        id: id.into(),
        skill: skill.into(),
        priority,
        estimated_hours: hours,
        deadline_hours: deadline,
    }
}

fn tech(id: &str, skills: &[&str], capacity: f64, efficiency: f64) -> Technician {
    Technician {
        id: id.into(),
        skills: skills.iter().map(|s| s.to_string()).collect(),
        capacity_hours: capacity,
        efficiency,
    }
}

const TOL: f64 = 1e-6;

fn has_skill(t: &Technician, skill: &str) -> bool {
    t.skills
        .iter()
        .any(|s| s.trim().eq_ignore_ascii_case(skill.trim()))
}

/// Simulates one technician working `jobs` (deadline, duration) in EDF order.
fn edf_ok(mut jobs: Vec<(Option<f64>, f64)>, capacity: f64) -> bool {
    jobs.sort_by(|a, b| {
        a.0.unwrap_or(f64::INFINITY)
            .total_cmp(&b.0.unwrap_or(f64::INFINITY))
    });
    let mut clock = 0.0;
    for (deadline, d) in jobs {
        clock += d;
        if clock > deadline.unwrap_or(f64::INFINITY) + TOL {
            return false;
        }
    }
    clock <= capacity + TOL
}

/// Independent objective: weights from the documented formula, delta from
/// the documented formula, durations from the raw inputs.
fn score(
    tasks: &[Task],
    techs: &[Technician],
    weights: PriorityWeights,
    a: &[Option<usize>],
) -> f64 {
    let w: [f64; 4] = match weights {
        PriorityWeights::Fixed(w) => w.map(f64::from),
        PriorityWeights::Strict => {
            let mut w = [0.0; 4];
            let mut lower = 0.0;
            for (p, wp) in w.iter_mut().enumerate() {
                *wp = lower + 1.0;
                lower += tasks
                    .iter()
                    .filter(|t| t.priority as usize == p + 1)
                    .count() as f64
                    * *wp;
            }
            w
        }
    };
    let mut max_sum = 0.0;
    for t in tasks {
        let best = techs
            .iter()
            .filter(|k| has_skill(k, &t.skill))
            .map(|k| (t.estimated_hours / k.efficiency, k.capacity_hours))
            .filter(|&(d, cap)| d <= t.deadline_hours.unwrap_or(f64::INFINITY).min(cap) + TOL)
            .map(|(d, _)| d)
            .fold(f64::NAN, f64::max);
        if !best.is_nan() {
            max_sum += best;
        }
    }
    let delta = if max_sum > 0.0 { 0.5 / max_sum } else { 0.0 };
    a.iter()
        .enumerate()
        .filter_map(|(i, t)| {
            t.map(|t| {
                w[tasks[i].priority as usize - 1]
                    - delta * tasks[i].estimated_hours / techs[t].efficiency
            })
        })
        .sum()
}

/// Best objective by enumerating all (technicians + 1)^tasks assignments,
/// checking skills and EDF feasibility by simulation.
pub(crate) fn brute_force(tasks: &[Task], techs: &[Technician], weights: PriorityWeights) -> f64 {
    brute_force_with(tasks, techs, weights, true)
}

/// `brute_force`; with `deadlines == false` a task only has to meet its
/// deadline when scheduled alone (to check that instances exercise the
/// interaction between deadlines, i.e. the EDF rows).
fn brute_force_with(
    tasks: &[Task],
    techs: &[Technician],
    weights: PriorityWeights,
    deadlines: bool,
) -> f64 {
    let n = tasks.len();
    let m = techs.len();
    let total = (m + 1).pow(n as u32);
    let mut best = 0.0f64;
    let mut a = vec![None; n];
    'outer: for code in 0..total {
        let mut c = code;
        for slot in a.iter_mut() {
            let k = c % (m + 1);
            c /= m + 1;
            *slot = if k == m { None } else { Some(k) };
        }
        for (i, t) in a.iter().enumerate() {
            if t.is_some_and(|t| {
                !has_skill(&techs[t], &tasks[i].skill)
                    || !edf_ok(
                        vec![(
                            tasks[i].deadline_hours,
                            tasks[i].estimated_hours / techs[t].efficiency,
                        )],
                        f64::INFINITY,
                    )
            }) {
                continue 'outer;
            }
        }
        for (t, k) in techs.iter().enumerate() {
            let jobs: Vec<(Option<f64>, f64)> = (0..n)
                .filter(|&i| a[i] == Some(t))
                .map(|i| {
                    (
                        tasks[i].deadline_hours.filter(|_| deadlines),
                        tasks[i].estimated_hours / k.efficiency,
                    )
                })
                .collect();
            if !edf_ok(jobs, k.capacity_hours) {
                continue 'outer;
            }
        }
        best = best.max(score(tasks, techs, weights, &a));
    }
    best
}

/// Checks an [`Allocation`] against the raw input by simulation and returns
/// the assignment vector it encodes.
fn check_allocation(
    tasks: &[Task],
    techs: &[Technician],
    alloc: &Allocation,
) -> Vec<Option<usize>> {
    let mut a: Vec<Option<usize>> = vec![None; tasks.len()];
    let idx = |id: &str| {
        tasks
            .iter()
            .position(|t| t.id == id)
            .expect("known task id")
    };
    assert_eq!(alloc.schedule.len(), techs.len());
    for (t, sched) in alloc.schedule.iter().enumerate() {
        assert_eq!(sched.technician_id, techs[t].id);
        let mut clock = 0.0;
        let mut last_deadline = f64::NEG_INFINITY;
        let mut jobs = Vec::new();
        for st in &sched.tasks {
            let i = idx(&st.task_id);
            assert!(a[i].is_none(), "task {} assigned twice", st.task_id);
            a[i] = Some(t);
            assert!(
                has_skill(&techs[t], &tasks[i].skill),
                "skill mismatch for {}",
                st.task_id
            );
            let d = tasks[i].estimated_hours / techs[t].efficiency;
            assert!((st.start_hours - clock).abs() < 1e-9);
            clock += d;
            assert!((st.finish_hours - clock).abs() < 1e-9);
            let dl = tasks[i].deadline_hours.unwrap_or(f64::INFINITY);
            assert!(dl >= last_deadline, "not in EDF order");
            last_deadline = dl;
            assert!(clock <= dl + TOL, "{} misses its deadline", st.task_id);
            jobs.push((tasks[i].deadline_hours, d));
        }
        assert!(
            clock <= techs[t].capacity_hours + TOL,
            "{} over capacity",
            techs[t].id
        );
        assert!((sched.hours_used - clock).abs() < 1e-9);
        assert!((sched.utilization - clock / techs[t].capacity_hours).abs() < 1e-9);
        assert!(edf_ok(jobs, techs[t].capacity_hours));
    }
    let unassigned: Vec<&str> = alloc
        .unassigned
        .iter()
        .map(|u| u.task_id.as_str())
        .collect();
    for (i, t) in tasks.iter().enumerate() {
        assert_eq!(
            a[i].is_none(),
            unassigned.contains(&t.id.as_str()),
            "task {} accounted once",
            t.id
        );
    }
    a
}

fn random_instance(
    rng: &mut SplitMix64,
    max_tasks: u64,
    max_techs: u64,
) -> (Vec<Task>, Vec<Technician>) {
    let pool = ["network", "Windows", "linux"];
    let n = 1 + rng.below(max_tasks).max(rng.below(max_tasks)) as usize;
    let m = 1 + rng.below(max_techs) as usize;
    let tasks = (0..n)
        .map(|i| {
            // Mostly the first two skills: more competition for technicians.
            let skill = pool[[0, 0, 1, 1, 2][rng.below(5) as usize]];
            let skill = if rng.below(2) == 0 {
                skill.to_uppercase()
            } else {
                skill.to_string()
            };
            // Three quarters have deadlines, mostly below capacity, so deadline
            // interactions (not just capacity) decide many optima.
            let deadline = (rng.below(4) > 0).then(|| rng.hours(1.0, 6.0));
            task(
                &format!("t{i}"),
                &skill,
                1 + rng.below(4) as u8,
                rng.hours(0.5, 6.0),
                deadline,
            )
        })
        .collect();
    let techs = (0..m)
        .map(|k| {
            let mut skills: Vec<&str> =
                pool.iter().copied().filter(|_| rng.below(2) == 0).collect();
            if skills.is_empty() {
                skills.push(pool[rng.below(3) as usize]);
            }
            let eff = [0.5, 0.8, 1.0, 1.25, 2.0][rng.below(5) as usize];
            tech(&format!("k{k}"), &skills, rng.hours(4.0, 16.0), eff)
        })
        .collect();
    (tasks, techs)
}

// ---------------------------------------------------------------------------
// (a) hand-solvable instance
// ---------------------------------------------------------------------------

#[test]
fn hand_solved_instance() {
    // Alice: network+windows, 8 h, efficiency 1.0.
    // Bob:   network, 6 h, efficiency 2.0 (tasks take half as long).
    //
    // T1 network, critical, 4 h, due 3 h: Alice needs 4 h > 3 -> only Bob (2 h).
    // T2 windows, high,     6 h, no deadline: only Alice (6 h).
    // T3 network, medium,   4 h, no deadline: Alice has 8-6 = 2 h left
    //    after T2 (too little), Bob has 6-2 = 4 h left -> Bob (2 h).
    // T4 network, low,      6 h, no deadline: Alice would need 6 h (2 free),
    //    Bob 3 h (2 free). Making room means dropping T2 or T3, both higher
    //    priority -> unassigned, out-prioritised (it fits alone on Alice).
    // T5 windows, low,      2 h, due 9 h: Alice, EDF puts it first: T5 [0,2],
    //    T2 [2,8] -> exactly 8 h.
    //
    // Strict weights: 2 low, 1 medium, 1 high, 1 critical ->
    // w = [1, 1+2=3, 1+2+3=6, 1+2+3+6=12]; assigned 12+6+3+1 = 22, bound 23.
    // delta = 0.5 / (2 + 6 + 4 + 6 + 2) = 0.025 (longest fitting duration per
    // task); durations used 2+6+2+2 = 12 -> objective 22 - 0.3 = 21.7.
    let tasks = vec![
        task("T1", "network", 4, 4.0, Some(3.0)),
        task("T2", "windows", 3, 6.0, None),
        task("T3", "network", 2, 4.0, None),
        task("T4", "network", 1, 6.0, None),
        task("T5", "windows", 1, 2.0, Some(9.0)),
    ];
    let techs = vec![
        tech("alice", &["network", "windows"], 8.0, 1.0),
        tech("bob", &["network"], 6.0, 2.0),
    ];
    let alloc = allocate(&tasks, &techs, &AllocationOptions::default()).unwrap();
    assert_eq!(
        alloc.method,
        Method::Exact {
            solver: SOLVER_NAME
        }
    );
    check_allocation(&tasks, &techs, &alloc);
    let plan = |k: usize| -> Vec<(&str, f64, f64)> {
        alloc.schedule[k]
            .tasks
            .iter()
            .map(|s| (s.task_id.as_str(), s.start_hours, s.finish_hours))
            .collect()
    };
    assert_eq!(plan(0), vec![("T5", 0.0, 2.0), ("T2", 2.0, 8.0)]);
    assert_eq!(plan(1), vec![("T1", 0.0, 2.0), ("T3", 2.0, 4.0)]);
    assert_eq!(alloc.schedule[0].utilization, 1.0);
    assert!((alloc.schedule[1].utilization - 4.0 / 6.0).abs() < 1e-12);
    assert_eq!(
        alloc.unassigned,
        vec![Unassigned {
            task_id: "T4".into(),
            priority: 1,
            reason: UnassignedReason::OutPrioritised
        }]
    );
    assert_eq!(alloc.priority_weights, [1.0, 3.0, 6.0, 12.0]);
    assert_eq!(alloc.total_priority_weight_assigned, 22.0);
    assert_eq!(alloc.priority_weight_upper_bound, 23.0);
    assert!((alloc.objective - 21.7).abs() < 1e-9, "{}", alloc.objective);
}

// ---------------------------------------------------------------------------
// (b) deadlines force order and assignment
// ---------------------------------------------------------------------------

#[test]
fn deadlines_force_edf_order() {
    // One technician, 10 h: A (critical, no deadline), B (low, due 2),
    // C (medium, due 5). All fit only in EDF order B [0,2], C [2,5], A [5,8]:
    // the critical task goes last because it has no deadline.
    let tasks = vec![
        task("A", "db", 4, 3.0, None),
        task("B", "db", 1, 2.0, Some(2.0)),
        task("C", "db", 2, 3.0, Some(5.0)),
    ];
    let techs = vec![tech("carol", &["DB"], 10.0, 1.0)];
    let alloc = allocate(&tasks, &techs, &AllocationOptions::default()).unwrap();
    check_allocation(&tasks, &techs, &alloc);
    let order: Vec<_> = alloc.schedule[0]
        .tasks
        .iter()
        .map(|s| (s.task_id.as_str(), s.start_hours, s.finish_hours))
        .collect();
    assert_eq!(
        order,
        vec![("B", 0.0, 2.0), ("C", 2.0, 5.0), ("A", 5.0, 8.0)]
    );
    assert!(alloc.unassigned.is_empty());
}

#[test]
fn shared_deadline_admits_only_one_task() {
    // One technician with 10 h. P (high, 2 h, due 3) and Q (low, 2 h, due 3)
    // each fit alone, but together Q would finish at 4 > 3 (capacity is not
    // the issue). R (medium, 5 h, due 8) fits after P: P [0,2], R [2,7].
    // Q is out-prioritised by P.
    let tasks = vec![
        task("Q", "ops", 1, 2.0, Some(3.0)),
        task("P", "ops", 3, 2.0, Some(3.0)),
        task("R", "ops", 2, 5.0, Some(8.0)),
    ];
    let techs = vec![tech("gus", &["ops"], 10.0, 1.0)];
    let alloc = allocate(&tasks, &techs, &AllocationOptions::default()).unwrap();
    assert_eq!(
        alloc.method,
        Method::Exact {
            solver: SOLVER_NAME
        }
    );
    assert_eq!(
        check_allocation(&tasks, &techs, &alloc),
        vec![None, Some(0), Some(0)]
    );
    assert_eq!(alloc.schedule[0].tasks[1].finish_hours, 7.0);
    assert_eq!(alloc.unassigned[0].reason, UnassignedReason::OutPrioritised);
}

#[test]
fn deadline_forces_assignment_and_beats_greedy() {
    // fast: efficiency 2, 3 h; slow: efficiency 1, 10 h.
    // X (low, 4 h, due 2 h) only fits on fast (2 h); slow needs 4 h > 2.
    // Y (critical, 4 h) takes 2 h on fast but fast then needs 4 h > 3, so the
    // optimum puts Y on slow [0,4] and X on fast [0,2], assigning both.
    // Greedy places Y first on its fastest technician (fast), then X fits
    // nowhere: one task fewer.
    let tasks = vec![
        task("X", "db", 1, 4.0, Some(2.0)),
        task("Y", "db", 4, 4.0, None),
    ];
    let techs = vec![
        tech("fast", &["db"], 3.0, 2.0),
        tech("slow", &["db"], 10.0, 1.0),
    ];
    let exact = allocate(&tasks, &techs, &AllocationOptions::default()).unwrap();
    assert_eq!(
        exact.method,
        Method::Exact {
            solver: SOLVER_NAME
        }
    );
    let a = check_allocation(&tasks, &techs, &exact);
    assert_eq!(a, vec![Some(0), Some(1)]);
    assert_eq!(exact.schedule[0].tasks[0].finish_hours, 2.0);
    assert_eq!(exact.schedule[1].tasks[0].finish_hours, 4.0);

    let opts = AllocationOptions {
        max_exact_pairs: 0,
        ..Default::default()
    };
    let greedy = allocate(&tasks, &techs, &opts).unwrap();
    let g = check_allocation(&tasks, &techs, &greedy);
    assert_eq!(g, vec![None, Some(0)]);
    assert_eq!(
        greedy.unassigned[0].reason,
        UnassignedReason::OutPrioritised
    );
    assert!(greedy.objective < exact.objective - 0.5);
}

// ---------------------------------------------------------------------------
// (c) skill mismatch and other unassigned reasons
// ---------------------------------------------------------------------------

#[test]
fn skill_mismatch_and_unassigned_reasons() {
    let tasks = vec![
        task("net", " NETWORK ", 2, 1.0, None), // matches "network" case-insensitively
        task("kube", "kubernetes", 4, 1.0, None), // nobody has it
        task("rush", "network", 3, 3.0, Some(1.0)), // 3 h (1.5 h on dave) vs due 1 h
    ];
    let techs = vec![
        tech("dave", &["Network"], 8.0, 2.0),
        tech("erin", &["network"], 8.0, 1.0),
    ];
    let alloc = allocate(&tasks, &techs, &AllocationOptions::default()).unwrap();
    assert_eq!(
        alloc.method,
        Method::Exact {
            solver: SOLVER_NAME
        }
    );
    let a = check_allocation(&tasks, &techs, &alloc);
    assert_eq!(a, vec![Some(0), None, None]); // dave is faster
    assert_eq!(
        alloc.unassigned,
        vec![
            Unassigned {
                task_id: "kube".into(),
                priority: 4,
                reason: UnassignedReason::NoTechnicianWithSkill
            },
            Unassigned {
                task_id: "rush".into(),
                priority: 3,
                reason: UnassignedReason::NoCapacityBeforeDeadline {
                    shortest_duration_hours: 1.5
                },
            },
        ]
    );
    assert_eq!(alloc.priority_weight_upper_bound, alloc.priority_weights[1]);
}

// ---------------------------------------------------------------------------
// (d) exact == brute force on 200 random instances; (e) greedy feasible & <= exact
// ---------------------------------------------------------------------------

#[test]
fn exact_matches_brute_force_and_greedy_is_feasible_and_no_better() {
    let mut rng = SplitMix64::new(0xC0FFEE);
    let mut greedy_strictly_worse = 0;
    let mut deadlines_bind = 0;
    for case in 0..200 {
        let (tasks, techs) = random_instance(&mut rng, 6, 3);
        let weights = if case % 2 == 0 {
            PriorityWeights::Strict
        } else {
            PriorityWeights::Fixed([1, 2, 4, 8])
        };
        let opts = AllocationOptions {
            priority_weights: weights,
            time_limit: Duration::from_secs(30),
            ..Default::default()
        };
        let exact = allocate(&tasks, &techs, &opts).unwrap();
        assert_eq!(
            exact.method,
            Method::Exact {
                solver: SOLVER_NAME
            },
            "case {case}"
        );
        let a = check_allocation(&tasks, &techs, &exact);
        let independent = score(&tasks, &techs, weights, &a);
        assert!(
            (exact.objective - independent).abs() < 1e-9,
            "case {case}: reported objective"
        );
        let best = brute_force(&tasks, &techs, weights);
        if brute_force_with(&tasks, &techs, weights, false) > best + 1e-9 {
            deadlines_bind += 1;
        }
        assert!(
            (exact.objective - best).abs() < 1e-6,
            "case {case}: exact {} vs brute force {best}\n{tasks:#?}\n{techs:#?}",
            exact.objective
        );

        let gopts = AllocationOptions {
            max_exact_pairs: 0,
            ..opts
        };
        let greedy = allocate(&tasks, &techs, &gopts).unwrap();
        // With no eligible pairs the (empty) plan is trivially exact.
        assert_eq!(
            matches!(greedy.method, Method::Greedy { .. }),
            greedy.eligible_pairs > 0
        );
        let g = check_allocation(&tasks, &techs, &greedy);
        assert!((greedy.objective - score(&tasks, &techs, weights, &g)).abs() < 1e-9);
        assert!(
            greedy.objective <= exact.objective + 1e-9,
            "case {case}: greedy beat exact"
        );
        if greedy.objective < exact.objective - 1e-9 {
            greedy_strictly_worse += 1;
        }
    }
    // The property is only meaningful if greedy is sometimes suboptimal.
    assert!(greedy_strictly_worse > 0);
    // ... and only exercises the EDF rows if deadlines change the optimum.
    assert!(
        deadlines_bind >= 20,
        "deadlines bind in only {deadlines_bind} cases"
    );
    eprintln!("deadline interactions change the optimum in {deadlines_bind}/200 cases");
    eprintln!("greedy strictly worse than exact in {greedy_strictly_worse}/200 cases");
}

#[test]
fn greedy_feasible_and_no_better_on_medium_instances() {
    let mut rng = SplitMix64::new(42);
    for case in 0..15 {
        let (tasks, techs) = random_instance(&mut rng, 18, 5);
        let opts = AllocationOptions {
            time_limit: Duration::from_secs(20),
            max_exact_pairs: usize::MAX,
            ..Default::default()
        };
        let exact = allocate(&tasks, &techs, &opts).unwrap();
        check_allocation(&tasks, &techs, &exact);
        let greedy = allocate(
            &tasks,
            &techs,
            &AllocationOptions {
                max_exact_pairs: 0,
                ..opts
            },
        )
        .unwrap();
        check_allocation(&tasks, &techs, &greedy);
        if exact.method
            == (Method::Exact {
                solver: SOLVER_NAME,
            })
        {
            assert!(greedy.objective <= exact.objective + 1e-9, "case {case}");
        }
    }
}

// ---------------------------------------------------------------------------
// (f) fallback labelling
// ---------------------------------------------------------------------------

#[test]
fn fallback_past_size_limit_is_labelled() {
    let tasks = vec![
        task("a", "x", 1, 1.0, None),
        task("b", "x", 2, 1.0, Some(3.0)),
        task("c", "y", 3, 1.0, None),
    ];
    let techs = vec![
        tech("p", &["x", "y"], 8.0, 1.0),
        tech("q", &["x"], 8.0, 1.0),
    ];
    let pairs = eligible_pairs(&tasks, &techs, &AllocationOptions::default()).unwrap();
    assert_eq!(pairs, 5);

    let at_limit = AllocationOptions {
        max_exact_pairs: 5,
        ..Default::default()
    };
    let alloc = allocate(&tasks, &techs, &at_limit).unwrap();
    assert_eq!(
        alloc.method,
        Method::Exact {
            solver: SOLVER_NAME
        }
    );
    assert_eq!(alloc.eligible_pairs, 5);

    let over = AllocationOptions {
        max_exact_pairs: 4,
        ..Default::default()
    };
    let alloc = allocate(&tasks, &techs, &over).unwrap();
    assert_eq!(
        alloc.method,
        Method::Greedy {
            reason: FallbackReason::SizeLimit { pairs: 5, limit: 4 }
        }
    );
    check_allocation(&tasks, &techs, &alloc);
    let Method::Greedy { reason } = &alloc.method else {
        unreachable!()
    };
    assert_eq!(
        reason.to_string(),
        "5 eligible task-technician pairs exceed max_exact_pairs = 4"
    );
    // Default limit: a 100 x 20 request goes straight to greedy.
    let mut rng = SplitMix64::new(1000);
    let (tasks, techs) = timing_instance(&mut rng, 100, 20, 1.5);
    let alloc = allocate(&tasks, &techs, &AllocationOptions::default()).unwrap();
    check_allocation(&tasks, &techs, &alloc);
    assert!(alloc.eligible_pairs > DEFAULT_MAX_EXACT_PAIRS);
    assert_eq!(
        alloc.method,
        Method::Greedy {
            reason: FallbackReason::SizeLimit {
                pairs: alloc.eligible_pairs,
                limit: DEFAULT_MAX_EXACT_PAIRS
            }
        }
    );
    assert!(alloc.elapsed < Duration::from_secs(1));
}

#[test]
fn zero_time_limit_falls_back_and_is_labelled() {
    let mut rng = SplitMix64::new(7);
    let (tasks, techs) = random_instance(&mut rng, 6, 3);
    let opts = AllocationOptions {
        time_limit: Duration::ZERO,
        ..Default::default()
    };
    let alloc = allocate(&tasks, &techs, &opts).unwrap();
    check_allocation(&tasks, &techs, &alloc);
    if alloc.eligible_pairs > 0 {
        // Warm-started with greedy, so nothing better can be found in zero time.
        assert_eq!(
            alloc.method,
            Method::Greedy {
                reason: FallbackReason::TimeLimit { seconds: 0.0 }
            }
        );
    }
}

#[test]
fn choose_labels_each_outcome() {
    // One technician (4 h); a: low 3 h, b: high 3 h. Only one fits.
    let tasks = vec![task("a", "x", 1, 3.0, None), task("b", "x", 3, 3.0, None)];
    let techs = vec![tech("p", &["x"], 4.0, 1.0)];
    let inst = build_instance(&tasks, &techs, &AllocationOptions::default()).unwrap();
    let tl = FallbackReason::TimeLimit { seconds: 1.0 };
    let weak = vec![Some(0), None];
    let good = vec![None, Some(0)];
    let both = vec![Some(0), Some(0)];

    let (m, p) = choose(
        &inst,
        weak.clone(),
        ExactOutcome::Incumbent(good.clone(), tl.clone()),
    );
    assert_eq!(
        (m, p),
        (
            Method::BestFound {
                solver: SOLVER_NAME,
                reason: tl.clone()
            },
            good.clone()
        )
    );
    let (m, p) = choose(
        &inst,
        good.clone(),
        ExactOutcome::Incumbent(good.clone(), tl.clone()),
    );
    assert_eq!(
        (m, p),
        (Method::Greedy { reason: tl.clone() }, good.clone())
    );
    let (m, p) = choose(
        &inst,
        weak.clone(),
        ExactOutcome::Incumbent(both.clone(), tl.clone()),
    );
    assert_eq!(
        (m, p),
        (Method::Greedy { reason: tl.clone() }, weak.clone())
    );
    let (m, p) = choose(&inst, weak.clone(), ExactOutcome::Optimal(both));
    assert!(matches!(
        m,
        Method::Greedy {
            reason: FallbackReason::InvalidSolverPlan(_)
        }
    ));
    assert_eq!(p, weak);
    let (m, _) = choose(&inst, good.clone(), ExactOutcome::Optimal(weak.clone()));
    assert!(matches!(
        m,
        Method::Greedy {
            reason: FallbackReason::InvalidSolverPlan(_)
        }
    ));
    let (m, p) = choose(&inst, weak, ExactOutcome::Optimal(good.clone()));
    assert_eq!(
        (m, p),
        (
            Method::Exact {
                solver: SOLVER_NAME
            },
            good
        )
    );
}

#[test]
fn hard_instance_respects_time_limit_and_labels_result() {
    // 50 x 10 instance that microlp cannot prove optimal within seconds.
    let mut rng = SplitMix64::new(1000);
    let (tasks, techs) = timing_instance(&mut rng, 50, 10, 1.5);
    let opts = AllocationOptions {
        max_exact_pairs: usize::MAX,
        time_limit: Duration::from_millis(500),
        ..Default::default()
    };
    let alloc = allocate(&tasks, &techs, &opts).unwrap();
    check_allocation(&tasks, &techs, &alloc);
    assert!(
        alloc.elapsed < Duration::from_secs(10),
        "{:?}",
        alloc.elapsed
    );
    let greedy = allocate(
        &tasks,
        &techs,
        &AllocationOptions {
            max_exact_pairs: 0,
            ..opts
        },
    )
    .unwrap();
    assert!(alloc.objective >= greedy.objective - 1e-9);
    match &alloc.method {
        Method::BestFound { reason, .. } | Method::Greedy { reason } => {
            assert_eq!(*reason, FallbackReason::TimeLimit { seconds: 0.5 });
        }
        Method::Exact { .. } => {}
    }
}

#[test]
fn huge_time_limit_does_not_panic() {
    let tasks = vec![task("a", "x", 1, 1.0, None)];
    let techs = vec![tech("p", &["x"], 8.0, 1.0)];
    let opts = AllocationOptions {
        time_limit: Duration::MAX,
        ..Default::default()
    };
    assert_eq!(
        allocate(&tasks, &techs, &opts).unwrap().method,
        Method::Exact {
            solver: SOLVER_NAME
        }
    );
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

fn err(tasks: &[Task], techs: &[Technician]) -> String {
    allocate(tasks, techs, &AllocationOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn validation_names_the_field() {
    let ok_task = || task("a", "x", 1, 1.0, None);
    let ok_tech = || tech("p", &["x"], 8.0, 1.0);
    assert_eq!(
        allocate(&[], &[ok_tech()], &Default::default()).unwrap_err(),
        AllocationError::NoTasks
    );
    assert_eq!(
        allocate(&[ok_task()], &[], &Default::default()).unwrap_err(),
        AllocationError::NoTechnicians
    );

    let mut t = vec![ok_task(), ok_task()];
    assert!(
        err(&t, &[ok_tech()]).starts_with("tasks[1].id: duplicate id \"a\" (also at tasks[0].id)")
    );
    t[1].id = " ".into();
    assert!(err(&t, &[ok_tech()]).starts_with("tasks[1].id: must not be empty"));
    t[1].id = "b".into();
    t[1].skill = "".into();
    assert!(err(&t, &[ok_tech()]).starts_with("tasks[1].skill"));
    t[1].skill = "x".into();
    t[1].priority = 5;
    assert_eq!(
        err(&t, &[ok_tech()]),
        "tasks[1].priority: unknown priority 5, expected 1..=4"
    );
    t[1].priority = 0;
    assert!(err(&t, &[ok_tech()]).starts_with("tasks[1].priority"));
    t[1].priority = 2;
    for (v, msg) in [
        (0.0, "tasks[1].estimated_hours: must be > 0"),
        (-1.0, "tasks[1].estimated_hours: must be > 0"),
        (
            f64::NAN,
            "tasks[1].estimated_hours: must be a finite number",
        ),
        (
            f64::INFINITY,
            "tasks[1].estimated_hours: must be a finite number",
        ),
        (1e300, "tasks[1].estimated_hours: must be in"),
    ] {
        t[1].estimated_hours = v;
        assert!(err(&t, &[ok_tech()]).starts_with(msg), "{v}");
    }
    t[1].estimated_hours = 1.0;
    t[1].deadline_hours = Some(0.0);
    assert!(err(&t, &[ok_tech()]).starts_with("tasks[1].deadline_hours: must be > 0"));
    t[1].deadline_hours = Some(f64::NEG_INFINITY);
    assert!(err(&t, &[ok_tech()]).starts_with("tasks[1].deadline_hours: must be a finite"));

    let mut k = vec![ok_tech(), ok_tech()];
    assert!(err(&[ok_task()], &k).starts_with("technicians[1].id: duplicate id"));
    k[1].id = "q".into();
    k[1].skills = vec!["x".into(), "  ".into()];
    assert!(err(&[ok_task()], &k).starts_with("technicians[1].skills[1]: must not be empty"));
    k[1].skills = vec![];
    k[1].capacity_hours = -2.0;
    assert!(err(&[ok_task()], &k).starts_with("technicians[1].capacity_hours: must be > 0"));
    k[1].capacity_hours = 8.0;
    for (v, msg) in [
        (0.0, "technicians[1].efficiency: must be > 0"),
        (f64::NAN, "technicians[1].efficiency: must be a finite"),
        (1e-9, "technicians[1].efficiency: must be in"),
        (1e9, "technicians[1].efficiency: must be in"),
    ] {
        k[1].efficiency = v;
        assert!(err(&[ok_task()], &k).starts_with(msg), "{v}");
    }

    let bad = AllocationOptions {
        priority_weights: PriorityWeights::Fixed([1, 4, 2, 8]),
        ..Default::default()
    };
    assert_eq!(
        allocate(&[ok_task()], &[ok_tech()], &bad)
            .unwrap_err()
            .to_string(),
        "options.priority_weights[2]: weights must be >= 1 and non-decreasing, got 2"
    );
}

#[test]
fn parse_priority_accepts_numbers_and_names() {
    assert_eq!(parse_priority("low"), Some(1));
    assert_eq!(parse_priority(" Medium"), Some(2));
    assert_eq!(parse_priority("HIGH"), Some(3));
    assert_eq!(parse_priority("critical"), Some(4));
    assert_eq!(parse_priority("4"), Some(4));
    assert_eq!(parse_priority("0"), None);
    assert_eq!(parse_priority("urgent"), None);
}

#[test]
fn garbage_input_never_panics() {
    let mut rng = SplitMix64::new(99);
    let nums = [
        0.0,
        -1.0,
        1e-300,
        1e-3,
        0.5,
        1.0,
        7.0,
        1e6,
        1e7,
        f64::NAN,
        f64::INFINITY,
        f64::MIN_POSITIVE,
    ];
    let pick = |rng: &mut SplitMix64| nums[rng.below(nums.len() as u64) as usize];
    for _ in 0..500 {
        let n = rng.below(5) as usize;
        let m = rng.below(4) as usize;
        let tasks: Vec<Task> = (0..n)
            .map(|i| Task {
                id: ["a", "b", "", &format!("t{i}")][rng.below(4) as usize].to_string(),
                skill: ["x", "X", "", "y"][rng.below(4) as usize].to_string(),
                priority: [0, 1, 2, 3, 4, 5, 255][rng.below(7) as usize],
                estimated_hours: pick(&mut rng),
                deadline_hours: (rng.below(2) == 0).then(|| pick(&mut rng)),
            })
            .collect();
        let techs: Vec<Technician> = (0..m)
            .map(|k| Technician {
                id: ["p", &format!("k{k}")][rng.below(2) as usize].to_string(),
                skills: vec!["x".into(), "y".into()][..rng.below(3) as usize].to_vec(),
                capacity_hours: pick(&mut rng),
                efficiency: pick(&mut rng),
            })
            .collect();
        let max_exact_pairs = rng.below(3) as usize * 10;
        if let Ok(alloc) = allocate(
            &tasks,
            &techs,
            &AllocationOptions {
                max_exact_pairs,
                ..Default::default()
            },
        ) {
            check_allocation(&tasks, &techs, &alloc);
        }
    }
}

// ---------------------------------------------------------------------------
// Timing (run: cargo test --release -- --ignored --nocapture timing)
// ---------------------------------------------------------------------------

fn timing_instance(
    rng: &mut SplitMix64,
    n: usize,
    m: usize,
    load: f64,
) -> (Vec<Task>, Vec<Technician>) {
    let pool = ["network", "windows", "linux", "m365", "security"];
    let tasks: Vec<Task> = (0..n)
        .map(|i| {
            let deadline = (rng.below(2) == 0).then(|| rng.hours(2.0, 40.0));
            task(
                &format!("t{i}"),
                pool[rng.below(5) as usize],
                1 + rng.below(4) as u8,
                rng.hours(0.5, 8.0),
                deadline,
            )
        })
        .collect();
    let total: f64 = tasks.iter().map(|t| t.estimated_hours).sum();
    let techs = (0..m)
        .map(|k| {
            let mut skills: Vec<&str> = pool.iter().copied().filter(|_| rng.below(5) < 2).collect();
            if skills.is_empty() {
                skills.push(pool[rng.below(5) as usize]);
            }
            let cap = (total / load / m as f64 * rng.range(0.6, 1.4)).clamp(1.0, 1e6);
            tech(&format!("k{k}"), &skills, cap, rng.range(0.7, 1.3))
        })
        .collect();
    (tasks, techs)
}

/// Solve-time survey used to choose the defaults. Env: TIMING_LIMIT_S (20),
/// TIMING_SEEDS (5), TIMING_SIZES ("20x5,50x10,100x20"), TIMING_WEIGHTS=fixed.
#[test]
#[ignore]
fn timing() {
    let env = |k: &str| std::env::var(k).ok();
    let secs: f64 = env("TIMING_LIMIT_S")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20.0);
    let seeds: u64 = env("TIMING_SEEDS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let sizes: Vec<(usize, usize)> = env("TIMING_SIZES")
        .unwrap_or_else(|| "20x5,50x10,100x20".into())
        .split(',')
        .filter_map(|p| p.split_once('x'))
        .filter_map(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .collect();
    let weights = if env("TIMING_WEIGHTS").as_deref() == Some("fixed") {
        PriorityWeights::Fixed([1, 2, 4, 8])
    } else {
        PriorityWeights::Strict
    };
    for &(n, m) in &sizes {
        for &load in &[0.8, 1.5] {
            let mut times = Vec::new();
            let mut rows = Vec::new();
            for seed in 0..seeds {
                let mut rng = SplitMix64::new(1000 + seed);
                let (tasks, techs) = timing_instance(&mut rng, n, m, load);
                let opts = AllocationOptions {
                    max_exact_pairs: usize::MAX,
                    time_limit: Duration::from_secs_f64(secs),
                    priority_weights: weights,
                };
                let a = allocate(&tasks, &techs, &opts).unwrap();
                let g = allocate(
                    &tasks,
                    &techs,
                    &AllocationOptions {
                        max_exact_pairs: 0,
                        ..opts
                    },
                )
                .unwrap();
                check_allocation(&tasks, &techs, &a);
                let tag = match a.method {
                    Method::Exact { .. } => "E",
                    Method::BestFound { .. } => "B",
                    Method::Greedy { .. } => "G",
                };
                let t = a.elapsed.as_secs_f64();
                times.push(t);
                rows.push(format!(
                    "{}:{tag}:{t:.2}s:+{}",
                    a.eligible_pairs,
                    a.total_priority_weight_assigned - g.total_priority_weight_assigned
                ));
            }
            times.sort_by(f64::total_cmp);
            eprintln!(
                "{n:>3}x{m:<2} load {load}: median {:.3}s max {:.3}s  [pairs:method:time:+weight vs greedy] {}",
                times[times.len() / 2],
                times[times.len() - 1],
                rows.join(" ")
            );
        }
    }
}
