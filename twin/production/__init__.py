"""Production-line control logic (PackML state machines, sequencing)."""
