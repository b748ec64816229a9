"""The floor the long jobs stand on: kill-files, process groups, stopping, telemetry (psutil, NVML),
disk health, notifications, and the run writer wired to them. Imports only the foundation
(runs, config, atomic, paths, errors); the jobs (rl, pretrain, live), the operator tools (ops) and
the command line stand above it."""
