"""Loading schedules from config/schedules/*.yaml, checked against the people of the config file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from responder.errors import ConfigError
from responder.oncall.roster import Roster
from responder.oncall.schedule import Schedule
from responder.settings import PersonConfig, Settings
from responder.yamlfile import YamlDoc, field_path, load_yaml, validate_doc


def schedule_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))


def signature(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the schedule files: a change means reload."""
    found = []
    for path in schedule_files(directory):
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def load_schedules(directory: Path, people: Sequence[PersonConfig]) -> list[Schedule]:
    """Every schedule in the folder (one per file), validated; errors name file, line and field."""
    if not directory.is_dir():
        raise ConfigError([f"{directory}: no schedules folder (one schedule per *.yaml file)"])
    known = {p.id: p for p in people}
    schedules: list[Schedule] = []
    problems: list[str] = []
    origin: dict[str, str] = {}
    for path in schedule_files(directory):
        try:
            doc = load_yaml(path)
            schedule = validate_doc(doc, Schedule)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        schedule._source = str(path)

        def at(*loc: str | int, doc: YamlDoc = doc) -> str:
            return f"{doc.filename}:{doc.line_of(loc)}: {field_path(loc)}"

        if schedule.id in origin:
            problems.append(f"{at('id')}: {schedule.id!r} is also the id in {origin[schedule.id]}")
        origin.setdefault(schedule.id, str(path))
        for index, layer in enumerate(schedule.layers):
            for pos, person_id in enumerate(layer.people):
                where = at("layers", index, "people", pos)
                problems += _person_problems(known, person_id, schedule.role, where)
        for index, override in enumerate(schedule.overrides):
            where = at("overrides", index, "person")
            problems += _person_problems(known, override.person, schedule.role, where)
        schedules.append(schedule)
    if problems:
        raise ConfigError(problems)
    return schedules


def _person_problems(known: dict[str, PersonConfig], person_id: str, role: str, where: str) -> list[str]:
    person = known.get(person_id)
    if person is None:
        return [f"{where}: unknown person {person_id!r}"]
    if role not in person.roles:
        return [f"{where}: {person_id!r} does not have the role {role} (roles: {', '.join(person.roles)})"]
    return []


def pairs(schedules: Iterable[Schedule]) -> list[tuple[str, str]]:
    """Every (role, region) some schedule covers."""
    return list(dict.fromkeys((s.role, region) for s in schedules for region in s.regions))


def load_roster(settings: Settings) -> Roster:
    """The people of the config file with the schedules of its schedules folder."""
    return Roster(settings.config, load_schedules(settings.schedules_dir, settings.config.people))
