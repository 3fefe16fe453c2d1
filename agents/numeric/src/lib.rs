//! The numeric methods behind the MSP agents, apart from the agents themselves (which live
//! in `mesh-agents` and turn requests into calls of these):
//!
//! - [`forecast`]: revenue forecasting (AutoETS ported from augurs, augurs MSTL, seasonal ETS, chosen by
//!   rolling-origin holdout sMAPE, with prediction intervals);
//! - [`allocation`]: task-to-technician assignment as an integer program (good_lp + microlp);
//! - [`iforest`]: isolation forest;
//! - [`logistic`]: L2-regularised logistic regression fitted by Newton's method;
//! - [`gbm`]: gradient-boosted trees (the `forust-ml` booster) with exact TreeSHAP;
//! - [`tabular`]: records of any schema encoded as a standardised feature matrix, ROC-AUC;
//! - [`federated`]: federated averaging with DP-SGD, its Rényi-DP accountant and secure
//!   aggregation;
//! - [`stats`], [`rng`] and [`validation`]: descriptive statistics, a seeded generator,
//!   cross-validation folds and classification metrics.

pub mod allocation;
pub mod federated;
pub mod forecast;
pub mod gbm;
pub mod iforest;
pub mod logistic;
pub mod rng;
pub mod stats;
pub mod tabular;
pub mod validation;
