//! The API's resource shapes (what clients send and read back) and the
//! validation rules that types alone cannot express. Declared settings are
//! stored as these same serialised structs, so a read returns every setting a
//! resource was declared with, defaults filled in.

pub mod api_key;
pub mod binding;
pub mod common;
pub mod exchange;
pub mod queue;
pub mod quota;
pub mod stream;
pub mod tenant;
