//! `POST /resource/optimize`: the caller's tasks and technicians in, an optimal assignment
//! out ([`mesh_numeric::allocation`]: an integer program solved with good_lp + microlp, with
//! a labelled greedy fallback past a size or time limit).
//!
//! `priority_mode`: `balanced` (the default, the prototype's) weighs priorities 1, 2, 4, 8;
//! `strict` makes one more task of a higher priority worth more than any number of lower
//! ones. `time_window_hours` caps every technician's capacity. `efficiency_score` is the
//! assigned priority weight as a percentage of the weight of every task that could be done
//! on its own; `time_saved_hours` is the estimated hours of the assigned tasks minus the
//! hours they take on the technicians chosen (their efficiency).

use std::time::Duration;

use mesh_numeric::allocation::{
    allocate, parse_priority, AllocationError, AllocationOptions, Method, PriorityWeights, Task,
    Technician, UnassignedReason,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{now_iso8601, Agent, AgentError, AgentKind};

/// Most tasks of one request.
pub const MAX_TASKS: usize = 2_000;
/// Most technicians of one request.
pub const MAX_TECHNICIANS: usize = 500;

/// One task.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    pub id: String,
    pub skill: String,
    /// 1 (low) to 4 (critical), or low / medium / high / critical.
    #[schema(value_type = Object)]
    pub priority: Value,
    pub estimated_hours: f64,
    /// Hours from now by which it must be finished.
    #[serde(default)]
    pub deadline_hours: Option<f64>,
}

/// One technician.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TechnicianInput {
    pub id: String,
    pub skills: Vec<String>,
    /// Hours available (default: `time_window_hours`, else 8).
    #[serde(default)]
    pub capacity_hours: Option<f64>,
    /// 1.0 = nominal; a task takes estimated_hours / efficiency (default 1.0).
    #[serde(default)]
    pub efficiency: Option<f64>,
}

/// The request.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimizeRequest {
    #[serde(default)]
    pub tasks: Option<Vec<TaskInput>>,
    #[serde(default)]
    pub technicians: Option<Vec<TechnicianInput>>,
    /// Caps every technician's capacity (hours).
    #[serde(default)]
    pub time_window_hours: Option<f64>,
    /// `balanced` (default) or `strict`.
    #[serde(default)]
    pub priority_mode: Option<String>,
    /// The prototype's counts: checked against the lists when given.
    #[serde(default)]
    pub task_count: Option<usize>,
    #[serde(default)]
    pub technician_count: Option<usize>,
}

/// A task placed on a technician's timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssignedTask {
    pub task_id: String,
    pub priority: u8,
    pub start_hours: f64,
    pub finish_hours: f64,
    pub deadline_hours: Option<f64>,
}

/// One technician's plan.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleEntry {
    pub technician_id: String,
    pub assigned_tasks: Vec<AssignedTask>,
    pub hours_used: f64,
    pub capacity_hours: f64,
    /// hours_used / capacity_hours.
    pub utilization: f64,
}

/// A task left out, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnassignedTask {
    pub task_id: String,
    pub priority: u8,
    /// no_technician_with_skill, no_capacity_before_deadline or out_prioritised.
    pub reason: String,
}

/// The plan.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OptimizeResponse {
    pub efficiency_score: f64,
    pub time_saved_hours: f64,
    pub schedule: Vec<ScheduleEntry>,
    pub unassigned: Vec<UnassignedTask>,
    pub tasks_assigned: usize,
    pub objective: f64,
    pub priority_weight_assigned: f64,
    /// The weight of every task that fits some technician on its own.
    pub priority_weight_upper_bound: f64,
    /// exact, best_found (solver's best at its time limit) or greedy.
    pub method: String,
    /// Why the plan is not proven optimal, when it is not.
    pub fallback_reason: Option<String>,
    pub priority_mode: String,
    pub solve_ms: f64,
    pub model_used: String,
    pub timestamp: String,
}

/// The resource-allocation agent.
#[derive(Debug, Default)]
pub struct ResourceAgent;

impl crate::Answer for OptimizeResponse {
    fn model_used(&self) -> &str {
        &self.model_used
    }
}

impl Agent for ResourceAgent {
    type Request = OptimizeRequest;
    type Response = OptimizeResponse;
    const KIND: AgentKind = AgentKind::ResourceAllocation;

    fn model_used(&self) -> String {
        "allocation-milp@1 (good_lp + microlp)".into()
    }

    async fn handle(&self, request: OptimizeRequest) -> Result<OptimizeResponse, AgentError> {
        let model = self.model_used();
        tokio::task::spawn_blocking(move || optimize(&request, &model))
            .await
            .map_err(|e| AgentError::Unavailable(format!("the optimiser stopped: {e}")))?
    }
}

fn allocation_error(e: AllocationError) -> AgentError {
    let message = e.to_string();
    let field = message.split(':').next().unwrap_or("tasks").to_string();
    AgentError::invalid(&field, message)
}

/// Plans one request.
pub fn optimize(request: &OptimizeRequest, model: &str) -> Result<OptimizeResponse, AgentError> {
    let (Some(tasks_in), Some(techs_in)) = (&request.tasks, &request.technicians) else {
        let field = if request.tasks.is_none() {
            "tasks"
        } else {
            "technicians"
        };
        return Err(AgentError::invalid(
            field,
            "send the `tasks` (id, skill, priority, estimated_hours, deadline_hours) and `technicians` (id, skills, capacity_hours, efficiency) to plan; counts alone are not enough",
        ));
    };
    if tasks_in.len() > MAX_TASKS {
        return Err(AgentError::invalid(
            "tasks",
            format!("at most {MAX_TASKS} tasks"),
        ));
    }
    if techs_in.len() > MAX_TECHNICIANS {
        return Err(AgentError::invalid(
            "technicians",
            format!("at most {MAX_TECHNICIANS} technicians"),
        ));
    }
    for (field, count, len) in [
        ("task_count", request.task_count, tasks_in.len()),
        ("technician_count", request.technician_count, techs_in.len()),
    ] {
        if count.is_some_and(|c| c != len) {
            return Err(AgentError::invalid(
                field,
                format!("says {} but the list holds {len}", count.unwrap_or(0)),
            ));
        }
    }
    let window = request.time_window_hours;
    if let Some(w) = window {
        if !(w.is_finite() && w > 0.0) {
            return Err(AgentError::invalid(
                "time_window_hours",
                "must be a positive number",
            ));
        }
    }
    let (mode, weights) = match request.priority_mode.as_deref().unwrap_or("balanced") {
        "balanced" => ("balanced", PriorityWeights::Fixed([1, 2, 4, 8])),
        "strict" => ("strict", PriorityWeights::Strict),
        _ => {
            return Err(AgentError::invalid(
                "priority_mode",
                "must be `balanced` or `strict`",
            ))
        }
    };
    let tasks = tasks_in
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let priority = match &t.priority {
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|p| u8::try_from(p).ok())
                    .filter(|p| (1..=4).contains(p)),
                Value::String(s) => parse_priority(s),
                _ => None,
            }
            .ok_or_else(|| {
                AgentError::invalid(
                    &format!("tasks[{i}].priority"),
                    "must be 1 to 4 or low / medium / high / critical",
                )
            })?;
            Ok(Task {
                id: t.id.clone(),
                skill: t.skill.clone(),
                priority,
                estimated_hours: t.estimated_hours,
                deadline_hours: t.deadline_hours,
            })
        })
        .collect::<Result<Vec<_>, AgentError>>()?;
    let technicians: Vec<Technician> = techs_in
        .iter()
        .map(|t| {
            let capacity = t.capacity_hours.or(window).unwrap_or(8.0);
            Technician {
                id: t.id.clone(),
                skills: t.skills.clone(),
                capacity_hours: window.map_or(capacity, |w| capacity.min(w)),
                efficiency: t.efficiency.unwrap_or(1.0),
            }
        })
        .collect();
    let options = AllocationOptions {
        priority_weights: weights,
        time_limit: Duration::from_secs(2),
        ..AllocationOptions::default()
    };
    let plan = allocate(&tasks, &technicians, &options).map_err(allocation_error)?;
    let hours: std::collections::HashMap<&str, f64> = tasks
        .iter()
        .map(|t| (t.id.as_str(), t.estimated_hours))
        .collect();
    let mut time_saved = 0.0;
    let schedule: Vec<ScheduleEntry> = plan
        .schedule
        .iter()
        .map(|s| ScheduleEntry {
            technician_id: s.technician_id.clone(),
            assigned_tasks: s
                .tasks
                .iter()
                .map(|t| {
                    time_saved += hours[t.task_id.as_str()] - t.duration_hours;
                    AssignedTask {
                        task_id: t.task_id.clone(),
                        priority: t.priority,
                        start_hours: t.start_hours,
                        finish_hours: t.finish_hours,
                        deadline_hours: t.deadline_hours,
                    }
                })
                .collect(),
            hours_used: s.hours_used,
            capacity_hours: s.capacity_hours,
            utilization: s.utilization,
        })
        .collect();
    let (method, fallback_reason) = match &plan.method {
        Method::Exact { .. } => ("exact", None),
        Method::BestFound { reason, .. } => ("best_found", Some(reason.to_string())),
        Method::Greedy { reason } => ("greedy", Some(reason.to_string())),
    };
    let model_used = match method {
        "greedy" => "allocation-greedy@1 (fallback: see fallback_reason)".to_string(),
        _ => model.to_string(),
    };
    Ok(OptimizeResponse {
        efficiency_score: if plan.priority_weight_upper_bound > 0.0 {
            100.0 * plan.total_priority_weight_assigned / plan.priority_weight_upper_bound
        } else {
            0.0
        },
        time_saved_hours: time_saved,
        tasks_assigned: schedule.iter().map(|s| s.assigned_tasks.len()).sum(),
        schedule,
        unassigned: plan
            .unassigned
            .iter()
            .map(|u| UnassignedTask {
                task_id: u.task_id.clone(),
                priority: u.priority,
                reason: match u.reason {
                    UnassignedReason::NoTechnicianWithSkill => "no_technician_with_skill",
                    UnassignedReason::NoCapacityBeforeDeadline { .. } => {
                        "no_capacity_before_deadline"
                    }
                    UnassignedReason::OutPrioritised => "out_prioritised",
                }
                .into(),
            })
            .collect(),
        objective: plan.objective,
        priority_weight_assigned: plan.total_priority_weight_assigned,
        priority_weight_upper_bound: plan.priority_weight_upper_bound,
        method: method.into(),
        fallback_reason,
        priority_mode: mode.into(),
        solve_ms: plan.elapsed.as_secs_f64() * 1e3,
        model_used,
        timestamp: now_iso8601(),
    })
}
