"""Every event name the preflight logs, in one place (the README's log table)."""

from __future__ import annotations

PLAN = "preflight.plan"
ATTEMPT_FAILED = "preflight.attempt_failed"
READY = "preflight.ready"
FAILED = "preflight.failed"
SKIPPED = "preflight.skipped"
INTERRUPTED = "preflight.interrupted"
CONFIG_WARNING = "preflight.config_warning"
EXTENSIONS_CREATED = "preflight.extensions_created"
REPLICA_CLUSTER_SUSPECTED = "preflight.replica_cluster_suspected"
TERMINATION_LOG_UNWRITABLE = "preflight.termination_log_unwritable"
