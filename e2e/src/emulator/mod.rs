//! Kubernetes API emulator (see e2e/README.md).
