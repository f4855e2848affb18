"""The SmartThings webhook SmartApp lifecycle, read from a verified request body (no I/O).

``PING`` is answered with its challenge; ``CONFIRMATION`` carries a URL that must be requested
once to confirm the app's registration; ``EVENT`` carries device events, each one becoming an
event; the other lifecycles (``INSTALL``, ``UPDATE``...) are answered and logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tidings.ingest.mapping import Draft, Unmappable

# What SmartThings expects back for each lifecycle it does not need anything from.
_EMPTY_ANSWERS = {
    "EVENT": "eventData",
    "INSTALL": "installData",
    "UPDATE": "updateData",
    "UNINSTALL": "uninstallData",
    "OAUTH_CALLBACK": "oAuthCallbackData",
    "CONFIGURATION": "configurationData",
}


@dataclass(frozen=True, slots=True)
class Ping:
    challenge: str

    def answer(self) -> dict[str, Any]:
        return {"pingData": {"challenge": self.challenge}}


@dataclass(frozen=True, slots=True)
class Confirmation:
    url: str  # to be requested once, after it is vetted like a webhook destination
    app_id: str | None


@dataclass(frozen=True, slots=True)
class DeviceEvents:
    drafts: list[Draft]  # one per DEVICE_EVENT entry; other event types are not events here


@dataclass(frozen=True, slots=True)
class OtherLifecycle:
    lifecycle: str

    def answer(self) -> dict[str, Any]:
        key = _EMPTY_ANSWERS.get(self.lifecycle)
        return {key: {}} if key else {}


Lifecycle = Ping | Confirmation | DeviceEvents | OtherLifecycle


def read_lifecycle(body: Any, source: str) -> Lifecycle | None:
    """The lifecycle request in ``body``, or None when it is not one (a plain payload)."""
    if not isinstance(body, dict) or not isinstance(body.get("lifecycle"), str):
        return None
    lifecycle = body["lifecycle"].upper()
    if lifecycle == "PING":
        challenge = _dig(body, "pingData", "challenge")
        if not isinstance(challenge, str):
            raise Unmappable("unmappable", "a PING without pingData.challenge")
        return Ping(challenge)
    if lifecycle == "CONFIRMATION":
        url = _dig(body, "confirmationData", "confirmationUrl")
        if not isinstance(url, str):
            raise Unmappable(
                "unmappable", "a CONFIRMATION without confirmationData.confirmationUrl"
            )
        app_id = _dig(body, "confirmationData", "appId")
        return Confirmation(url, app_id if isinstance(app_id, str) else None)
    if lifecycle == "EVENT":
        return DeviceEvents(device_drafts(body, source))
    return OtherLifecycle(lifecycle)


def _dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def device_drafts(body: dict[str, Any], source: str) -> list[Draft]:
    """One draft per ``eventData.events[]`` entry with ``eventType == "DEVICE_EVENT"``:
    type ``device.<capability>.<attribute>``, subject the device id, data the reading, and the
    event's ``eventId`` as idempotency key (SmartThings retries a failed delivery)."""
    entries = _dig(body, "eventData", "events")
    if not isinstance(entries, list):
        raise Unmappable("unmappable", "an EVENT without an eventData.events list")
    drafts = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("eventType") != "DEVICE_EVENT":
            continue
        device = entry.get("deviceEvent")
        where = f"eventData.events[{index}].deviceEvent"
        if not isinstance(device, dict):
            raise Unmappable("unmappable", f"{where} is missing")
        for key in ("capability", "attribute", "deviceId"):
            if not isinstance(device.get(key), str) or not device[key]:
                raise Unmappable("unmappable", f"{where}.{key} is missing")
        details = {
            "unit": device.get("unit"),
            "component": device.get("componentId"),
            "locationId": device.get("locationId"),
            "valueType": device.get("valueType"),
            "stateChange": device.get("stateChange"),
            "data": device.get("data"),
        }
        raw: dict[str, Any] = {
            "type": f"device.{device['capability']}.{device['attribute']}",
            "source": source,
            "subject": device["deviceId"],
            "data": {
                "value": device.get("value"),
                **{k: v for k, v in details.items() if v is not None},
            },
        }
        if isinstance(entry.get("eventTime"), str):
            raw["time"] = entry["eventTime"]
        event_id = device.get("eventId")
        drafts.append(Draft(raw, event_id if isinstance(event_id, str) and event_id else None))
    return drafts
