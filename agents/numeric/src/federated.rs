//! Federated learning: federated averaging with client-side DP-SGD ([`fedavg`]), the Rényi-DP
//! accountant that calibrates its noise ([`dp`]) and pairwise-masked secure aggregation
//! ([`secure_agg`]).

pub mod dp;
pub mod fedavg;
pub mod secure_agg;
