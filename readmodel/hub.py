"""The live feed behind ``/api/events``: committed campaign changes, fanned out to listeners.

Each listener holds at most one pending record per campaign (the newest version), so a
slow browser costs memory bounded by the number of campaigns, never by the traffic, and
it always catches up on the latest figures instead of replaying stale ones.
"""

from __future__ import annotations

import asyncio


class Listener:
    def __init__(self) -> None:
        self.pending: dict[str, dict] = {}
        self.wake = asyncio.Event()

    def offer(self, rec: dict) -> None:
        cur = self.pending.get(rec["campaign_id"])
        if cur is None or rec["version"] > cur["version"]:
            self.pending[rec["campaign_id"]] = rec
            self.wake.set()

    async def next(self, timeout: float) -> list[dict]:
        """The changes since the last call, or [] after ``timeout`` seconds without any."""
        try:
            await asyncio.wait_for(self.wake.wait(), timeout)
        except TimeoutError:
            return []
        self.wake.clear()
        out, self.pending = list(self.pending.values()), {}
        return out


class Hub:
    def __init__(self) -> None:
        self.listeners: set[Listener] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self) -> Listener:
        listener = Listener()
        self.listeners.add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def publish(self, records: list[dict]) -> None:
        """Called on the event loop after the records' transaction has committed."""
        for listener in list(self.listeners):
            for rec in records:
                listener.offer(rec)
