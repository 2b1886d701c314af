"""How many llama.cpp slots should the embedded server run on this machine?

Replays what ``balanced`` asks of the model for a few Spider questions: three candidates of one
prompt (temperatures 0, 0.7, 0.7) sent at once, then one refinement turn per candidate sent at
once (each conversation continued with its own feedback). Each configuration starts its own
embedded server. Printed per configuration: wall seconds, and prompt tokens read vs served from
the prompt cache (``timings.prompt_n`` / ``timings.cache_n`` of the llama.cpp server).

``--sampling n`` sends the two sampled candidates as one request with ``n=2`` after the greedy one:
llama.cpp then reads the prompt once and copies it to the child slot.

Usage (the figures in the README came from these):

    .venv/bin/python benchmarks/bench_server_slots.py --slots 1 3
    .venv/bin/python benchmarks/bench_server_slots.py --slots 3 --sampling n
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from quorumsql.agents.generator import build_messages
from quorumsql.config import Settings
from quorumsql.db import open_database
from quorumsql.llm.embedded import EmbeddedServer
from quorumsql.schema_repr import to_mschema

SPIDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "spider" / "database"
QUESTIONS = [
    ("concert_singer", "What are the names of the stadiums that had concerts in 2014 and their capacities?"),
    ("pets_1", "What is the average age of the students who have a dog, by major?"),
    ("car_1", "What is the average horsepower of cars made by each maker in the USA?"),
]
FEEDBACK = "The query returned no rows. Check the filters and write the corrected SQL."
ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def _messages(db_id: str, question: str) -> list[dict]:
    db = open_database(SPIDER / db_id / f"{db_id}.sqlite")
    return [{"role": ROLES[m.type], "content": m.content} for m in build_messages(question, to_mschema(db.schema()))]


class Client:
    """Posts chat completions and keeps the token tallies."""

    def __init__(self, server: EmbeddedServer) -> None:
        self.server, self.read, self.cached = server, 0, 0
        self._lock = threading.Lock()

    def chat(self, messages: list[dict], temperature: float, n: int = 1) -> list[str]:
        body = {"model": self.server.alias, "messages": messages, "temperature": temperature,
                "max_tokens": 160, "n": n, "seed": 7}
        reply = httpx.post(self.server.base_url + "/chat/completions", json=body, timeout=900).json()
        timings = reply.get("timings") or {}
        with self._lock:
            self.read += int(timings.get("prompt_n", 0))
            self.cached += int(timings.get("cache_n", 0))
        return [c["message"]["content"] for c in reply["choices"]]


def run(slots: int, sampling: str) -> None:
    server = EmbeddedServer(Settings(embedded_parallel=slots))
    client = Client(server)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=3) as pool:
        for db_id, question in QUESTIONS:
            msgs = _messages(db_id, question)
            if sampling == "n":
                replies = client.chat(msgs, 0.0) + client.chat(msgs, 0.7, n=2)
            else:
                replies = [r for rs in pool.map(lambda t: client.chat(msgs, t), (0.0, 0.7, 0.7)) for r in rs]
            turns = [msgs + [{"role": "assistant", "content": r}, {"role": "user", "content": FEEDBACK}] for r in replies]
            list(pool.map(lambda m: client.chat(m, 0.0), turns))
    seconds = time.monotonic() - start
    server.stop()
    print(f"slots={slots} sampling={sampling}: {seconds:.1f} s for {len(QUESTIONS)} questions; "
          f"prompt tokens read {client.read:,}, served from cache {client.cached:,}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--sampling", choices=["separate", "n"], default="separate")
    args = parser.parse_args()
    for slots in args.slots:
        run(slots, args.sampling)


if __name__ == "__main__":
    main()
