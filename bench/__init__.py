"""IoTee's benchmark: what the integration costs a Home Assistant box, measured, not asserted.

Every measurement runs against a real mosquitto and real Home Assistant instances (bootstrapped
in-process by a stage subprocess, with HA's real HTTP server, auth, MQTT integration and
registries) and is reported as a ratio against a baseline taken in the same run. ``scripts/bench``
runs it; ``python -m bench --help`` lists the knobs. See ``docs/performance.md``.
"""
