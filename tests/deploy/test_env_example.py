"""`.env.example`, where an operator starts a compose deploy: every variable docker-compose.yml
reads is in it, the required ones empty (no secret value is ever committed, not even a sample)."""

import re

from tests.deploy.test_compose import _REFERENCE, COMPOSE_FILE, ROOT

EXAMPLE = ROOT / ".env.example"
ASSIGNMENT = re.compile(r"^#?\s*(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def compose_variables() -> dict[str, bool]:
    """Each variable compose interpolates, and whether it is required (`${VAR:?...}`)."""
    found: dict[str, bool] = {}
    for match in _REFERENCE.finditer(COMPOSE_FILE.read_text()):
        if match["escaped"]:
            continue  # `$$`: the container's shell reads it, not compose
        braced = match["braced"] or match["named"]
        name = re.match(r"[A-Za-z_][A-Za-z0-9_]*", braced)[0]
        found[name] = found.get(name, False) or bool(re.match(r"[A-Za-z0-9_]+:?\?", braced))
    return found


def example() -> dict[str, tuple[str, bool]]:
    """name -> (value, commented out) for each assignment in .env.example."""
    entries = {}
    for line in EXAMPLE.read_text().splitlines():
        match = ASSIGNMENT.match(line)
        if match:
            entries[match["name"]] = (match["value"], line.startswith("#"))
    return entries


def test_every_variable_compose_reads_is_in_the_example_and_nothing_else():
    assert set(example()) == set(compose_variables())


def test_the_required_secrets_are_there_to_fill_in_and_empty():
    entries = example()
    required = {name for name, is_required in compose_variables().items() if is_required}
    assert {"SECRET_KEY", "POSTGRES_PASSWORD", "APP_DATABASE_PASSWORD", "REDIS_PASSWORD",
            "FLOWER_BASIC_AUTH"} <= required
    assert {name: entries[name] for name in required} == dict.fromkeys(required, ("", False))


def test_the_optional_ones_show_the_default_compose_uses():
    text = COMPOSE_FILE.read_text()
    for name, (value, commented) in example().items():
        if commented:
            assert f"${{{name}:-{value}}}" in text, name
