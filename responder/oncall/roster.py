"""Who is on call for a role in a region, now (first cut: ordered layers; rotations come later)."""

from __future__ import annotations

from datetime import datetime

from responder.settings import DEFAULT_REGION, ConfigFile, OnCallConfig, PersonConfig


def region_chain(region: str | None) -> list[str]:
    """Where to look, most local first: FR-75 → FR → * (the programme default)."""
    if not region or region == DEFAULT_REGION:
        return [DEFAULT_REGION]
    chain = [region]
    if "-" in region:
        chain.append(region.split("-", 1)[0])
    chain.append(DEFAULT_REGION)
    return chain


class Roster:
    """The people and on-call assignments from the config file, indexed for quick answers."""

    def __init__(self, config: ConfigFile) -> None:
        self.people = {p.id: p for p in config.people}
        self._oncall: dict[tuple[str, str], OnCallConfig] = {(e.role, e.region): e for e in config.oncall}

    def person(self, person_id: str) -> PersonConfig | None:
        return self.people.get(person_id)

    def by_phone(self, phone: str) -> PersonConfig | None:
        return next((p for p in self.people.values() if p.phone == phone), None)

    def _entry(self, role: str, region: str | None) -> OnCallConfig | None:
        for candidate in region_chain(region):
            entry = self._oncall.get((role, candidate))
            if entry is not None and self._layer_people(entry, None):
                return entry
        return None

    def _layer_people(self, entry: OnCallConfig, layer: str | None) -> list[PersonConfig]:
        layers = [entry.layers.get(layer, ())] if layer else list(entry.layers.values())
        found: list[PersonConfig] = []
        for members in layers:
            active = [self.people[m] for m in members if m in self.people and self.people[m].active]
            if active and active[0] not in found:
                found.append(active[0])
        return found

    def on_call(self, role: str, region: str | None, layer: str, at: datetime) -> list[PersonConfig]:
        """The person on call in that layer, nearest region first; empty when nobody is."""
        for candidate in region_chain(region):
            entry = self._oncall.get((role, candidate))
            if entry is not None:
                people = self._layer_people(entry, layer)
                if people:
                    return people
        return []

    def everyone_on_call(self, role: str, region: str | None, at: datetime) -> list[PersonConfig]:
        """Every layer's on-call person for the role (all-hands), nearest staffed region."""
        entry = self._entry(role, region)
        return self._layer_people(entry, None) if entry else []
