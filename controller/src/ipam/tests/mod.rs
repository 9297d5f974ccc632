//! Tests of the allocator core.
#![allow(clippy::unwrap_used, clippy::expect_used)]
