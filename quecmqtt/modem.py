"""The runtime under its first name: `from quecmqtt.modem import Modem` keeps working.

The runtime lives in `quecmqtt.runtime` (command channel, event bus, supervisor, init steps);
this module re-exports what users import.
"""

from quecmqtt.runtime import (
    EventQueue,
    Modem,
    ModuleReset,
    Overflow,
    Pending,
    Reply,
    RuntimeClosed,
    Selector,
    State,
    StepHandle,
    Subscription,
)

__all__ = [
    "EventQueue",
    "Modem",
    "ModuleReset",
    "Overflow",
    "Pending",
    "Reply",
    "RuntimeClosed",
    "Selector",
    "State",
    "StepHandle",
    "Subscription",
]
