"""The documents an IT technician installs the cabinet with agree with the code.

README.md and docs/*.md are followed literally, on a ward, by someone who cannot read the
code: a command line there that the real ``armoire`` refuses, an option renamed in the
code but not in the docs, a configuration key in the example that the loader refuses (or
one it reads that no example shows) stops or misleads them. These tests read the documents
themselves, so a change on one side fails here until the other follows.
"""

from __future__ import annotations

import argparse
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import config as configuration
from controller.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLE = ROOT / "deploy" / "armoire.example.toml"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return None


def _summaries(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each sub-command's one-line summary, as ``armoire --help`` lists it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
            ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = _subcommands(parser)
    if subs is None:
        yield path, parser
        return
    for name, child in subs.items():
        yield from _leaves(child, (*path, name))


def code_snippets(text: str) -> Iterator[str]:
    """Every line of a fenced block (comments after two spaces cut off) and every inline
    code span, a span broken over lines joined back into one line."""
    prose: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            yield line.split("  #")[0]
        else:
            prose.append(line)
    for match in re.finditer(r"`([^`]+)`", "\n".join(prose)):
        yield " ".join(match.group(1).split())


def armoire_mentions() -> Iterator[tuple[str, str, list[str]]]:
    """(document, snippet, words after ``armoire``) for each ``armoire COMMAND …``."""
    for doc in DOCS:
        for snippet in code_snippets(doc.read_text(encoding="utf-8")):
            match = re.search(r"(?:^|\s|bin/)armoire\s+([a-z][^&;>]*)", snippet)
            if match:
                yield doc.name, snippet, match.group(1).replace("…", " ").split()


def resolve(words: list[str]) -> tuple[tuple[str, ...], argparse.ArgumentParser, list[str]]:
    """The sub-command the words name, its parser and the words left after it."""
    parser: argparse.ArgumentParser = build_parser()
    path: tuple[str, ...] = ()
    words = list(words)
    while words and (subs := _subcommands(parser)) is not None and words[0] in subs:
        parser = subs[words[0]]
        path = (*path, words.pop(0))
    return path, parser, words


def test_the_documents_mention_armoire_commands_at_all():
    """The scan below finds what it checks (a regex that matched nothing would pass)."""
    found = {" ".join(resolve(words)[0]) for _, _, words in armoire_mentions()}
    assert {"admin", "backup", "restore", "journal verify", "has-database",
            "outputs-off", "badge"} <= found, found


@pytest.mark.parametrize("doc", [d.name for d in DOCS])
def test_every_armoire_command_in_the_docs_exists_with_the_options_it_is_given(doc):
    """``armoire restore BACKUP --config FILE`` in a document must be a sub-command the
    real parser has, given only options that sub-command takes."""
    wrong = []
    for name, snippet, words in armoire_mentions():
        if name != doc:
            continue
        path, parser, rest = resolve(words)
        if not path:
            wrong.append(f"no such command: {snippet}")
            continue
        if _subcommands(parser) is not None:
            # `armoire journal verify|export|register`: each alternative must exist
            names = rest[0].split("|") if rest else []
            missing = [n for n in names if n not in (_subcommands(parser) or {})]
            if not names or missing:
                wrong.append(f"incomplete or unknown command {' '.join(path)} {missing}: "
                             f"{snippet}")
            continue
        options = {o for action in parser._actions for o in action.option_strings}
        for word in rest:
            option = word.strip("[]|,.;:()").split("=")[0]
            if option.startswith("-") and option != "-" and option not in options:
                wrong.append(f"armoire {' '.join(path)} has no option {option}: {snippet}")
    assert not wrong, "\n".join(wrong)


def test_the_commands_the_technician_types_parse_as_written():
    """The complete command lines of docs/deploy.md (the ones run with sudo, copied as
    they are) parse with the real parser: nothing missing, no value of the wrong kind."""
    lines = [snippet for name, snippet, _ in armoire_mentions()
             if name == "deploy.md" and "/opt/armoire/venv/bin/armoire" in snippet
             and not any(c in snippet for c in "…[|")]
    assert len(lines) >= 3, lines
    for snippet in lines:
        argv = shlex.split(snippet.split("/opt/armoire/venv/bin/armoire", 1)[1])
        for stop in ("&&", ";", "|"):
            if stop in argv:
                argv = argv[:argv.index(stop)]
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{snippet!r} does not parse (exit {exc.code})")


def test_every_command_is_in_the_readme_s_command_line():
    """README's "Command line" lists what ``armoire`` can do: a sub-command missing there
    is one the technician never learns of (``outputs-off``, which the unit runs, was)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Command line", 1)[1].split("```", 2)[1]
    listed = {" ".join(resolve(line.split()[1:])[0]) for line in block.splitlines()
              if line.startswith("armoire ")}
    for path, _ in _leaves(build_parser()):
        assert " ".join(path) in listed, f"armoire {' '.join(path)} is not in README.md"


def test_the_readme_s_command_line_shows_every_option():
    """Each README line shows all its command's options (or ends with "…"): ``backup
    --config``, the nightly unit's way, was missing, as was ``restore --config``, the way
    docs/deploy.md restores."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Command line", 1)[1].split("```", 2)[1]
    shown: dict[str, str] = {}
    for line in block.splitlines():
        if line.startswith("armoire "):
            name = " ".join(resolve(line.split()[1:])[0])
            shown[name] = shown.get(name, "") + " " + line.split("  #")[0]
    missing = []
    for path, parser in _leaves(build_parser()):
        text = shown.get(" ".join(path), "")
        if "…" in text:
            continue
        words = set(re.findall(r"-{1,2}[a-z][a-z-]*", text))
        for action in parser._actions:
            names = [o for o in action.option_strings if o not in ("-h", "--help")]
            if names and not words & set(names):
                missing.append(f"armoire {' '.join(path)} {names[-1]}")
    assert not missing, "not in README.md's Command line: " + ", ".join(missing)


def test_every_command_s_summary_is_in_english_and_french():
    """``armoire --help`` is what a technician reads first; as on every other text of the
    cabinet, each line of it says the thing in both languages ("english / français")."""
    def walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, str]]:
        for name, summary in _summaries(parser).items():
            yield f"{path} {name}".strip(), summary
        for name, child in (_subcommands(parser) or {}).items():
            yield from walk(child, f"{path} {name}".strip())

    english_only = [f"armoire {name}: {summary!r}" for name, summary in walk(build_parser(), "")
                    if " / " not in summary]
    assert not english_only, "\n".join(english_only)


def _example_keys() -> set[str]:
    """Every key of the example configuration, the commented-out ones included (a
    ``# key = value`` line under a ``[table]`` or ``# [table]`` header), as dotted names;
    drawer tables (``hardware.drawers.A``) are written ``hardware.drawers.*``."""
    keys: set[str] = set()
    table = ""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        header = re.fullmatch(r"\[\[?([a-z_.A-Z]+)\]\]?", text)
        if header:
            table = re.sub(r"^hardware\.drawers\.[A-Z]+$", "hardware.drawers.*", header[1])
            continue
        # A commented-out setting is "# key = value"; prose indented further is not one.
        key = re.match(r"#? ?([a-z_0-9]+) = \S", line)
        if key:
            keys.add(f"{table}.{key[1]}" if table else key[1])
    return keys


def _loader_keys() -> set[str]:
    keys = {key for key in configuration.TOP_KEYS if key == "seed"}
    keys |= {f"cabinet.{k}" for k in configuration.CABINET_KEYS if k != "drawers"}
    keys |= {f"cabinet.drawers.{k}" for k in configuration.DRAWER_KEYS}
    keys |= {f"hardware.{k}" for k in configuration.HARDWARE_KEYS
             if k not in ("timeouts", "drawers")}
    keys |= {f"hardware.timeouts.{k}" for k in configuration.TIMEOUT_KEYS}
    keys |= {f"hardware.drawers.*.{k}" for k in
             (*configuration.GPIO_DRAWER_KEYS, *configuration.SERIAL_DRAWER_KEYS)}
    for table, names in configuration.SECTION_KEYS.items():
        keys |= {f"{table}.{k}" for k in names}
    return keys


def test_the_example_configuration_shows_every_key_the_loader_reads_and_no_other():
    """A key the loader reads that the example never shows is a setting no site finds; a
    key the example shows that the loader refuses stops the cabinet at start."""
    example, loader = _example_keys(), _loader_keys()
    assert not example - loader, f"in the example, refused by the loader: {example - loader}"
    assert not loader - example, f"read by the loader, not in the example: {loader - example}"


def test_the_example_configuration_loads_with_its_commented_settings_turned_on():
    """Uncommenting an optional setting of the example, as a site does, gives a file the
    controller accepts (the drawer-board variant aside: it replaces the [hardware] tables)."""
    head, variant = EXAMPLE.read_text(encoding="utf-8").split("# --- Variant: drawer boards")
    text = head + "[session]" + variant.split("[session]", 1)[1]
    lines = []
    for line in text.splitlines():
        if re.match(r"# ?(\[[a-z]+\]$|[a-z_]+ = )", line) and "lasa" not in line:
            line = line.lstrip("# ")
        lines.append(line)
    raw = tomllib.loads("\n".join(lines))
    loaded = configuration.from_dict(raw, sim=False, source=EXAMPLE)
    assert loaded.settings.timezone == "Europe/Paris"
    assert loaded.settings.patient_id_pattern == "[0-9]{8,10}"
    assert loaded.hosts


def test_the_board_upgrade_runs_the_cabinet_s_python_and_frees_the_board_first():
    """docs/deploy.md's drawer-board upgrade, and install.sh's warning that asks for it,
    are typed on the Pi: there, ``python`` does not exist (Bookworm has python3) and the
    system's Python has neither ``hal`` nor pyserial; the cabinet's code is in
    /opt/armoire/venv. A board running the firmware ignores mpremote until it is put in
    maintenance mode (firmware/README.md), so that step comes before ``make firmware``."""
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    installer = (ROOT / "deploy" / "install.sh").read_text(encoding="utf-8")
    assert "\nOPT_DIR=/opt/armoire\nVENV=$OPT_DIR/venv\n" in installer
    installer = installer.replace("$VENV/", "/opt/armoire/venv/")
    for name, text in (("docs/deploy.md", deploy), ("deploy/install.sh", installer)):
        calls = re.findall(r"(\S*)\s+-m hal\.board_tool\s+(\S+)\s+(\w+)", text)
        assert calls, name
        for python, _, _ in calls:
            assert python == "/opt/armoire/venv/bin/python", (name, python)
        actions = [action for _, _, action in calls]
        assert "maintenance" in actions and "info" in actions, (name, actions)
        assert text.index("hal.board_tool") < text.index("make firmware"), name
    assert "mpremote" in deploy.split("#### Upgrading drawer boards", 1)[1].split("\n## ")[0]


def test_the_data_partition_steps_run_before_the_installer_as_written():
    """The checklist mounts the data partition (step 4) before install.sh runs (step 5):
    then there is no ``armoire`` user to give the folders to (``install -o armoire`` and
    ``chown armoire`` fail: invalid user), and no /var/lib/armoire to mount on. The
    installer gives the mounted folder its owner and mode and makes backups/ (as
    test_deploy_install checks), so the block only makes the mount point and mounts."""
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    checklist = deploy.split("## First-boot checklist", 1)[1]
    assert checklist.index("data partition") < checklist.index("deploy/install.sh")
    item = deploy.split("2. **A data partition**", 1)[1].split("\n3. ", 1)[0]
    block = item.split("```sh", 1)[1].split("```", 1)[0]
    assert "armoire:armoire" not in block and "-o armoire" not in block, block
    assert "mkdir -p /var/lib/armoire" in block, block
    assert block.index("mkdir -p /var/lib/armoire") < block.index("mount /var/lib/armoire")


def test_the_technician_s_commands_describe_themselves_in_english_and_french():
    """``armoire admin --help`` and the other commands docs/deploy.md has the technician
    type say what they do in both languages, as the summaries do."""
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    used = {resolve(words)[0] for name, _, words in armoire_mentions() if name == "deploy.md"}
    parsers = dict(_leaves(build_parser()))
    english_only = [" ".join(path) for path in sorted(used) if path in parsers
                    and " / " not in (parsers[path].description or "")]
    assert "armoire admin" in deploy and ("admin",) in used
    assert not english_only, f"descriptions in English only: {english_only}"


def test_the_console_commands_on_a_cabinet_are_given_as_they_run_there():
    """On the Pi, ``armoire`` is not on the PATH (it is /opt/armoire/venv/bin/armoire), and
    the commands that write the database must run as armoire (as root they are refused,
    WRONG_USER). A document showing one for the cabinet's configuration shows it so."""
    wrong = []
    for name, snippet, words in armoire_mentions():
        path = resolve(words)[0]
        if path[:1] in (("admin",), ("badge",), ("restore",)) and "/etc/armoire/" in snippet \
                and not snippet.startswith("…") \
                and "sudo -u armoire /opt/armoire/venv/bin/armoire " not in snippet:
            wrong.append(f"{name}: {snippet}")
    assert not wrong, "\n".join(wrong)


def test_the_console_commands_options_say_what_they_are_in_english_and_french():
    """``armoire restore --help`` lists BACKUP, ``--config FILE``, ``--with-key KEY``…: the
    technician reads those lines as much as the description above them, so each argument
    of the console's commands (those of ``controller/*_cli.py``) says what it is, in both
    languages ("english / français"), as the descriptions do."""
    console = re.compile(r"controller\.[a-z]+_cli")
    checked, wrong = 0, []
    for path, parser in _leaves(build_parser()):
        func = parser.get_default("func")
        if func is None or not console.fullmatch(func.__module__):
            continue
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            checked += 1
            name = "/".join(action.option_strings) or action.dest
            if " / " not in (action.help or ""):
                wrong.append(f"armoire {' '.join(path)} {name}: {action.help!r}")
    assert checked >= 30, checked   # the scan found the console's commands
    assert not wrong, "\n".join(wrong)
