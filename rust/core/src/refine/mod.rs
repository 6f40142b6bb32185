//! `tamis refine`: raw corpus in, refined corpus and a report out, resumably.
//!
//! A configuration ([`RefineConfig`]) lists stages in order; each is of a type of the
//! [`stages`] registry. Consecutive shard stages (fastText, ProX models: [`ExternalStages`])
//! form one step run shard by shard; each global stage (the dedups) is a step of its own over
//! every shard at once, writing one output per shard. Records are read, passed through and
//! written here only: a kept record is written back byte for byte, an edited one changes only
//! its text and the fields its stages set.
//!
//! Every step writes one output per shard atomically, then a completion marker (one per shard
//! for a shard step, one for a global step). A re-run skips what has a marker and redoes the
//! rest, so a killed run resumes to the output an uninterrupted run gives. The run records its
//! configuration and the content of its inputs ([`fingerprint`]): resuming with another
//! configuration, or after an input changed, is refused.

mod config;
mod external;
pub mod fingerprint;
mod html;
pub mod language;
mod observe;
mod report;
mod run;
pub mod stages;
mod stats;
mod tokens;

pub use config::{
    resolve_path, QuickOptions, RefineConfig, ReportOptions, ShardCompression, StageConfig,
    DEFAULT_STAGES,
};
pub use external::{Checked, ExternalStages, FieldColumn, NoExternal, Outcome, StageBatch};
pub use html::render_html;
pub use report::summary;
pub use run::{run_stages, Quiet, Refine, RefineObserver};
pub use stages::{
    registry_json, stage_type, Backend, Dtype, LanguageOptions, ProxModelOptions, QualityOptions,
    Scope, StageOptions, StageType, TokenizeStageOptions, STAGE_TYPES,
};
pub use stats::{hist_edges, StageStats, TokenCounter};
