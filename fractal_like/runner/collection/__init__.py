"""The task-collection queue: a runner's collector claims pending task-group activities
(collect, deactivate, reactivate, reset, delete) and runs their pipelines."""
