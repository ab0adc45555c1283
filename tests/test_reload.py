"""Config reload: a valid change swaps the routes under load with no failed request; a broken
one is reported with its line and the running config keeps serving; a port change is refused."""
import os
import threading
import time

import requests

from conftest import free_port


def config(port, upstream, extra=""):
    return f"""
binds:
- port: {port}
  listeners:
  - routes:
    - backends: [{{host: 127.0.0.1:{upstream}}}]{extra}
"""


def replace_file(path, text):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # how editors and config managers publish a file


def wait_for(pred, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_reload_under_load_and_bad_configs(tollgate, echo_upstreams, workdir):
    a, b = echo_upstreams
    port = free_port()
    proc = tollgate.start(config(port, a), ports=[port])
    path = workdir / "config.yaml"
    url = f"http://127.0.0.1:{port}/"
    stop = threading.Event()
    seen, failures = [], []

    def load(keep_alive):
        s = requests.Session() if keep_alive else requests
        while not stop.is_set():
            try:
                r = s.get(url, timeout=5, headers={} if keep_alive else {"connection": "close"})
                seen.append(r.json()["server"] if r.status_code == 200 else r.status_code)
            except requests.RequestException as e:
                failures.append(repr(e))

    threads = [threading.Thread(target=load, args=(ka,)) for ka in (True, True, False, False)]
    for t in threads:
        t.start()
    time.sleep(1)
    replace_file(path, config(port, b))
    assert wait_for(lambda: seen[-20:].count(1) == 20, timeout=5), "new requests did not move to the new upstream"
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert failures == [], failures[:3]
    assert set(seen) == {0, 1}, f"unexpected statuses: {set(seen) - {0, 1}}"
    assert "config reloaded" in proc.output()

    broken = config(port, a).replace("backends:", "backendz:")
    replace_file(path, broken)
    line = next(i + 1 for i, l in enumerate(broken.splitlines()) if "backendz" in l)
    assert wait_for(lambda: "config reload failed" in proc.output())
    err = next(l for l in proc.output().splitlines() if "config reload failed" in l)
    assert f"config.yaml:{line}:" in err and "backendz" in err, err
    assert requests.get(url, timeout=5).json()["server"] == 1, "the old config must keep serving"

    replace_file(path, config(free_port(), a))
    assert wait_for(lambda: "bind ports changed" in proc.output())
    assert requests.get(url, timeout=5).json()["server"] == 1
