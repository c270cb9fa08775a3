//! The one place a model file's `kind` is read: every family personae serves, as one enum
//! (the binding matches it to build the family's Python object).

use crate::ampcf::AmpCf;
use crate::bad_model;
use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::filter::FilterModel;
use crate::model::Model;
use crate::multvae::MultVae;
use crate::popularity::Popularity;

/// A loaded model of any family.
pub enum Family {
    MultVae(MultVae),
    AmpCf(AmpCf),
    Popularity(Popularity),
    /// EASE and the graph filters (kinds `ease`, `graph_filter`).
    Filter(FilterModel),
}

/// Every kind this version reads.
pub const KINDS: [&str; 5] = ["multvae", "ampcf", "popularity", "ease", "graph_filter"];

impl Family {
    /// Builds the family the checkpoint's `kind` names (validated by that family's rules).
    pub fn from_checkpoint(c: Checkpoint) -> Result<Self> {
        Ok(match c.kind.as_str() {
            "multvae" => Self::MultVae(MultVae::from_checkpoint(c)?),
            "ampcf" => Self::AmpCf(AmpCf::from_checkpoint(c)?),
            "popularity" => Self::Popularity(Popularity::from_checkpoint(c)?),
            "ease" | "graph_filter" => Self::Filter(FilterModel::from_checkpoint(c)?),
            other => {
                return Err(bad_model!(
                    "unknown model kind {other:?} (this personae reads {})",
                    KINDS.map(|k| format!("'{k}'")).join(", ")
                ))
            }
        })
    }

    /// The family's serving interface.
    pub fn model(&self) -> &dyn Model {
        match self {
            Self::MultVae(m) => m,
            Self::AmpCf(m) => m,
            Self::Popularity(m) => m,
            Self::Filter(m) => m,
        }
    }
}
