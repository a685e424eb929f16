"""Every router of the API, in the order they are mounted."""

from . import (
    admin_jobs,
    admin_resources,
    auth,
    datasets,
    groups,
    history,
    jobs,
    projects,
    settings,
    task_collection,
    tasks,
    templates,
    workflows,
)

ROUTERS = [
    auth.router,
    groups.router,
    admin_resources.router,
    projects.router,
    datasets.router,
    tasks.router,
    task_collection.router,
    tasks.admin_router,
    workflows.router,
    templates.router,
    jobs.router,
    admin_jobs.router,
    history.router,
    settings.router,
]
