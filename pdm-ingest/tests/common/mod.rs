//! Shared helpers of the integration tests; the workspace-wide ones (services, unique names,
//! `eventually`, logs) are in `pdm-testkit`.

pub mod store;
