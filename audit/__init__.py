"""The append-only audit log: who did what to a project, when and from where (README, "Audit
log"). Views and commands call ``audit.log.record``."""
