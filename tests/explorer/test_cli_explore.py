"""``lossmap explore``: binds 127.0.0.1 by default, prints the address."""

from __future__ import annotations

import pytest

from lossmap import cli
from lossmap._cli import explore

pytest.importorskip("dash")


@pytest.fixture
def served(monkeypatch):
    calls = []
    monkeypatch.setattr(
        explore, "_SERVE", lambda app, host, port: calls.append((app, host, port))
    )
    return calls


def test_explore_defaults_to_loopback(served, capsys):
    assert cli.main(["explore"]) == 0
    ((app, host, port),) = served
    assert (host, port) == ("127.0.0.1", 8050)
    assert app.server is not None
    out = capsys.readouterr()
    assert "http://127.0.0.1:8050/" in out.out
    assert "warning" not in out.err


def test_explore_with_a_store_folder_and_a_public_host(served, capsys, tmp_path):
    assert (
        cli.main(["explore", str(tmp_path), "--host", "0.0.0.0", "--port", "9000"]) == 0
    )
    ((_, host, port),) = served
    assert (host, port) == ("0.0.0.0", 9000)
    out = capsys.readouterr()
    assert f"stores from {tmp_path.resolve()}" in out.out
    assert "warning: listening on 0.0.0.0" in out.err


def test_explore_refuses_a_missing_folder(served, capsys, tmp_path):
    assert cli.main(["explore", str(tmp_path / "missing")]) == 2
    assert not served
    assert "is not a folder" in capsys.readouterr().err
