//! Simulated cluster: network namespaces as nodes (see e2e/README.md).
