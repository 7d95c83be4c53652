"""IoTee's core: the command model, status machine, device types, matcher, store, limits.

Nothing in this package imports Home Assistant; the integration's adapters (MQTT transport,
entities, services, HTTP API) use it.
"""
