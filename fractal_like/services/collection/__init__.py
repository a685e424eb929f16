"""Task collection from packages: venvs, pip, manifests, and the task-group lifecycle.

A request only checks and records what to do (a TaskGroup and a pending
TaskGroupActivity, see `start`); a runner's `Collector` (`runner.collection`) claims the
activity and does the work (`collect`, `lifecycle`), so that collections survive the
request, and an activity whose process died is finished by another runner instead of
staying `ongoing` forever.
"""
