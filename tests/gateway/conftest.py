"""Fixtures of the gateway tests: one real `keel serve` per test module (gateway_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_support import Api, Server, keel, start_server, stop_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A `keel serve` over a fresh data directory (default markets), for one test module."""
    data_dir = tmp_path_factory.mktemp("served") / "data"
    initialised = keel("init", "--data", str(data_dir))
    assert initialised.returncode == 0, initialised.stderr
    server = start_server(data_dir, "--key-rate=50", "--key-burst=100", "--ip-rate=0")
    try:
        yield server
    finally:
        code, stdout, stderr = stop_server(server)
        assert code == 0, stderr
        assert "stopped" in stdout
        assert not (data_dir / "serve.json").exists()


@pytest.fixture(scope="module")
def api(served: Server) -> Iterator[Api]:
    client = Api(served)
    yield client
    client.http.close()
