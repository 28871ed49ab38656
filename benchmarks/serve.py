"""A bounded load test of ``parley run`` on loopback, beside Rasa 3.6's figures.

    python benchmarks/serve.py [--bot rasa-init-moodbot] [--config FILE | --model ARCHIVE]
        [--store memory|sqlite|sql|redis] [--processes N] [--conversations 50] [--rasa VENV]
        [--messages 3000 | --seconds S] [--sequential 300] [--json]

Trains the bot (default: ../shared/data/bots/rasa-init-moodbot with its own config.yml,
into a temporary folder) unless ``--model`` names an archive, starts ``parley run`` as a
subprocess (``--processes`` of them sharing the stores; each client sends the messages of
its conversations to them in turn: no balancer), and talks to it over the REST webhook:

1. **one conversation at a time** (``--sequential`` messages, each sent when the last was
   answered): the handle-message latency a single user sees. Rasa's 22.6 ms (its
   ``handle one message end to end, median``, ../shared/anchors.md) is a median of this
   kind — one message at a time, nothing else running; anchors.md does not say whether
   through HTTP or in process, so both are reported and both compare: the same script
   also runs in this process through ``MessageProcessor.handle_message`` with in-memory
   stores and the server's prediction pool (no HTTP), with its CPU time per message.
2. **many conversations at once** (``--conversations`` clients, each holding scripted
   conversations one message after the other, until ``--messages`` were answered or
   ``--seconds`` passed): throughput, latency p50/p99 under load, errors.

Beside wall times it reports what the noise of a shared machine does not move much: the
server's CPU time per message (user + sys from /proc, client excluded), the cores it used
on average, its OS threads (PyTorch's intra-op pools would show there) and its peak memory
(VmHWM). Model load time is what the server logs for ``load(archive)``. The load generator
is a small asyncio HTTP/1.1 keep-alive client (one connection per conversation), so that
the client takes as little of the two cores as it can; the client shares the machine with
the server, so throughput is a floor.

``--rasa VENV`` runs the same client and script against Rasa 3.6.21 itself (``rasa run``
from a virtualenv made by ../shared/tools/rasa_install, the bot trained by ``rasa train``
with its own config.yml unless ``--model`` names a Rasa archive), and Rasa's
``Agent.handle_text`` in its own interpreter for the in-process column
(benchmarks/rasa_handle.py): run it beside a Parley run, in the same minutes, when the
machine's speed is not what it was when anchors.md's figures were taken.

Stores: ``memory`` (default), ``sqlite`` (a file in the temporary folder), ``sql``
(PostgreSQL at ``PARLEY_BENCH_POSTGRES``, default postgresql+psycopg://postgres@127.0.0.1/test)
and ``redis`` (127.0.0.1:6379); sql and redis come with the Redis lock store, as a
deployment of several processes has them. The benchmark's own table and keys are removed
at the end. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BOTS = REPO.parent / "shared" / "data" / "bots"
PG = os.environ.get("PARLEY_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = ("127.0.0.1", 6379)
READY = "Parley server is ready"
RASA_READY = "Rasa server is up and running"
LOADED = re.compile(r"loaded the model .* in ([0-9.]+) s")
# Rasa 3.6.21 on the moodbot (../shared/anchors.md): handle one message, median; Agent.load.
RASA = {"handle_p50_ms": 22.6, "load_s": 21.8}
MOOD_SCRIPT = ["hello", "I am sad", "no", "bye", "hi", "I am great", "goodbye"]
WEBHOOK = "/webhooks/rest/webhook"


# ---- the model and its conversations ---------------------------------------------------

def bot_folder(name: str) -> Path:
    path = Path(name)
    return path if path.is_dir() else BOTS / name


def train_model(bot: Path, config: Path, folder: Path) -> Path:
    """Train ``bot`` with ``config`` into ``folder`` (its training cache there too)."""
    from parley.model_training import train

    cwd = Path.cwd()
    os.chdir(folder)
    try:
        result = train(str(bot / "domain.yml"), str(config), [str(bot / "data")],
                       str(folder / "models"))
    finally:
        os.chdir(cwd)
    return Path(result.model)


def script_for(bot: Path) -> list[str]:
    """What a user says in one scripted conversation: the moodbot's happy and sad paths, or
    for another bot one example of each intent of its NLU data (entity marks removed)."""
    if "moodbot" in bot.name:
        return list(MOOD_SCRIPT)
    import yaml

    texts: list[str] = []
    for path in sorted((bot / "data").rglob("*.yml")):
        for item in (yaml.safe_load(path.read_text()) or {}).get("nlu", []) or []:
            if "intent" in item and isinstance(item.get("examples"), str):
                lines = [line[2:].strip() for line in item["examples"].splitlines()
                         if line.startswith("- ")]
                if lines:
                    texts.append(re.sub(r"\[([^\]]+)\](\([^)]*\)|\{[^}]*\})", r"\1", lines[0]))
    if not texts:
        raise SystemExit(f"{bot}: no NLU examples to build a conversation from")
    return texts[:12]


# ---- the servers ----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    started: float
    ready_s: float = 0.0
    load_s: float = float("nan")

    ready_line: str = READY

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.ready_line not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start:\n"
                                 + self.log.read_text(errors="replace")[-3000:])
            time.sleep(0.02)
        self.ready_s = time.monotonic() - self.started
        found = LOADED.search(self.log.read_text(errors="replace"))
        self.load_s = float(found.group(1)) if found else float("nan")

    def cpu_s(self) -> float:
        """The server's user + sys CPU seconds so far (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status(self, key: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(model: Path, endpoints: Path | None, folder: Path, number: int,
                 workers: int) -> Server:
    port = free_port()
    log = folder / f"server{number}.log"
    command = [sys.executable, "-m", "parley.cli.main", "run", "-m", str(model),
               "-i", "127.0.0.1", "--port", str(port), "--seed", "0",
               "--prediction-workers", str(workers)]
    if endpoints is not None:
        command += ["--endpoints", str(endpoints)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=folder, stdout=out, stderr=subprocess.STDOUT,
                                   env=env)
    return Server(process, port, log, time.monotonic())


def start_rasa_server(venv: Path, model: Path, folder: Path) -> Server:
    """``rasa run`` from ``venv`` (Rasa 3.6.21 installed by ../shared/tools/rasa_install),
    with its REST channel (Rasa's default credentials enable it) and in-memory stores. It
    logs no load time: ``start → ready`` is its figure."""
    port = free_port()
    log = folder / "rasa-server.log"
    command = [str(venv / "bin" / "rasa"), "run", "-m", str(model), "-i", "127.0.0.1",
               "--port", str(port)]
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=folder, stdout=out, stderr=subprocess.STDOUT,
                                   env=env)
    return Server(process, port, log, time.monotonic(), ready_line=RASA_READY)


def train_rasa_model(venv: Path, bot: Path, folder: Path) -> Path:
    """``rasa train`` of ``bot`` with its own config.yml, into ``folder``."""
    project = folder / "rasa-project"
    for name in ("domain.yml", "config.yml", "data"):
        source = bot / name
        target = project / name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    subprocess.run([str(venv / "bin" / "rasa"), "train", "--out", str(folder / "models")],
                   cwd=project, check=True, env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
                   stdout=subprocess.DEVNULL)
    return next((folder / "models").glob("*.tar.gz"))


def rasa_in_process(venv: Path, model: Path, script: list[str],
                    messages: int) -> tuple[list[float], float, float]:
    """Rasa's ``Agent.handle_text`` one message at a time in Rasa's own interpreter
    (benchmarks/rasa_handle.py): its latencies, their CPU seconds, and ``Agent.load``'s
    seconds (Rasa's "load the model" figure in anchors.md)."""
    done = subprocess.run(
        [str(venv / "bin" / "python"), str(REPO / "benchmarks" / "rasa_handle.py"),
         str(model), str(messages), json.dumps(script)],
        check=True, capture_output=True, text=True,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"})
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["latencies"], result["cpu_s"], result["load_s"]


def endpoints_for(store: str, folder: Path, tag: str) -> Path | None:
    redis_lock = (f"lock_store:\n  type: redis\n  url: {REDIS[0]}\n  port: {REDIS[1]}\n"
                  f"  key_prefix: bench{tag}\n")
    text = {
        "memory": None,
        "sqlite": f"tracker_store:\n  type: SQL\n  db: {folder / 'bench.db'}\n",
        "sql": f"tracker_store:\n  type: SQL\n  url: {PG}\n  table_name: bench_{tag}\n"
               + redis_lock,
        "redis": f"tracker_store:\n  type: redis\n  url: {REDIS[0]}\n  port: {REDIS[1]}\n"
                 f"  key_prefix: bench{tag}\n" + redis_lock,
    }[store]
    if text is None:
        return None
    path = folder / "endpoints.yml"
    path.write_text(text)
    return path


def clean_stores(store: str, tag: str) -> None:
    try:
        if store == "sql":
            import sqlalchemy as sa

            engine = sa.create_engine(PG)
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "bench_{tag}"'))
            engine.dispose()
        if store in ("sql", "redis"):
            import redis

            for db in (0, 1):
                client = redis.Redis(host=REDIS[0], port=REDIS[1], db=db)
                keys = list(client.scan_iter(match=f"bench{tag}*"))
                if keys:
                    client.delete(*keys)
                client.close()
    except Exception as error:  # noqa: BLE001 - cleaning up must not hide the results
        print(f"(cleanup failed: {error})", file=sys.stderr)


# ---- the load generator: HTTP/1.1 keep-alive over asyncio streams -----------------------

class Connection:
    """One keep-alive connection posting JSON to the webhook (uvicorn answers with a
    Content-Length, as Starlette's JSONResponse sets it)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: dict[str, Any]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        self.writer.write(b"POST " + WEBHOOK.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Type: application/json\r\nContent-Length: "
                          + str(len(data)).encode() + b"\r\n\r\n" + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next((int(line.split(":", 1)[1]) for line in lines
                       if line.lower().startswith("content-length:")), None)
        if length is None:
            raise ValueError(f"an answer without Content-Length: {lines[0]}")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def converse(ports: list[int], sender: str, script: list[str], load: Load,
                   stop: Any) -> None:
    """Hold conversations one after the other until ``stop()``: each goes through the
    script once, as ``<sender>-<n>``, its messages sent to the servers in turn."""
    connections = [Connection(port) for port in ports]
    try:
        turn = 0
        while not stop():
            text = script[turn % len(script)]
            who = f"{sender}-{turn // len(script)}"
            server = turn % len(ports)
            began = time.perf_counter()
            try:
                status, body = await connections[server].post({"sender": who,
                                                               "message": text})
                if status != 200 or not isinstance(json.loads(body), list):
                    load.errors.append(f"HTTP {status}: {body[:200]!r}")
            except (OSError, ValueError, asyncio.IncompleteReadError) as error:
                load.errors.append(f"{type(error).__name__}: {error}")
                await connections[server].close()
                connections[server] = Connection(ports[server])
            load.latencies.append(time.perf_counter() - began)
            turn += 1
    finally:
        for connection in connections:
            await connection.close()


async def run_load(ports: list[int], conversations: int, script: list[str],
                   messages: int | None, seconds: float | None, tag: str) -> tuple[Load, float]:
    load = Load()
    deadline = time.monotonic() + seconds if seconds else None

    def stop() -> bool:
        if deadline is not None:
            return time.monotonic() >= deadline
        return len(load.latencies) >= (messages or 0)

    began = time.perf_counter()
    # Client i starts at server i, so that the servers share the work from the first message.
    await asyncio.gather(*(converse(ports[i % len(ports):] + ports[:i % len(ports)],
                                    f"{tag}-c{i}", script, load, stop)
                           for i in range(conversations)))
    return load, time.perf_counter() - began


def in_process(model: Path, script: list[str], messages: int) -> tuple[list[float], float]:
    """``MessageProcessor.handle_message`` in this process, in-memory stores, one message at
    a time (after a warm-up conversation), the model computing in a prediction pool as in
    the server (one worker, one PyTorch thread): the latencies, and the CPU seconds they
    took (all threads of this process)."""
    from parley.runtime.processor import MessageProcessor, UserMessage
    from parley.serving.agent import load
    from parley.serving.http.compute import PredictionPool

    pool = PredictionPool(1)
    processor = MessageProcessor(load(model), seed=0, compute=pool)

    async def go() -> list[float]:
        for text in script:
            await processor.handle_message(UserMessage(text, "warm-up"))
        times: list[float] = []
        for i in range(messages):
            began = time.perf_counter()
            await processor.handle_message(UserMessage(script[i % len(script)],
                                                       f"c{i // len(script)}"))
            times.append(time.perf_counter() - began)
        return times

    cpu = time.process_time()
    try:
        return asyncio.run(go()), time.process_time() - cpu
    finally:
        pool.close()


# ---- figures --------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    bot = bot_folder(args.bot)
    script = script_for(bot)
    tag = uuid.uuid4().hex[:10]
    with tempfile.TemporaryDirectory(prefix="parley-serve-") as name:
        folder = Path(name)
        if args.model:
            model = Path(args.model).resolve()
        elif args.rasa:
            print(f"training {bot.name} with Rasa ({bot / 'config.yml'}) …", file=sys.stderr)
            model = train_rasa_model(args.rasa, bot, folder)
        else:
            config = Path(args.config).resolve() if args.config else bot / "config.yml"
            print(f"training {bot.name} with {config} …", file=sys.stderr)
            model = train_model(bot, config, folder)
        endpoints = endpoints_for(args.store, folder, tag)
        servers = ([start_rasa_server(args.rasa, model, folder)] if args.rasa else
                   [start_server(model, endpoints, folder, n, args.prediction_workers)
                    for n in range(args.processes)])
        try:
            for server in servers:
                server.wait_ready()
            ports = [server.port for server in servers]
            # Warm-up: a few conversations on each server (first calls fill caches).
            asyncio.run(run_load(ports, 2 * len(servers), script, 4 * len(script), None,
                                 f"{tag}w"))
            cpu0 = sum(server.cpu_s() for server in servers)
            sequential, seq_wall = asyncio.run(run_load(
                ports, 1, script, args.sequential, None, f"{tag}s"))
            cpu1 = sum(server.cpu_s() for server in servers)
            loaded, wall = asyncio.run(run_load(ports, args.conversations, script,
                                                None if args.seconds else args.messages,
                                                args.seconds, f"{tag}l"))
            cpu2 = sum(server.cpu_s() for server in servers)
            peak_mb = max(server.status("VmHWM") for server in servers) / 1024
            threads = max(server.status("Threads") for server in servers)
        finally:
            for server in servers:
                server.stop()
            clean_stores(args.store, tag)
        errors = [line for server in servers for line in server.log.read_text(
            errors="replace").splitlines() if "Traceback" in line or " ERROR " in line]
        if not args.in_process:
            inproc, inproc_cpu = [], 0.0
        elif args.rasa:
            inproc, inproc_cpu, rasa_load_s = rasa_in_process(args.rasa, model, script,
                                                              args.sequential)
            for server in servers:
                server.load_s = rasa_load_s
        else:
            inproc, inproc_cpu = in_process(model, script, args.sequential)
    n_seq, n_load = len(sequential.latencies), len(loaded.latencies)
    return {
        "server": "Rasa 3.6.21 (measured)" if args.rasa else "Parley",
        "bot": bot.name, "model": model.name, "store": args.store,
        "processes": args.processes, "prediction_workers": args.prediction_workers,
        "load_s": max(server.load_s for server in servers),
        "ready_s": max(server.ready_s for server in servers),
        "peak_mb": peak_mb, "server_threads": threads,
        "sequential": {
            "messages": n_seq, "errors": len(sequential.errors),
            "p50_ms": 1000 * percentile(sequential.latencies, 50),
            "p99_ms": 1000 * percentile(sequential.latencies, 99),
            "server_cpu_ms": 1000 * (cpu1 - cpu0) / max(1, n_seq),
            "per_s": n_seq / seq_wall},
        "in_process": {
            "messages": len(inproc), "p50_ms": 1000 * percentile(inproc, 50),
            "p99_ms": 1000 * percentile(inproc, 99),
            "cpu_ms": 1000 * inproc_cpu / max(1, len(inproc))},
        "concurrent": {
            "conversations": args.conversations, "messages": n_load,
            "errors": len(loaded.errors), "first_errors": loaded.errors[:3],
            "seconds": wall, "per_s": n_load / wall,
            "p50_ms": 1000 * percentile(loaded.latencies, 50),
            "p99_ms": 1000 * percentile(loaded.latencies, 99),
            "server_cpu_ms": 1000 * (cpu2 - cpu1) / max(1, n_load),
            "server_cores": (cpu2 - cpu1) / wall},
        "server_log_errors": errors[:5],
        "rasa": RASA,
    }


def table(result: dict[str, Any]) -> str:
    s, c, p = result["sequential"], result["concurrent"], result["in_process"]
    inproc = f"{p['p50_ms']:.2f} ({p['cpu_ms']:.2f})" if p["messages"] else "—"
    rasa = result["rasa"]
    moodbot = "moodbot" in result["bot"]
    rows = [
        f"{result['bot']} ({result['model']}), store {result['store']}, "
        f"{result['processes']} server process(es), {result['prediction_workers']} "
        "prediction worker(s) each\n",
        "One conversation, one message at a time (Rasa's figure was taken so):\n",
        "| | handle-message p50 ms | p99 ms | in process p50 (CPU) ms | server CPU ms/message | "
        "model load s | start → ready s | server peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| {result['server']}, REST webhook | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {inproc} | "
        f"{s['server_cpu_ms']:.2f} | {result['load_s']:.2f} | {result['ready_s']:.2f} | "
        f"{result['peak_mb']:.0f} |",
    ]
    if moodbot and not result["server"].startswith("Rasa"):
        rows.append(f"| Rasa 3.6.21 (anchors.md) | {rasa['handle_p50_ms']} | | | | "
                    f"{rasa['load_s']} | | 1120 |")
    rows += [
        "",
        f"{c['conversations']} conversations at once, {c['messages']} messages in "
        f"{c['seconds']:.1f} s:\n",
        "| messages/s | p50 ms | p99 ms | errors | server CPU ms/message | server cores used | "
        "server threads |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {c['per_s']:.0f} | {c['p50_ms']:.2f} | {c['p99_ms']:.2f} | {c['errors']} | "
        f"{c['server_cpu_ms']:.2f} | {c['server_cores']:.2f} | {result['server_threads']} |",
    ]
    if c["first_errors"] or result["server_log_errors"]:
        rows += ["", "errors: " + "; ".join(c["first_errors"] + result["server_log_errors"])]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bot", default="rasa-init-moodbot",
                        help="A bot under ../shared/data/bots, or a project folder.")
    parser.add_argument("--config", default=None, help="Train with this config.yml "
                        "(default: the bot's own).")
    parser.add_argument("--model", default=None, help="Serve this archive; no training.")
    parser.add_argument("--store", choices=["memory", "sqlite", "sql", "redis"],
                        default="memory")
    parser.add_argument("--processes", type=int, default=1,
                        help="Servers sharing the stores (needs --store sql or redis).")
    parser.add_argument("--prediction-workers", type=int, default=1)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--messages", type=int, default=3000,
                        help="Messages of the concurrent part.")
    parser.add_argument("--seconds", type=float, default=None,
                        help="Run the concurrent part this long instead.")
    parser.add_argument("--sequential", type=int, default=300,
                        help="Messages of the one-at-a-time part.")
    parser.add_argument("--rasa", type=Path, default=None, metavar="VENV",
                        help="Serve Rasa 3.6 from this virtualenv instead (made by "
                        "../shared/tools/rasa_install): the same client and script, in the "
                        "same minutes as a Parley run. Trains the bot with `rasa train` and "
                        "its own config.yml unless --model names a Rasa archive.")
    parser.add_argument("--no-in-process", dest="in_process", action="store_false")
    parser.add_argument("--json", action="store_true", help="Print JSON, not tables.")
    args = parser.parse_args(argv)
    if args.rasa and (args.processes > 1 or args.store != "memory"):
        parser.error("--rasa serves one Rasa process with its in-memory stores")
    if args.processes > 1 and args.store in ("memory", "sqlite"):
        parser.error("several processes share conversations only through --store sql or "
                     "redis (with the Redis lock store)")
    result = measure(args)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
