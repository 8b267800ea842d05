"""A pull killed mid-download leaves no partial file once the next pull starts; a running one keeps its file."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from bento_jupyter.registry.client.cache import BlobCache

DOWNLOAD = """
import sys, time
from pathlib import Path
from bento_jupyter.registry.client.cache import BlobCache

def chunks():
    yield b"x" * 4096
    print("downloading", flush=True)
    time.sleep(600)  # a stalled download, killed by the test

BlobCache(Path(sys.argv[1])).put("0" * 64, chunks(), lambda n: None, "test")
"""


def start_download(root: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", DOWNLOAD, str(root)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "downloading"
    return process


def test_a_killed_pull_leaves_no_partial_file_after_the_next_run_but_a_running_one_is_kept(tmp_path):
    killed = start_download(tmp_path)
    running = start_download(tmp_path)
    try:
        assert len(list((tmp_path / "partial").iterdir())) == 2
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        BlobCache(tmp_path)  # the next pull
        left = list((tmp_path / "partial").iterdir())
        assert len(left) == 1  # the running download keeps its file
    finally:
        for process in (killed, running):
            if process.poll() is None:
                process.kill()
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()
    time.sleep(0.1)
    BlobCache(tmp_path)
    assert list((tmp_path / "partial").iterdir()) == []
    assert not (tmp_path / "sha256").exists()
