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

# python -m preflight.django migrate (preflight/_migrate.py)
MIGRATE_COMMAND = "preflight.migrate.command"
MIGRATE_COMMAND_FAILED = "preflight.migrate.command_failed"
MIGRATE_CURRENT = "preflight.migrate.current"
MIGRATE_DONE = "preflight.migrate.done"
MIGRATE_FAILED = "preflight.migrate.failed"
MIGRATE_INTERRUPTED = "preflight.migrate.interrupted"
MIGRATE_LOCK_LOST = "preflight.migrate.lock_lost"
MIGRATE_LOCKED = "preflight.migrate.locked"
MIGRATE_MIGRATED = "preflight.migrate.migrated"
MIGRATE_PLAN = "preflight.migrate.plan"
MIGRATE_RETRYING = "preflight.migrate.retrying"
MIGRATE_UNLOCKED = "preflight.migrate.unlocked"
MIGRATE_WAITING = "preflight.migrate.waiting"
