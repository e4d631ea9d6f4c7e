"""The Simplified Chinese catalog: complete for every translatable string of the project, compiled, and used.

Completeness is checked by running makemessages (the same command as `make messages`) on a copy of the source
tree: a new or changed string then shows up untranslated or fuzzy, and the test names it.
"""

from __future__ import annotations

import gettext
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.accounts.page_helpers import text_of
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[2]
CATALOG = Path("locale/zh_Hans/LC_MESSAGES")
MAKEMESSAGES = [
    "makemessages",
    "-l",
    "zh_Hans",
    "--ignore=.venv",
    "--ignore=.data",
    "--ignore=static",
    "--ignore=tests",
]
NOT_SOURCES = shutil.ignore_patterns(
    ".venv", ".data", ".git", "static", "tests", "node_modules", "__pycache__", "*.egg-info", ".*_cache", "build"
)


@dataclass
class Entry:
    msgid: str = ""
    context: str | None = None
    plural: str | None = None
    translations: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        # The key Python's gettext uses in a compiled catalog.
        return f"{self.context}\x04{self.msgid}" if self.context is not None else self.msgid


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES[m.group(1)], text.strip()[1:-1])


def parse_po(text: str) -> list[Entry]:
    """The active entries of a .po file (obsolete `#~` ones are left out), header included."""
    entries: list[Entry] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        entry, target = Entry(), None
        for line in block.splitlines():
            if line.startswith("#~"):
                entry = None
                break
            if line.startswith("#,"):
                entry.flags |= {flag.strip() for flag in line[2:].split(",")}
            elif line.startswith("#"):
                continue
            elif match := re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(".*")$', line):
                keyword, index, value = match.groups()
                target = (keyword, int(index or 0))
                _append(entry, target, _unquote(value), start=True)
            elif line.startswith('"') and target:
                _append(entry, target, _unquote(line), start=False)
            else:
                raise AssertionError(f"unreadable line in the catalog: {line!r}")
        if entry is not None:
            entries.append(entry)
    return entries


def _append(entry: Entry, target: tuple[str, int], value: str, *, start: bool) -> None:
    keyword, index = target
    if keyword == "msgctxt":
        entry.context = value if start else entry.context + value
    elif keyword == "msgid":
        entry.msgid = value if start else entry.msgid + value
    elif keyword == "msgid_plural":
        entry.plural = value if start else entry.plural + value
    else:
        entry.translations[index] = value if start else entry.translations[index] + value


def problems(entries: list[Entry]) -> list[str]:
    """Every entry that would show English (or a guess) to a Chinese reader."""
    found = []
    for entry in entries:
        if "fuzzy" in entry.flags:
            found.append(f"fuzzy: {entry.msgid!r}")
        elif entry.msgid and not (entry.translations and all(entry.translations.values())):
            found.append(f"untranslated: {entry.msgid!r}")
    return found


def test_every_entry_of_the_committed_catalog_is_translated_and_none_is_fuzzy():
    entries = parse_po((ROOT / CATALOG / "django.po").read_text(encoding="utf-8"))

    assert len(entries) > 300
    assert problems(entries) == []


def test_the_catalog_has_every_translatable_string_of_the_project(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(ROOT, copy, ignore=NOT_SOURCES)
    committed = (ROOT / CATALOG / "django.po").read_bytes()
    # A database URL keeps settings from starting the embedded PostgreSQL; makemessages never connects.
    env = {**os.environ, "PYTHONPATH": str(copy), "DATABASE_URL": "postgres://localhost/unused"}

    result = subprocess.run(  # noqa: S603 (fixed argv)
        [sys.executable, "manage.py", *MAKEMESSAGES],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert (ROOT / CATALOG / "django.po").read_bytes() == committed, "makemessages wrote outside the copy"
    regenerated = parse_po((copy / CATALOG / "django.po").read_text(encoding="utf-8"))
    missing = problems(regenerated)
    assert missing == [], (
        "Strings without a Chinese translation: run `make messages`, translate them in "
        f"{CATALOG}/django.po and compile. {missing}"
    )


def test_the_compiled_catalog_matches_the_po_file():
    entries = parse_po((ROOT / CATALOG / "django.po").read_text(encoding="utf-8"))
    with (ROOT / CATALOG / "django.mo").open("rb") as compiled:
        catalog = gettext.GNUTranslations(compiled)._catalog

    expected = {}
    for entry in entries:
        if not entry.msgid or "fuzzy" in entry.flags:
            continue
        if entry.plural is None:
            expected[entry.key] = entry.translations[0]
        else:
            expected.update({(entry.key, n): text for n, text in entry.translations.items()})
    assert {key: value for key, value in catalog.items() if key != ""} == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    "how", [{"HTTP_ACCEPT_LANGUAGE": "zh-Hans"}, {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}, {"cookie": "zh-hans"}]
)
def test_the_login_page_speaks_chinese_when_chosen(client, settings, how):
    if "cookie" in how:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = how.pop("cookie")

    response = client.get("/accounts/login/", **how)

    text = text_of(response)
    assert '<html lang="zh-hans">' in response.content.decode()
    assert "电子邮箱" in text
    assert "忘记密码？" in text
    assert "第一次来？ 注册您的机构" in text


@pytest.mark.django_db
def test_the_login_page_speaks_english_by_default(client):
    text = text_of(client.get("/accounts/login/"))

    assert "Forgot your password?" in text
    assert "忘记密码" not in text


@pytest.mark.django_db
def test_a_services_refusal_reaches_a_chinese_reader_in_chinese(client, settings):
    UserFactory(email="mei.chen@lakeside.test")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"

    response = client.post(
        "/accounts/signup/",
        {
            "name": "Mei Chen",
            "email": "mei.chen@lakeside.test",
            "password1": "a-long-enough-passphrase",
            "password2": "a-long-enough-passphrase",
            "language": "zh-hans",
            "organization_kind": "center",
            "organization_name": "Lakeside Compute",
        },
    )

    assert response.context["form"].errors == {"email": ["该电子邮箱已注册账户。"]}
