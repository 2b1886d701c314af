"""A small demo database created by QuorumSQL itself (its own schema and rows).

A neighbourhood bike-repair cooperative: members, bikes, mechanics and repair jobs. Used by
``quorumsql demo`` / ``make demo`` so the first command works on a fresh machine.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

DEMO_QUESTION = "How many repair jobs did each mechanic finish? Show the mechanic's name and the count."

_SCHEMA = """
CREATE TABLE member (
    member_id INTEGER PRIMARY KEY,
    full_name TEXT NOT NULL,
    district TEXT NOT NULL,
    joined_on DATE NOT NULL
);
CREATE TABLE bike (
    bike_id INTEGER PRIMARY KEY,
    member_id INTEGER NOT NULL REFERENCES member(member_id),
    kind TEXT NOT NULL,          -- road, city, cargo, mountain
    frame_colour TEXT
);
CREATE TABLE mechanic (
    mechanic_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    speciality TEXT NOT NULL
);
CREATE TABLE repair_job (
    job_id INTEGER PRIMARY KEY,
    bike_id INTEGER NOT NULL REFERENCES bike(bike_id),
    mechanic_id INTEGER NOT NULL REFERENCES mechanic(mechanic_id),
    opened_on DATE NOT NULL,
    status TEXT NOT NULL,        -- open, finished, cancelled
    cost_eur REAL
);
"""

_MEMBERS = [
    (1, "Ines Duarte", "Riverside", "2021-03-14"),
    (2, "Tomas Berg", "Old Town", "2021-06-02"),
    (3, "Amara Okafor", "Riverside", "2022-01-20"),
    (4, "Lukas Novak", "Hillcrest", "2022-05-11"),
    (5, "Mei Lin", "Old Town", "2023-02-08"),
    (6, "Rafael Costa", "Harbour", "2023-09-30"),
]
_BIKES = [
    (1, 1, "city", "green"), (2, 1, "road", "red"), (3, 2, "cargo", "black"),
    (4, 3, "mountain", "blue"), (5, 4, "city", "white"), (6, 5, "road", "yellow"),
    (7, 6, "cargo", "orange"), (8, 6, "city", "grey"),
]
_MECHANICS = [(1, "Sofia Marques", "wheels"), (2, "Jonas Weber", "gears"), (3, "Priya Nair", "brakes")]
_JOBS = [
    (1, 1, 1, "2024-01-05", "finished", 35.0), (2, 2, 2, "2024-01-09", "finished", 60.0),
    (3, 3, 3, "2024-02-01", "finished", 25.5), (4, 4, 1, "2024-02-17", "finished", 80.0),
    (5, 5, 2, "2024-03-03", "cancelled", None), (6, 6, 3, "2024-03-21", "finished", 42.0),
    (7, 7, 1, "2024-04-02", "finished", 120.0), (8, 8, 2, "2024-04-15", "open", None),
    (9, 1, 1, "2024-05-06", "finished", 18.0), (10, 3, 3, "2024-05-28", "open", None),
]


def create_demo_database(path: str | Path) -> Path:
    """Create (or re-create) the demo SQLite database at ``path`` and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        conn.executescript(_SCHEMA)
        conn.executemany("INSERT INTO member VALUES (?, ?, ?, ?)", _MEMBERS)
        conn.executemany("INSERT INTO bike VALUES (?, ?, ?, ?)", _BIKES)
        conn.executemany("INSERT INTO mechanic VALUES (?, ?, ?)", _MECHANICS)
        conn.executemany("INSERT INTO repair_job VALUES (?, ?, ?, ?, ?, ?)", _JOBS)
        conn.commit()
    finally:
        conn.close()
    tmp.replace(path)
    return path


def expected_demo_answer() -> set[tuple[str, int]]:
    """The correct result of :data:`DEMO_QUESTION`, computed from the rows above."""
    names = {m[0]: m[1] for m in _MECHANICS}
    counts: dict[str, int] = {}
    for job in _JOBS:
        if job[4] == "finished":
            counts[names[job[2]]] = counts.get(names[job[2]], 0) + 1
    return set(counts.items())
