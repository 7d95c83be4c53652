"""Store writes of the engine, and keeping status changes while the store cannot be written.

Owns: writing each status change of a command in the background (``persist``), the repair issue
and log line of a store fault, the periodic retry of the writes the store kept back
(``STORE_RETRY_INTERVAL``), and the last flush when the engine stops. A record that cannot be
stored at creation is refused by the caller (``async_insert`` raises); once a command is accepted
the engine's in-memory record is the truth and every later change is written when it can be.
"""

from __future__ import annotations

import asyncio
import logging

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from custom_components.iotee.const import DOMAIN
from custom_components.iotee.core.model import CommandRecord
from custom_components.iotee.core.store import (
    AsyncCommandStore,
    StoreFaultError,
    WritesPendingError,
)

_LOGGER = logging.getLogger(__name__)

STORE_RETRY_INTERVAL = 10.0
"""Seconds between tries to write status changes the store could not write."""

ISSUE_STORE_WRITE_FAILED = "store_write_failed"


class StoreKeeper:
    """Writes command records; keeps and retries what the store could not write."""

    def __init__(self, hass: HomeAssistant, store: AsyncCommandStore) -> None:
        """Write to ``store``."""
        self.hass = hass
        self.store = store
        self._writes: set[asyncio.Future[None]] = set()
        """Group commits and store retries under way."""
        self.store_fault: str | None = None
        """Why the store cannot be written, while it cannot (None when it works)."""
        self._store_retry: asyncio.TimerHandle | None = None
        self._stopping = False

    def start(self) -> None:
        """A store fault of an earlier run is that run's; this one reports its own."""
        ir.async_delete_issue(self.hass, DOMAIN, ISSUE_STORE_WRITE_FAILED)

    async def async_insert(self, record: CommandRecord) -> None:
        """Store a new command; raise ``StoreFaultError`` when it cannot be (refuse it)."""
        try:
            await self.store.insert(record)
        except StoreFaultError as err:
            # Not stored, so not accepted: the caller gets the error and nothing is published.
            self._store_failed(err)
            raise
        self._store_ok()

    def persist(self, record: CommandRecord) -> None:
        """Write ``record``'s state with the other status changes taken before the hand-over.

        One group commit (``AsyncCommandStore.update_soon``: the changes of this loop
        iteration, or of those that ran while the previous group was written): its outcome is
        handled once, by ``_written``, however many changes it carries.
        """
        written = self.store.update_soon(record)
        if written not in self._writes:
            self._writes.add(written)
            written.add_done_callback(self._written)

    @callback
    def _written(self, written: asyncio.Future[None]) -> None:
        """A group commit of status changes ended: report a store fault, or its end."""
        self._writes.discard(written)
        if written.cancelled():
            return  # nobody learns the outcome; the store still keeps what it could not write
        err = written.exception()
        if isinstance(err, StoreFaultError):
            self._store_failed(err)
        elif err is not None:
            _LOGGER.error("Could not store status changes", exc_info=err)
        else:
            self._store_ok()

    async def async_drain(self) -> None:
        """Wait for the writes under way."""
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    # ---- store faults --------------------------------------------------------------------

    def _store_failed(self, err: StoreFaultError) -> None:
        """Report a store fault once (log and repair issue); retry kept writes periodically."""
        if isinstance(err, WritesPendingError) and not self.store.pending_writes:
            # Reported late: what that write kept back has been written since (by the next
            # command's insert, say), so the store works; reporting it now would raise an issue
            # that nothing clears.
            return
        if self.store_fault is None:
            _LOGGER.error(
                "Cannot write the command store %s: %s. Commands keep running; status changes"
                " are kept in memory and written when the store works again, and new commands"
                " are refused while their record cannot be stored",
                self.store.path,
                err,
            )
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                ISSUE_STORE_WRITE_FAILED,
                is_fixable=False,
                severity=ir.IssueSeverity.ERROR,
                translation_key=ISSUE_STORE_WRITE_FAILED,
                translation_placeholders={"path": self.store.path, "error": str(err)},
            )
        else:
            _LOGGER.debug("Command store still failing: %s", err)
        self.store_fault = str(err)
        if self.store.pending_writes and self._store_retry is None and not self._stopping:
            self._store_retry = self.hass.loop.call_later(
                STORE_RETRY_INTERVAL, self._store_retry_due
            )

    def _store_ok(self) -> None:
        """A write succeeded: once nothing is kept back any more, the fault is over."""
        if self.store_fault is None or self.store.pending_writes:
            return
        self.store_fault = None
        if self._store_retry is not None:
            self._store_retry.cancel()
            self._store_retry = None
        ir.async_delete_issue(self.hass, DOMAIN, ISSUE_STORE_WRITE_FAILED)
        _LOGGER.info("The command store %s is written again", self.store.path)

    @callback
    def _store_retry_due(self) -> None:
        self._store_retry = None
        task = self.hass.async_create_task(
            self._async_flush_store(), "iotee store retry", eager_start=True
        )
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _async_flush_store(self) -> None:
        try:
            await self.store.flush()
        except StoreFaultError as err:
            self._store_failed(err)
        else:
            self._store_ok()

    async def async_stop(self) -> None:
        """Finish the writes under way and write what was kept back, once more."""
        self._stopping = True
        await self.async_drain()
        # After the last writes: a write failing meanwhile must not leave a retry scheduled.
        if self._store_retry is not None:
            self._store_retry.cancel()
            self._store_retry = None
        if self.store.pending_writes:
            pending = self.store.pending_writes
            try:
                await self.store.flush()
            except StoreFaultError as err:
                _LOGGER.error(
                    "The status of %s commands could not be stored before the command store"
                    " closed (%s); their stored history ends at the last status that was written",
                    pending,
                    err,
                )
                return
        if self.store_fault is not None:
            self.store_fault = None
            ir.async_delete_issue(self.hass, DOMAIN, ISSUE_STORE_WRITE_FAILED)
