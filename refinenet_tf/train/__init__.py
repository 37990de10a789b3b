"""Training: losses, schedules, the session loop with snapshots and resume, multi-scale training."""
