"""Config-file migrations on each format: the edit is made, everything else is kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from stairway.configfiles import (
    ConfigMigration,
    ConfigOp,
    ConfigTransition,
    Format,
    migrate_bytes,
    parse_key,
)
from stairway.errors import ConfigFileError
from stairway.versions import Version

CONFIGS = Path(__file__).parent / "configs"
SMALLRYE = (
    ConfigMigration(
        1,
        "standalone.xml",
        Version("13.0.0"),
        ConfigOp.REMOVE,
        Format.XML,
        xpath="//d:extension[contains(@module, '-smallrye')]",
        namespaces=(("d", "urn:jboss:domain:16.0"),),
    ),
    ConfigMigration(
        2,
        "standalone.xml",
        Version("13.0.0"),
        ConfigOp.REMOVE,
        Format.XML,
        xpath="//*[local-name() = 'subsystem' and contains(namespace-uri(), '-smallrye:')]",
    ),
)


def keyed(fmt: Format, op: ConfigOp, key: str, **extra: object) -> ConfigMigration:
    to = extra.pop("to", None)
    return ConfigMigration(
        1,
        f"app.{fmt.value}",
        Version("2.0.0"),
        op,
        fmt,
        key=parse_key(key),
        to=parse_key(str(to)) if to else (),
        **extra,  # type: ignore[arg-type]
    )


def migrate(name: str, text: str, *migrations: ConfigMigration) -> str:
    outcome = migrate_bytes(Path(name), text.encode(), migrations)
    again = migrate_bytes(Path(name), outcome.after, migrations)
    assert not again.changed, "a second run must change nothing more"
    return outcome.after.decode()


# --- TOML -----------------------------------------------------------------------------------------

APP_TOML = """\
# operator's notes at the top
title = "people"

[server]
# the port the UI listens on
port = 8080  # changed for the proxy
host = "0.0.0.0"

[ldap]
url = "ldaps://dir.example"
bind_password = "s3cret"
"""


def test_toml_rename_in_place_keeps_position_comments_and_the_rest() -> None:
    after = migrate(
        "app.toml",
        APP_TOML,
        keyed(Format.TOML, ConfigOp.RENAME, "server.port", to="server.listen_port"),
    )
    assert after == APP_TOML.replace("port = 8080", "listen_port = 8080")


def test_toml_rename_to_another_table_creates_it_and_drops_the_old_key() -> None:
    after = migrate(
        "app.toml",
        APP_TOML,
        keyed(Format.TOML, ConfigOp.RENAME, "ldap.bind_password", to="secrets.ldap_bind"),
    )
    assert 'bind_password = "s3cret"' not in after
    assert "[secrets]" in after and 'ldap_bind = "s3cret"' in after
    assert "# the port the UI listens on" in after and "# changed for the proxy" in after


def test_toml_remove_and_set_default() -> None:
    after = migrate(
        "app.toml",
        APP_TOML,
        keyed(Format.TOML, ConfigOp.REMOVE, "server.host"),
        keyed(Format.TOML, ConfigOp.SET_DEFAULT, "sessions.store", value="redis"),
        keyed(Format.TOML, ConfigOp.SET_DEFAULT, "server.port", value=9999),
    )
    assert "host" not in after
    assert "port = 8080  # changed for the proxy" in after, "set-default never overwrites"
    assert after.endswith('[sessions]\nstore = "redis"\n')


def test_rename_onto_an_existing_key_is_a_conflict_and_changes_nothing() -> None:
    text = APP_TOML.replace('host = "0.0.0.0"', "listen_port = 9090")
    migration = keyed(Format.TOML, ConfigOp.RENAME, "server.port", to="server.listen_port")
    outcome = migrate_bytes(Path("app.toml"), text.encode(), [migration])
    assert not outcome.changed
    assert [a.migration for a in outcome.attention] == [migration]
    assert "both the old and the new key" in outcome.attention[0].reason


def test_manual_migration_is_reported_where_it_would_change_the_file_and_not_applied() -> None:
    manual = keyed(Format.TOML, ConfigOp.REMOVE, "server.host", transition=ConfigTransition.MANUAL)
    outcome = migrate_bytes(Path("app.toml"), APP_TOML.encode(), [manual])
    assert not outcome.changed and outcome.applied == ()
    assert [a.migration for a in outcome.attention] == [manual]
    gone = migrate_bytes(Path("app.toml"), b"[server]\nport = 1\n", [manual])
    assert gone.attention == (), "nothing to do by hand once the key is gone"


# --- YAML -----------------------------------------------------------------------------------------

LOGGING_YAML = """\
# logging for the people server
version: 1
handlers:
    file:
        class: logging.FileHandler
        filename: /var/log/people.log   # rotated by logrotate
        level: 'INFO'
    console:
        class: logging.StreamHandler
loggers:
  - people.sync
  - people.web
"""


def test_yaml_rename_keeps_comments_quotes_indentation_and_sequences() -> None:
    after = migrate(
        "logging.yaml",
        LOGGING_YAML,
        keyed(Format.YAML, ConfigOp.RENAME, "handlers.file.filename", to="handlers.file.path"),
    )
    # ruamel.yaml keeps an end-of-line comment in its column, so the shorter key pads it.
    assert after == LOGGING_YAML.replace("filename:", "path:").replace("   #", "       #")


def test_yaml_remove_and_set_default_into_a_new_mapping() -> None:
    after = migrate(
        "logging.yaml",
        LOGGING_YAML,
        keyed(Format.YAML, ConfigOp.REMOVE, "handlers.console"),
        keyed(Format.YAML, ConfigOp.SET_DEFAULT, "root.level", value="WARNING"),
    )
    assert "console" not in after and "StreamHandler" not in after
    assert "# rotated by logrotate" in after
    assert after.endswith("root:\n    level: WARNING\n")


# --- JSON -----------------------------------------------------------------------------------------

UI_JSON = '{\n    "title": "People",\n    "theme": {\n        "name": "dark"\n    }\n}\n'


def test_json_keeps_order_indentation_and_final_newline() -> None:
    after = migrate(
        "ui.json",
        UI_JSON,
        keyed(Format.JSON, ConfigOp.RENAME, "title", to="heading"),
        keyed(Format.JSON, ConfigOp.SET_DEFAULT, "theme.density", value="comfortable"),
    )
    assert after.startswith('{\n    "heading": "People",\n    "theme": {\n        "name": "dark",')
    assert '"density": "comfortable"' in after and after.endswith("}\n")


# --- XML ------------------------------------------------------------------------------------------


def test_smallrye_lines_of_standalone_xml_go_and_every_other_byte_stays() -> None:
    raw = (CONFIGS / "standalone.xml").read_bytes()
    outcome = migrate_bytes(Path("standalone.xml"), raw, SMALLRYE)
    kept = [line for line in raw.splitlines(keepends=True) if b"smallrye" not in line]
    assert outcome.after == b"".join(kept)
    assert len(raw.splitlines()) - len(kept) == 6
    assert not migrate_bytes(Path("standalone.xml"), outcome.after, SMALLRYE).changed


def test_xml_set_attribute_set_text_and_remove_attribute() -> None:
    raw = (CONFIGS / "standalone.xml").read_bytes()
    ns = (("d", "urn:jboss:domain:16.0"),)
    bind = "//d:interface[@name='public']/d:inet-address"

    def xml(number: int, op: ConfigOp, xpath: str, **extra: object) -> ConfigMigration:
        return ConfigMigration(
            number,
            "standalone.xml",
            Version("2.0.0"),
            op,
            Format.XML,
            xpath=xpath,
            namespaces=ns,
            **extra,  # type: ignore[arg-type]
        )

    migrations = [
        xml(1, ConfigOp.SET_ATTRIBUTE, bind, attribute="value", value="${jboss.bind:0.0.0.0}"),
        xml(2, ConfigOp.SET_TEXT, "//*[local-name()='web-context']", value="people"),
        xml(3, ConfigOp.REMOVE, "//*[local-name()='local']/@skip-group-loading"),
    ]
    outcome = migrate_bytes(Path("standalone.xml"), raw, migrations)
    text = outcome.after.decode()
    assert '<inet-address value="${jboss.bind:0.0.0.0}"/>' in text
    assert "<web-context>people</web-context>" in text
    assert '<local default-user="$local"/>' in text
    assert len(outcome.applied) == 3
    assert not migrate_bytes(Path("standalone.xml"), outcome.after, migrations).changed


def test_xml_removing_a_last_child_keeps_the_closing_tag_indented() -> None:
    text = "<a>\n  <b/>\n  <c/>\n</a>\n"
    removal = ConfigMigration(
        1, "x.xml", Version("2.0.0"), ConfigOp.REMOVE, Format.XML, xpath="//c"
    )
    assert migrate("x.xml", text, removal) == "<a>\n  <b/>\n</a>\n"


# --- files that do not parse -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("app.toml", "[server]\nport = 8080\nhost = \n", 3),
        ("logging.yaml", "handlers:\n  file: x\n  b: c: d\n", 3),
        ("ui.json", '{\n  "a": 1,\n  "b": \n}\n', 4),
        ("standalone.xml", "<server>\n  <a>\n</server>\n", 3),
        ("app.toml", '[server]\nname = "caf\xe9"\n', 2),
    ],
)
def test_a_file_that_does_not_parse_is_named_with_its_line(name: str, text: str, line: int) -> None:
    fmt = Format.of(Path(name))
    assert fmt is not None
    migration = (
        ConfigMigration(1, name, Version("2.0.0"), ConfigOp.REMOVE, fmt, xpath="//a")
        if fmt == Format.XML
        else keyed(fmt, ConfigOp.REMOVE, "a")
    )
    raw = text.encode("latin-1") if "\xe9" in text else text.encode()
    with pytest.raises(ConfigFileError) as caught:
        migrate_bytes(Path(name), raw, [migration])
    assert caught.value.path == name and caught.value.line == line
    assert f"{name}:{line}" in str(caught.value) and "left untouched" in caught.value.hint


def test_parse_key_allows_quoted_dots_and_refuses_empty_segments() -> None:
    assert parse_key('logging."people.sync".level') == ("logging", "people.sync", "level")
    for bad in ("a..b", ".a", "a.", ""):
        with pytest.raises(ValueError):
            parse_key(bad)


def test_toml_renaming_a_table_retitles_its_header_and_sub_tables() -> None:
    text = 'x = 1\n\n[smtp]  # outgoing mail\nhost = "mx"\n\n[smtp.tls]\nverify = true\n'
    after = migrate("app.toml", text, keyed(Format.TOML, ConfigOp.RENAME, "smtp", to="mail.smtp"))
    assert "[smtp" not in after
    assert "[mail.smtp]  # outgoing mail" in after and "[mail.smtp.tls]" in after
    in_place = migrate("app.toml", text, keyed(Format.TOML, ConfigOp.RENAME, "smtp", to="mail"))
    assert in_place == text.replace("[smtp", "[mail")


def test_after_a_conflict_the_later_migrations_of_the_file_wait() -> None:
    text = "[server]\nport = 1\nlisten_port = 2\nlegacy = true\n"
    rename = keyed(Format.TOML, ConfigOp.RENAME, "server.port", to="server.listen_port")
    remove = keyed(Format.TOML, ConfigOp.REMOVE, "server.legacy")
    outcome = migrate_bytes(Path("app.toml"), text.encode(), [rename, remove])
    assert not outcome.changed
    assert [a.reason.split(" ")[0] for a in outcome.attention] == ["both", "held"]
