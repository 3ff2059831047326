"""The registry of network families: a name (``NetworkSpec.architecture``) → its ``Family``.

It imports nothing of the package but ``errors`` and sits outside ``families``, so that ``config`` can look a family
up while the family modules import ``config`` (no import cycle, also between layers). ``families/__init__.py``
registers the built-in families; ``families.register`` adds one.
"""

from __future__ import annotations

from infoflow_ray.errors import ConfigError

FAMILIES: dict = {}
"""Every registered family (a ``families.base.Family``) by name, in registration order (the order error messages
list them in)."""


def register(family):
    """Add ``family`` under ``family.name`` (a name registered twice is a mistake: ValueError); returns it."""
    if not family.name or family.name in FAMILIES:
        raise ValueError(f"a family needs a new name, got {family.name!r} (registered: {', '.join(FAMILIES)})")
    FAMILIES[family.name] = family
    return family


def get(name: str):
    """The family registered as ``name``; an unknown name fails in one line listing the known ones."""
    if name not in FAMILIES:
        raise ConfigError(f"architecture must be one of {', '.join(FAMILIES)}, got {name!r}")
    return FAMILIES[name]


def of_profile(profile: str):
    """The family that writes ``profile`` (a tables' ``profile`` value such as 'wide' or 'resnet-c64')."""
    for family in FAMILIES.values():
        if family.owns_profile(profile):
            return family
    raise ConfigError(f"profile must be one written by a family ({', '.join(FAMILIES)}), got {profile!r}")
