"""The "Python 3 (bento)" kernel as JupyterLab's launcher and kernel picker show it: with its logo."""

from __future__ import annotations

import struct

import pytest

from tests.labserver.jupyter_process import REPO, jupyter_server

pytestmark = pytest.mark.integration


def test_the_bento_kernelspec_serves_its_logos(tmp_path):
    with jupyter_server(tmp_path, env={"JUPYTER_PATH": str(REPO)}) as server:  # the checkout's kernels/ first
        spec = server.api("GET", "api/kernelspecs").json()["kernelspecs"]["bento-python3"]
        assert spec["spec"]["display_name"] == "Python 3 (bento)"
        for size in (32, 64):
            logo = server.api("GET", spec["resources"][f"logo-{size}x{size}"].lstrip("/"))
            assert logo.status_code == 200 and logo.headers["content-type"] == "image/png"
            assert logo.content[:8] == b"\x89PNG\r\n\x1a\n"
            assert struct.unpack(">II", logo.content[16:24]) == (size, size)
        svg = server.api("GET", spec["resources"]["logo-svg"].lstrip("/"))
        assert svg.status_code == 200 and b"<svg" in svg.content
