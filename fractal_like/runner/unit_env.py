"""The environment a unit starts with: an allow-list, never the server's own variables.

The server is given its secrets through its environment (FRACTAL_LIKE_JWT_SECRET,
FRACTAL_LIKE_DB_URL with its password, FRACTAL_LIKE_ADMIN_PASSWORD, PG* or DATABASE_URL
for libraries...). A unit is a user's program: it gets only what a program needs to run
(PATH, HOME, the locale...) and what the task contract or the resource add. Whatever
starts units (the local launcher, sbatch and so the SLURM worker, pip of task collection)
starts with exactly this environment, so that nothing else can reach them, not even
through `/proc/<pid>/environ` of the process that started them.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable, Mapping

# What a program expects to find; nothing here carries a secret of the server.
# PYTHONUNBUFFERED keeps a Python unit's stdout and stderr in order in its log.
UNIT_NAMES = frozenset(
    {
        *("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "TMPDIR"),
        *("LANG", "LANGUAGE", "PYTHONUNBUFFERED"),
    }
)
UNIT_PREFIXES = ("LC_",)
# The server's own settings: refused even when an admin's export names one.
SERVER_PREFIX = "FRACTAL_LIKE_"
# Describe an account, so they follow it when units run as another one.
ACCOUNT_NAMES = ("HOME", "USER", "LOGNAME", "SHELL")

# pip and the build scripts of the packages it installs also need the network settings of
# the site and pip's own configuration.
PIP_NAMES = frozenset(
    {
        *(f"{scheme}_proxy" for scheme in ("http", "https", "all", "no")),
        *(f"{scheme}_PROXY" for scheme in ("HTTP", "HTTPS", "ALL", "NO")),
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
    }
)
PIP_PREFIXES = ("PIP_",)


def _allowed(name: str, names: frozenset[str], prefixes: tuple[str, ...]) -> bool:
    return not name.startswith(SERVER_PREFIX) and (name in names or name.startswith(prefixes))


def _account(username: str) -> dict[str, str]:
    """HOME, USER, LOGNAME and SHELL of a Unix account; empty when the account is unknown."""
    try:
        entry = pwd.getpwnam(username)
    except KeyError:
        return {}
    return {
        "HOME": entry.pw_dir,
        "USER": username,
        "LOGNAME": username,
        "SHELL": entry.pw_shell or "/bin/sh",
    }


def unit_environment(
    source: Mapping[str, str] | None = None,
    *,
    account: str | None = None,
    extra: Mapping[str, str] | None = None,
    names: Iterable[str] = (),
    prefixes: Iterable[str] = (),
) -> dict[str, str]:
    """The allow-listed part of `source` (default: this process's environment), plus `extra`.

    `account`: units run as that Unix account, so HOME, USER, LOGNAME and SHELL are its own,
    not the server's. `names`/`prefixes` widen the allow-list for one kind of child (pip).
    Nothing named FRACTAL_LIKE_* ever passes, not even from `extra`.
    """
    source = os.environ if source is None else source
    allowed_names = UNIT_NAMES | frozenset(names)
    allowed_prefixes = (*UNIT_PREFIXES, *prefixes)
    environment = {
        name: value
        for name, value in source.items()
        if _allowed(name, allowed_names, allowed_prefixes)
    }
    if account is not None:
        for name in ACCOUNT_NAMES:
            environment.pop(name, None)
        environment.update(_account(account))
    environment.setdefault("PATH", os.defpath)
    for name, value in (extra or {}).items():
        if not name.startswith(SERVER_PREFIX):
            environment[name] = value
    return environment


def pip_environment() -> dict[str, str]:
    """What pip (and the build scripts it runs) get: the units' allow-list, the network
    settings, pip's own settings, and no user site-packages shadowing the venv."""
    return unit_environment(names=PIP_NAMES, prefixes=PIP_PREFIXES, extra={"PYTHONNOUSERSITE": "1"})
