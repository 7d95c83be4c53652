"""Errors the core raises when a command cannot be created."""

from __future__ import annotations


class CommandError(Exception):
    """A command could not be created; ``code`` says why in a stable, machine-readable way."""

    code = "command_error"


class UnknownDeviceError(CommandError):
    """No configured device has that id."""

    code = "unknown_device"


class UnsupportedCommandError(CommandError):
    """The device type does not support that command."""

    code = "unsupported_command"


class InvalidRelayError(CommandError):
    """The relay index is missing, not needed, or beyond the device's relays."""

    code = "invalid_relay"


class NotRetryableError(CommandError):
    """Only a failed or timed-out command can be retried."""

    code = "not_retryable"


class UnknownCommandError(CommandError):
    """No command has that id."""

    code = "unknown_command"


class InvalidParamsError(CommandError):
    """The command's params are not a small JSON object."""

    code = "invalid_params"


class InvalidDeliveryError(CommandError):
    """A queue expiry or retry policy is out of range (``core/delivery_rules.py``)."""

    code = "invalid_delivery"
