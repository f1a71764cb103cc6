"""Per-op conformance cases, mirroring the reference layout (imported on first use)."""
