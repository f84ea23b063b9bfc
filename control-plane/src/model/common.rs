//! Shapes shared by every resource: pages, delete options and the
//! field-by-field diff behind a declare's 409.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, Difference};

/// One page of a list, in name (or id) order. Pass `next` as `after` to get the following page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Cursor for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl<T: ToSchema> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says there is more.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> Self {
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(&cursor)
        } else {
            None
        };
        Page { items: rows, next }
    }
}

pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// Return items after this cursor (the previous page's `next`).
    pub after: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> Result<u32, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::validation(
                "limit",
                "range",
                format!("must be 1 to {MAX_PAGE}"),
            ));
        }
        Ok(limit)
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Refuse (409) when the resource is in use: an exchange with bindings from it.
    #[serde(default)]
    pub if_unused: bool,
    /// Refuse (409) when a queue still holds messages.
    #[serde(default)]
    pub if_empty: bool,
}

/// Lists the top-level fields whose values differ between two serialised specs.
pub fn differences<T: Serialize>(current: &T, requested: &T) -> Vec<Difference> {
    let (Ok(serde_json::Value::Object(cur)), Ok(serde_json::Value::Object(req))) = (
        serde_json::to_value(current),
        serde_json::to_value(requested),
    ) else {
        return Vec::new();
    };
    let mut diffs = Vec::new();
    for (field, requested) in &req {
        let current = cur.get(field).cloned().unwrap_or(serde_json::Value::Null);
        if &current != requested {
            diffs.push(Difference {
                field: field.clone(),
                current,
                requested: requested.clone(),
            });
        }
    }
    diffs
}

/// Answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub name: String,
    /// Bindings removed along with the resource.
    pub bindings_removed: i64,
    /// Topology version at which the deletion happened.
    pub topology_version: i64,
}
