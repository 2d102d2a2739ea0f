//! Offline evaluations that run Inkling's real components on public data sets.

pub mod sessions;
pub mod slots;
