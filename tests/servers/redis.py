"""A real Redis server on a free loopback port, started as a plain process."""

import subprocess

import pytest

from . import free_port, require_binary, wait_for_port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    binary = require_binary("redis-server", "redis-server")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    command += ["no", "--dir", str(workdir)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc=proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
