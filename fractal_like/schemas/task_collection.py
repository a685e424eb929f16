"""The form of POST /api/v2/task/collect/pip/, checked field by field.

The client sends form fields (not JSON): `package` or an uploaded wheel `file`,
`package_version`, `package_extras`, `python_version`, and the pins as JSON strings.
Every value ends up as one argv item of a pip command, never in a shell; still, each is
held to its standard (PEP 508 names, PEP 440 versions, wheel file names) so that pip gets
exactly one requirement per item and errors come back before anything is installed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

MAX_NAME_LENGTH = 200
MAX_VERSION_LENGTH = 100
MAX_EXTRAS = 20
MAX_PINS = 100
MAX_PINS_JSON = 20_000
MAX_WHEEL_NAME_LENGTH = 255

# PEP 508 names (also extras): letters and digits, inner '.', '_', '-'.
_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_WHEEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*\.whl$")
_PYTHON_VERSION = re.compile(r"^3\.\d{1,2}$")


class CollectRequestError(ValueError):
    """A field of the collection form is wrong; the message says which and why."""


def package_name(value: str, what: str = "package") -> str:
    """A PEP 508 name, normalised (PEP 503: lower case, runs of -_. become one -)."""
    value = value.strip()
    if not value:
        raise CollectRequestError(f"{what} is empty")
    if len(value) > MAX_NAME_LENGTH or not _NAME.match(value):
        raise CollectRequestError(
            f"{what} {value[:80]!r} is not a valid package name: use letters, digits and "
            "inner '.', '_' or '-' (a path, URL or version specifier is not accepted here)"
        )
    return canonicalize_name(value)


def package_version(value: str, what: str = "package_version") -> str:
    """A PEP 440 version, in its normal form (e.g. '1.0.0rc1')."""
    value = value.strip()
    if not value or len(value) > MAX_VERSION_LENGTH:
        raise CollectRequestError(f"{what} must be a version such as 1.2.0")
    try:
        return str(Version(value))
    except InvalidVersion:
        raise CollectRequestError(
            f"{what} {value[:80]!r} is not a valid version (PEP 440, e.g. 1.2.0): "
            "give one exact version, without '==' or other specifiers"
        ) from None


def package_extras(value: str) -> list[str]:
    """Comma-separated extras, e.g. 'gpu,napari' (brackets are added by the server)."""
    names = [item.strip() for item in value.split(",")]
    if not any(names):
        raise CollectRequestError("package_extras is empty")
    if len(names) > MAX_EXTRAS:
        raise CollectRequestError(f"package_extras lists more than {MAX_EXTRAS} extras")
    extras: list[str] = []
    for name in names:
        normal = package_name(name, "an extra of package_extras")
        if normal not in extras:
            extras.append(normal)
    return extras


def pinned_versions(value: str, what: str) -> dict[str, str]:
    """A JSON object {package name: exact version}, as `fractal task collect` sends it."""
    if len(value) > MAX_PINS_JSON:
        raise CollectRequestError(f"{what} is longer than {MAX_PINS_JSON} characters")
    try:
        data = json.loads(value)
    except json.JSONDecodeError as error:
        raise CollectRequestError(f"{what} is not valid JSON ({error.msg})") from None
    if not isinstance(data, dict):
        raise CollectRequestError(f'{what} must be a JSON object such as {{"numpy": "1.26.4"}}')
    if len(data) > MAX_PINS:
        raise CollectRequestError(f"{what} pins more than {MAX_PINS} packages")
    pins: dict[str, str] = {}
    for name, version in data.items():
        if not isinstance(version, str):
            raise CollectRequestError(f"{what}: the version of {name!r} must be a string")
        normal = package_name(name, f"a package name in {what}")
        if normal in pins:
            raise CollectRequestError(f"{what} pins {normal!r} twice")
        pins[normal] = package_version(version, f"{what}[{name!r}]")
    return pins


def python_version(value: str) -> str:
    value = value.strip()
    if not _PYTHON_VERSION.match(value):
        raise CollectRequestError(f"python_version {value[:20]!r} must look like 3.12")
    return value


@dataclass(frozen=True)
class WheelName:
    filename: str
    pkg_name: str
    version: str


def wheel_name(filename: str | None) -> WheelName:
    """The package name and version of an uploaded wheel, from its file name."""
    if not filename:
        raise CollectRequestError("the uploaded file has no name: it must be a .whl file")
    if len(filename) > MAX_WHEEL_NAME_LENGTH or not _WHEEL_NAME.match(filename):
        raise CollectRequestError(
            f"{filename[:80]!r} is not a wheel file name (name-version-tags.whl, without folders)"
        )
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion) as error:
        raise CollectRequestError(f"{filename!r} is not a valid wheel file name: {error}") from None
    return WheelName(filename, canonicalize_name(name), str(version))


@dataclass(frozen=True)
class CollectPipRequest:
    """The checked form: exactly one of `package` and `wheel` is set."""

    package: str | None
    wheel: WheelName | None
    version: str | None
    python_version: str | None
    extras: list[str] = field(default_factory=list)
    pins_pre: dict[str, str] = field(default_factory=dict)
    pins_post: dict[str, str] = field(default_factory=dict)

    @property
    def pkg_name(self) -> str:
        return self.wheel.pkg_name if self.wheel is not None else (self.package or "")


def _given(value: str | None) -> str | None:
    # The client leaves out what the user did not give; an empty field counts as left out.
    return value if value is not None and value.strip() else None


def parse_collect_form(
    *,
    package: str | None,
    package_version_field: str | None,
    python_version_field: str | None,
    package_extras_field: str | None,
    pins_pre_field: str | None,
    pins_post_field: str | None,
    wheel_filename: str | None,
    has_file: bool,
) -> CollectPipRequest:
    package = _given(package)
    version = _given(package_version_field)
    if has_file:
        if package is not None:
            raise CollectRequestError("give either package or a wheel file, not both")
        if version is not None:
            raise CollectRequestError(
                "package_version cannot be given with a wheel file: its version is in its name"
            )
        wheel: WheelName | None = wheel_name(wheel_filename)
        name = None
    else:
        if package is None:
            raise CollectRequestError("give a package name, or upload a wheel file as 'file'")
        wheel = None
        name = package_name(package)
    extras = _given(package_extras_field)
    pre = _given(pins_pre_field)
    post = _given(pins_post_field)
    python = _given(python_version_field)
    return CollectPipRequest(
        package=name,
        wheel=wheel,
        version=wheel.version
        if wheel is not None
        else (package_version(version) if version else None),
        python_version=python_version(python) if python else None,
        extras=package_extras(extras) if extras else [],
        pins_pre=pinned_versions(pre, "pinned_package_versions_pre") if pre else {},
        pins_post=pinned_versions(post, "pinned_package_versions_post") if post else {},
    )
