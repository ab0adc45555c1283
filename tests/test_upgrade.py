"""Binary upgrade: a new process started with -u takes the listening socket over after the old
one gets SIGQUIT; requests keep being answered and the old process exits on its own."""
import os
import signal
import subprocess
import time

import requests

from conftest import BIN, Proc, free_port, wait_port


def test_upgrade_hands_listening_socket_over(workdir):
    port = free_port()
    cfg = workdir / "c.yaml"
    cfg.write_text(f"""
config:
  connectionTerminationDeadline: 1s
binds:
- port: {port}
  listeners:
  - routes:
    - policies: {{directResponse: {{status: 200, body: up}}}}
""")
    run_dir = workdir / "run"
    args = [str(BIN), "-f", str(cfg), "--runtime-dir", str(run_dir)]
    old = Proc(args, workdir / "old.log")
    new = None
    try:
        wait_port(port, proc=old.proc)
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).text == "up"
        new = Proc(args + ["-u"], workdir / "new.log")
        time.sleep(1)  # the new process waits on the upgrade socket
        os.kill(old.proc.pid, signal.SIGQUIT)
        deadline = time.time() + 20
        failures = 0
        while old.proc.poll() is None and time.time() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=5, headers={"connection": "close"})
            except requests.RequestException:
                failures += 1
            time.sleep(0.05)
        assert old.proc.poll() is not None, "old process did not exit after SIGQUIT"
        assert new.proc.poll() is None, new.output()
        assert failures == 0, f"{failures} requests failed during the hand-over"
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).text == "up"
    finally:
        old.stop()
        if new:
            new.stop()
