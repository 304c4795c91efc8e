"""Benchmark: how much does ``anaconda_auth.request()`` cost on top of raw urllib3?

    python bench/bench_request.py [--requests 500] [--rounds 5] [--warmup 100] [--profile]

One run starts a loopback HTTP/1.1 server (threaded, keep-alive, TCP_NODELAY, a 2-byte body) and
sends sequential keep-alive GETs to it:

- ``request()`` with an explicit config (resolved once, the site being the loopback server, no
  stored key);
- ``request()`` with the default config (``config=None``: ``resolve_config()`` on every call,
  HOME a fresh temporary directory, the site set by ``ANACONDA_AUTH_DOMAIN``);
- ``request()`` with an explicit config and a stored API key (read from the file store and sent
  as the bearer on every call), for information;
- a raw ``urllib3.PoolManager`` (``request("GET", url)``), the baseline;
- the same, sending the headers ``request()`` sends (as the server received them), to show what
  those headers cost on both ends; the verdict is still against the bare baseline.

Each variant is warmed up, then measured ``--rounds`` times (variants interleaved, so drift hits
all alike). Printed per variant: the best and the median round in requests per second and their
ratios to raw urllib3. Other load on the machine only ever slows a round down, so the verdict uses
the best rounds; the medians show how noisy the run was. The target is >= 0.9x raw urllib3 with
an explicit config. ``--profile`` runs cProfile over the
explicit-config variant and prints the costliest functions per request.

Nothing leaves the machine: the server listens on 127.0.0.1, proxy variables are removed and
HOME points at a temporary directory for the whole run.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, ClassVar

ROOT = Path(__file__).resolve().parents[2]
TARGET = 0.9


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # TCP_NODELAY on every accepted connection

    seen_headers: ClassVar[dict[str, str]] = {}  # the last request's, as received

    def do_GET(self) -> None:
        _Handler.seen_headers = dict(self.headers.items())
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _clean_environment(home: str, domain: str) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name.startswith(("ANACONDA_", "CONDA")):
            del os.environ[name]
    os.environ["HOME"] = home
    os.environ["ANACONDA_SECRETS_DIR"] = os.path.join(home, "no-secrets")
    os.environ["ANACONDA_AUTH_DOMAIN"] = domain
    os.chdir(home)  # no stray .env from the working directory


def _rate(send: Callable[[], Any], count: int) -> float:
    """Requests per second over ``count`` calls, with the garbage collector paused as timeit
    does (a collection triggered by one variant's garbage would land in another's round)."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(count):
            send()
        return count / (time.perf_counter() - started)
    finally:
        gc.enable()


def _breakdown(aa: Any, url: str, explicit: Any, keyed: Any, count: int) -> None:
    """Where request() spends its own time: each function of anaconda_auth.py that runs, with
    its time per request including what it calls (cProfile over ``count`` GETs with an explicit
    config and a stored key). The profiler names the steps, so the table follows the module as
    it changes; its overhead inflates every figure alike, so read it for proportions."""
    import cProfile
    import pstats

    for label, config in (("explicit config", explicit), ("explicit config + stored key", keyed)):
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(count):
            aa.request("GET", url, config=config)
        profiler.disable()
        stats: Any = pstats.Stats(profiler).stats
        own = [(cumulative, name) for (filename, _, name), (_, _, _, cumulative, _)
               in stats.items() if Path(filename).resolve() == Path(aa.__file__).resolve()]
        print(f"\nrequest(), {label}: anaconda_auth's functions, us per request including "
              f"callees (cProfile, {count} GETs; the top 12):")
        for cumulative, name in sorted(own, reverse=True)[:12]:
            print(f"  {name:<40} {cumulative / count * 1e6:8.2f} us")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="GETs per round (500)")
    parser.add_argument("--rounds", type=int, default=9, help="measured rounds per variant (9)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up GETs per variant (100)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the explicit-config variant afterwards")
    args = parser.parse_args(argv)

    server = _Server(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}/ping"
    home = tempfile.mkdtemp(prefix="bench-request-home-")
    _clean_environment(home, f"127.0.0.1:{port}")

    sys.path.insert(0, str(ROOT))
    import urllib3

    import anaconda_auth as aa

    environ = dict(os.environ)
    explicit = aa.resolve_config(environ=environ, home=home, cwd=home)
    keyed_home = os.path.join(home, "keyed")
    os.makedirs(keyed_home)
    keyed = aa.resolve_config(environ={**environ, "HOME": keyed_home}, home=keyed_home,
                              cwd=home)
    # Stored in <keyed_home>/.anaconda/keyring, unchecked: the loopback server has no account.
    aa.login(keyed, api_key="bench-opaque-api-key", verify=False)
    raw = urllib3.PoolManager()

    def check(response: Any, status_attr: str = "status") -> None:
        if getattr(response, status_attr) != 200:
            raise SystemExit(f"unexpected response {response!r}")

    # What request() sends beyond what urllib3 adds itself (User-Agent, X-Client-Hostname,
    # Accept): the same headers cost raw urllib3 (and the Python server) time too.
    aa.request("GET", url, config=explicit)
    own = {"host", "accept-encoding", "connection", "content-length"}
    same_headers = {k: v for k, v in _Handler.seen_headers.items() if k.lower() not in own}
    variants: dict[str, Callable[[], Any]] = {
        "raw urllib3.PoolManager": lambda: raw.request("GET", url).data,
        "raw urllib3, request()'s headers": lambda: raw.request("GET", url,
                                                                headers=same_headers).data,
        "request(), explicit config": lambda: aa.request("GET", url, config=explicit).body,
        "request(), default config": lambda: aa.request("GET", url).body,
        "request(), explicit config + stored key": lambda: aa.request("GET", url,
                                                                      config=keyed).body,
    }
    check(raw.request("GET", url))
    check(aa.request("GET", url, config=explicit))
    check(aa.request("GET", url))
    if not aa.request("GET", url, config=keyed).sent_auth:
        raise SystemExit("the stored key was not sent")

    for send in variants.values():  # warm-up: imports, pools, connections, caches
        _rate(send, args.warmup)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, send in variants.items():
            rates[name].append(_rate(send, args.requests))

    print(f"anaconda_auth {aa.__version__}, urllib3 {urllib3.__version__}, "
          f"Python {sys.version.split()[0]}; {args.rounds} rounds x {args.requests} sequential "
          f"keep-alive GETs (after {args.warmup} warm-up) to {url}")
    best_raw = max(rates["raw urllib3.PoolManager"])
    median_raw = statistics.median(rates["raw urllib3.PoolManager"])
    print(f"  {'variant':<42} {'best req/s':>10} {'ratio':>6}   {'median req/s':>12} {'ratio':>6}"
          f"   {'us/req (best)':>13}")
    for name, values in rates.items():
        best, median = max(values), statistics.median(values)
        print(f"  {name:<42} {best:10.0f} {best / best_raw:5.2f}x   {median:12.0f} "
              f"{median / median_raw:5.2f}x   {1e6 / best:13.0f}")
    # The verdict reads median rounds: on a noisy machine a best round is one lucky draw, and
    # the baseline's best moved by 10 % between runs on 2026-12-07 while its median held.
    ratio = statistics.median(rates["request(), explicit config"]) / median_raw
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"target: request() with an explicit config >= {TARGET:.2f}x raw urllib3 (median "
          f"rounds) -> {ratio:.2f}x, {verdict}")
    same = (statistics.median(rates["request(), explicit config"])
            / statistics.median(rates["raw urllib3, request()'s headers"]))
    print(f"  against raw urllib3 sending the same headers: {same:.2f}x ({sorted(same_headers)})")

    _breakdown(aa, url, explicit, keyed, args.requests)

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.requests):
            aa.request("GET", url, config=explicit)
        profiler.disable()
        print(f"\ncProfile, request() with an explicit config, {args.requests} GETs "
              "(tottime per call, sorted by tottime):")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    server.shutdown()
    server.server_close()
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
