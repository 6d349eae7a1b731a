"""User-facing errors: every failure names its cause and the fix."""

from __future__ import annotations


class ModelMillError(Exception):
    """An error the user can act on.

    `message` says what went wrong, `fix` what to do about it; `where` names the file or
    key involved (e.g. ``config.json: passes.quant.block_size``).
    """

    exit_code = 1

    def __init__(self, message: str, fix: str | None = None, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.where = where

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class ConfigError(ModelMillError):
    """The workflow config (or CLI flags standing in for one) is invalid."""

    exit_code = 2


class PassError(ModelMillError):
    """A pass could not transform its input model."""


class RunCancelled(ModelMillError):
    """The user cancelled the run (Ctrl-C, the editor's Cancel); nothing partial was written."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("the run was cancelled", fix="run it again; no partial output was written")
