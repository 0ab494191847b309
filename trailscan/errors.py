"""One exception hierarchy: the CLI maps these to one-line messages and documented exit codes."""

from __future__ import annotations


class TrailscanError(Exception):
    """Base of every error trailscan raises on purpose; `exit_code` is what the CLI returns."""

    exit_code = 1


class UsageError(TrailscanError):
    """The user asked for something that cannot work (bad option value, missing lake...)."""

    exit_code = 2


class NoLake(UsageError):
    """There is no lake where one was expected (nothing ingested there yet)."""


class LakeError(TrailscanError):
    """The lake is unreadable, locked or inconsistent."""


class SourceError(TrailscanError):
    """A source (directory, bucket) cannot be listed or read at all."""


class BadInput(TrailscanError):
    """One input object is not usable; it goes to the quarantine, the run goes on."""


class NotEvents(TrailscanError):
    """The object is a recognised non-event object (digest, signature sidecar)."""
