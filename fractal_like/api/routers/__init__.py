"""Every router of the API, in the order they are mounted."""

from . import admin_resources, auth, groups

ROUTERS = [auth.router, groups.router, admin_resources.router]
