"""The asyncio runtime: one module behind one port (see `quecmqtt.runtime.modem`).

It names no protocol the module speaks on top of AT: the layers above it register their init
steps, listeners and gates, and the command table declares what a result waits for and what
fails it.
"""

from quecmqtt.runtime.bus import EventBus, EventQueue, Overflow, Selector, Subscription
from quecmqtt.runtime.channel import Operation, Pending, Reply
from quecmqtt.runtime.modem import Modem
from quecmqtt.runtime.steps import StepHandle
from quecmqtt.runtime.supervisor import TRANSITIONS, ModuleReset, RuntimeClosed, State, Trigger

__all__ = [
    "TRANSITIONS",
    "EventBus",
    "EventQueue",
    "Modem",
    "ModuleReset",
    "Operation",
    "Overflow",
    "Pending",
    "Reply",
    "RuntimeClosed",
    "Selector",
    "State",
    "StepHandle",
    "Subscription",
    "Trigger",
]
