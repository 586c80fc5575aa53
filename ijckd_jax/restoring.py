"""Orbax restores that leave no read in flight when they fail.

Orbax runs a restore's reads as tasks of an event loop that it closes as soon as the first
read fails (orbax.checkpoint._src.asyncio_utils). The other reads are still running in
tensorstore; when each one ends, tensorstore hands its result to the closed loop, and every
such read prints a 'RuntimeError: Event loop is closed' traceback when the process exits,
after the one-line error of a damaged checkpoint. Within `restoring()`, the event loops that
orbax creates wait for their pending tasks, and so for those reads, before they close.
"""
import asyncio
import contextlib


class DrainingEventLoop(asyncio.SelectorEventLoop):
    """An event loop whose close() first lets its pending tasks finish (failed or not)."""

    def close(self):
        pending = asyncio.all_tasks(self)
        if pending and not self.is_running() and not self.is_closed():
            self.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        super().close()


class DrainingEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self):
        return DrainingEventLoop()


@contextlib.contextmanager
def restoring():
    """A context for orbax restores: the event loops created in it drain before closing."""
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(DrainingEventLoopPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)
