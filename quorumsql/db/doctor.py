"""``quorumsql doctor``: what the connecting account could do beyond reading, and how to fix it.

QuorumSQL refuses writes itself, but the account's privileges are the one lock the server
enforces for everything. :func:`diagnose` reads them through the connectors' own trusted
introspection (never model output) and returns a :class:`Report`:

- **findings**, one sentence each, of the kinds ``superuser``, ``write``, ``files``,
  ``extension``, ``routines`` and ``roles`` (see :class:`Finding`);
- **the fix**: the statements that create a SELECT-only account for this database (MariaDB /
  MySQL, PostgreSQL), or the file permissions to set (SQLite).

The connectors' connect-time warnings (:meth:`~quorumsql.db.base.Database.privilege_warnings`)
are the same findings in fewer sentences: :func:`mysql_findings` / :func:`postgres_findings`
plus :func:`connect_warnings`.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from quorumsql.db.base import Database
from quorumsql.errors import DatabaseError
from quorumsql.sqlnames import quote_identifier

try:
    import pwd
except ImportError:  # Windows
    pwd = None  # type: ignore[assignment]

#: Name of the SELECT-only account the fix creates.
READ_ONLY_ACCOUNT = "quorumsql_ro"

# -- MySQL / MariaDB privilege classes ----------------------------------------------------
# Privileges that only read; anything else changes data, structure or the server.
MYSQL_READ_PRIVILEGES = frozenset({
    "USAGE", "SELECT", "SHOW VIEW", "SHOW DATABASES", "PROCESS", "REFERENCES",
    "REPLICATION CLIENT", "BINLOG MONITOR", "SLAVE MONITOR", "REPLICA MONITOR",
    "SHOW CREATE ROUTINE",
})
_MYSQL_ROUTINE_PRIVILEGES = ("CREATE ROUTINE", "ALTER ROUTINE", "EXECUTE")
_ALL = "ALL PRIVILEGES"
_GLOBAL = "*.*"

# -- PostgreSQL ---------------------------------------------------------------------------
_PG_FILE_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program")
# Extensions that reach outside the database: other servers (dblink), server files (adminpack).
_PG_EXTENSIONS = {
    "dblink": "a query can open connections to other databases and servers and write there",
    "adminpack": "a query can write, rename and delete files on the server",
}
# Their functions that do the harm, named first in a finding.
_PG_EXTENSION_FIRST = {
    "dblink": ("dblink_exec", "dblink_connect_u", "dblink_connect", "dblink"),
    "adminpack": ("pg_file_write", "pg_file_unlink", "pg_file_rename"),
}
_PG_TABLE_WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER")
_SHOWN = 5  # names listed in one finding before "and N more"


@dataclass(frozen=True)
class Finding:
    """One thing the account can do beyond reading.

    Attributes:
        kind: ``superuser`` (PostgreSQL ``rolsuper``; MySQL ``ALL PRIVILEGES ON *.*`` or
            ``SUPER``), ``write`` (data, structure, accounts or server settings; for SQLite the
            file), ``files`` (MySQL FILE, PostgreSQL ``pg_*_server_*`` roles), ``extension``
            (dblink / adminpack usable or installable), ``routines`` (routines that could write:
            defining or executing them), ``roles`` (granted roles whose privileges could not
            be read).
        message: one line, for people.
        privileges: the privileges or objects behind it (for the connect-time warnings and
            ``--json``), e.g. ``("ALL PRIVILEGES ON *.*", "GRANT OPTION")``.
    """

    kind: str
    message: str
    privileges: tuple[str, ...] = ()


@dataclass
class Fix:
    """How to get an account (or a file) that can only read.

    Attributes:
        kind: ``sql`` (statements an administrator runs on the server) or ``shell``.
        statements: the statements or commands, in order; lines starting with ``--`` / ``#``
            are comments.
        account: the SELECT-only account created (``'quorumsql_ro'@'127.0.0.1'``,
            ``quorumsql_ro``), None for SQLite.
        password: its freshly generated password, None for SQLite.
        url: what to give QuorumSQL afterwards (a URL with the password, or a path).
    """

    kind: str
    statements: list[str]
    account: str | None = None
    password: str | None = None
    url: str | None = None


@dataclass
class Report:
    """What :func:`diagnose` found.

    Attributes:
        database: the database's URL without password (or ``sqlite:///path``).
        dialect: ``sqlite`` | ``mysql`` | ``postgres``.
        server: the server's product and version (``MariaDB 10.11.6``, ``PostgreSQL 15.8``,
            ``SQLite 3.40.1``).
        account: the account as the server names it (``'root'@'localhost'``, ``postgres``;
            the operating-system user for SQLite).
        findings: what the account can do beyond reading; empty when it is read-only.
        notes: remarks that do not make the account writable (e.g. a writable folder).
        fix: how to get a read-only account; None when there is nothing to fix.
    """

    database: str
    dialect: str
    server: str
    account: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fix: Fix | None = None

    @property
    def read_only(self) -> bool:
        """True when nothing was found: the account can only read."""
        return not self.findings

    @property
    def exit_code(self) -> int:
        """0 when read-only, 1 when something should be fixed."""
        return 0 if self.read_only else 1

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the fields plus ``read_only``; findings as dicts."""
        doc = asdict(self)
        doc["findings"] = [{**f, "privileges": list(f["privileges"])} for f in doc["findings"]]
        doc["read_only"] = self.read_only
        return doc

    def lines(self) -> list[str]:
        """The report for people: a header, one line per finding and note, then the fix."""
        out = [f"quorumsql doctor: {self.database}", f"{self.server}, account {self.account}"]
        out += [f"{f.kind}: {f.message}" for f in self.findings]
        out += [f"note: {n}" for n in self.notes]
        who = f"the user {self.account.split(' ')[0]}" if self.dialect == "sqlite" else "this account"
        if self.read_only:
            out.append(f"read-only: {who} can only read {self.database}; nothing to fix")
            return out
        out.append(f"{len(self.findings)} finding(s): {who} can do more than read.")
        if self.fix is not None:
            if self.fix.kind == "sql":
                out.append("A SELECT-only account for this database (run as an administrator):")
            else:
                out.append("Make the file read-only for QuorumSQL:")
            out += [f"  {s}" for s in self.fix.statements]
            if self.fix.url:
                out.append(f"then give QuorumSQL: {self.fix.url}")
        return out


def diagnose(db: "str | os.PathLike | Database") -> Report:
    """Read what the account behind ``db`` may do and how to make it read-only.

    Args:
        db: a SQLite path, a ``mysql+pymysql://`` / ``postgresql://`` URL (the forms of
            :func:`~quorumsql.db.open_database`), or an open :class:`Database`.

    Returns:
        A :class:`Report`; ``report.exit_code`` is 0 when the account is read-only.

    Raises:
        DatabaseError: not a database, unknown URL scheme, unreachable server, refused login,
            or the catalogs cannot be read.
    """
    from quorumsql.db import open_database

    database = open_database(db)
    if database.dialect == "sqlite":
        return _sqlite_report(database)
    if database.dialect == "mysql":
        return _mysql_report(database)
    if database.dialect == "postgres":
        return _postgres_report(database)
    raise DatabaseError(f"quorumsql doctor does not know the {database.dialect!r} connector")


def _names(items: list[str], shown: int = _SHOWN) -> str:
    """``a, b, c`` or ``a, b, c and 4 more``."""
    head = ", ".join(items[:shown])
    return head + (f" and {len(items) - shown} more" if len(items) > shown else "")


def connect_warnings(dialect: str, account: str, findings: list[Finding]) -> list[str]:
    """The connect-time warnings (``Database.privilege_warnings``) for ``findings``.

    Fewer, longer sentences than ``quorumsql doctor`` prints: on MySQL one sentence for
    everything that changes something (its privileges listed), one for FILE, one for
    uninspected roles; on PostgreSQL a superuser gets one sentence, other roles one for the
    server-file roles, one for write rights, one per extension and one for routines.

    Args:
        dialect: ``mysql`` or ``postgres``.
        account: the account name as the sentences show it.
        findings: what :func:`mysql_findings` / :func:`postgres_findings` returned.

    Returns:
        Warning sentences, empty when ``findings`` is.
    """
    by_kind: dict[str, list[Finding]] = {}
    for f in findings:
        by_kind.setdefault(f.kind, []).append(f)
    warnings: list[str] = []
    if dialect == "mysql":
        changes: list[str] = []
        for kind in ("superuser", "write", "routines"):
            for f in by_kind.get(kind, []):
                changes += [p for p in f.privileges if p not in changes]
        if changes:
            warnings.append(
                f"the MySQL account {account} can change data, structure or the server "
                f"({', '.join(changes)}): QuorumSQL refuses such statements itself, but only an "
                "account limited to SELECT is a lock the server enforces"
            )
        if "files" in by_kind:
            warnings.append(
                f"the MySQL account {account} holds the FILE privilege: LOAD_FILE() and "
                "SELECT ... INTO OUTFILE could read and write files on the server's host "
                "(QuorumSQL refuses both); revoke FILE"
            )
        for f in by_kind.get("roles", []):
            warnings.append(f"the MySQL account {f.message}")
        return warnings
    if "superuser" in by_kind:
        return [
            f"the PostgreSQL role {account} is a superuser: it can read and write server files "
            "(pg_read_file, COPY ... TO) and run programs, and the read-only session is only "
            "a default it could change; connect with a role that holds only SELECT"
        ]
    for f in by_kind.get("files", []):
        warnings.append(
            f"the PostgreSQL role {account} is a member of {', '.join(f.privileges)}: it can reach "
            "files or programs on the server (QuorumSQL refuses those functions); revoke the membership"
        )
    rights = [p for f in by_kind.get("write", []) for p in f.privileges]
    if rights:
        warnings.append(
            f"the PostgreSQL role {account} can {', '.join(rights)}: QuorumSQL's sessions are "
            "read-only, but only a role limited to SELECT is a lock the server enforces"
        )
    for kind in ("extension", "routines"):
        warnings += [f.message.replace("the role", "the PostgreSQL role", 1) for f in by_kind.get(kind, [])]
    return warnings


# =========================================================================================
# MySQL / MariaDB


@dataclass
class _Grant:
    target: str  # *.*, `db`.*, `db`.`t`, FUNCTION `db`.`f`, ``@`%` (PROXY)
    privilege: str  # upper case, without column lists
    role: str | None = None  # granted through this role


@dataclass
class _MySQLFacts:
    account: str  # 'user'@'host'
    client_host: str  # the host the server sees this connection come from
    version: str
    mariadb: bool
    grants: list[_Grant]
    roles: list[str]  # granted roles
    unread_roles: list[str]  # roles whose grants could not be read
    routines: list[tuple[str, str, str, str]]  # name, FUNCTION/PROCEDURE, data access, security


_GRANT_LINE = re.compile(r"GRANT\s+(.*?)\s+ON\s+(.*?)\s+TO\s+(.*)$", re.IGNORECASE | re.DOTALL)
_ROLE_LINE = re.compile(r"GRANT\s+(.*?)\s+TO\s+(.*)$", re.IGNORECASE | re.DOTALL)


def _parse_grants(lines: list[str], role: str | None = None) -> tuple[list[_Grant], list[str]]:
    """``SHOW GRANTS`` lines as grants and granted role names (MariaDB and MySQL 8 forms)."""
    grants: list[_Grant] = []
    roles: list[str] = []
    for line in lines:
        m = _GRANT_LINE.match(line.strip())
        if m is None:
            r = _ROLE_LINE.match(line.strip())
            if r:
                roles += [x.strip() for x in r.group(1).split(",") if x.strip()]
            continue
        target = " ".join(m.group(2).split())
        for part in re.split(r",(?![^()]*\))", m.group(1)):
            name = " ".join(re.sub(r"\(.*\)", "", part, flags=re.DOTALL).split()).upper()
            if name == "ALL":
                name = _ALL
            if name:
                grants.append(_Grant(target, name, role))
        if re.search(r"WITH\s+GRANT\s+OPTION", m.group(3), re.IGNORECASE):
            grants.append(_Grant(target, "GRANT OPTION", role))
    return grants, roles


def _mysql_account_text(user_at_host: str) -> str:
    user, _, host = str(user_at_host).rpartition("@")
    return f"{_mysql_string(user)}@{_mysql_string(host)}"


def _mysql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _mysql_facts(db, conn=None) -> _MySQLFacts:
    own = conn is None
    conn = conn or db._connect(read_timeout=db.query_timeout)
    try:
        current, user, version = db._run_internal("SELECT CURRENT_USER(), USER(), VERSION()", (), conn)[0]
        mariadb = "mariadb" in str(version).lower()
        lines = [str(r[0]) for r in db._run_internal("SHOW GRANTS", (), conn)]
        grants, roles = _parse_grants(lines)
        unread: list[str] = []
        seen: set[str] = set()
        pending = list(roles)
        while pending:  # roles granted to roles, read the same way
            role = pending.pop(0)
            if role in seen:
                continue
            seen.add(role)
            try:
                if mariadb:
                    db._run_internal(f"SET ROLE {role}", (), conn)
                    role_lines = [str(r[0]) for r in db._run_internal("SHOW GRANTS", (), conn)]
                    role_lines = [ln for ln in role_lines if ln not in lines]
                else:
                    role_lines = [str(r[0]) for r in db._run_internal(
                        f"SHOW GRANTS FOR CURRENT_USER() USING {role}", (), conn)]
            except DatabaseError:
                unread.append(role)
                continue
            more, nested = _parse_grants(role_lines, role)
            grants += [g for g in more if (g.target, g.privilege) not in {(x.target, x.privilege) for x in grants}]
            pending += [n for n in nested if n not in seen]
        routines = [
            (str(a), str(b), str(c), str(d)) for a, b, c, d in db._run_internal(
                "SELECT ROUTINE_NAME, ROUTINE_TYPE, SQL_DATA_ACCESS, SECURITY_TYPE "
                "FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s ORDER BY ROUTINE_NAME",
                (db.database,), conn,
            )
        ]
    finally:
        if own:
            conn.close()
    client = str(user).rpartition("@")[2]
    return _MySQLFacts(
        account=_mysql_account_text(current), client_host=client, version=str(version),
        mariadb=mariadb, grants=grants, roles=roles, unread_roles=unread, routines=routines,
    )


def _grouped(grants: list[_Grant]) -> str:
    """``INSERT, UPDATE ON `db`.*; GRANT OPTION ON *.* (role `r`)``."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for g in grants:
        groups.setdefault((g.target, g.role), [])
        if g.privilege not in groups[(g.target, g.role)]:
            groups[(g.target, g.role)].append(g.privilege)
    return "; ".join(
        f"{', '.join(privs)} ON {target}" + (f" (through role {role})" if role else "")
        for (target, role), privs in groups.items()
    )


def _mysql_findings_from(facts: _MySQLFacts, database: str) -> list[Finding]:
    who = facts.account
    findings: list[Finding] = []
    all_global = [g for g in facts.grants if g.privilege == _ALL and g.target == _GLOBAL]
    superuser = all_global + [g for g in facts.grants if g.privilege == "SUPER" and g.target == _GLOBAL]
    if superuser:
        findings.append(Finding(
            "superuser",
            f"{who} is a superuser ({_grouped(superuser)}): it can change any database, any account "
            "and the server's settings, and lift the read-only session",
            tuple(f"{_ALL} ON {_GLOBAL}" if g.privilege == _ALL else g.privilege for g in superuser),
        ))
    writes = [
        g for g in facts.grants
        if g.privilege not in MYSQL_READ_PRIVILEGES and g.privilege not in ("FILE", "SUPER")
        and g.privilege not in _MYSQL_ROUTINE_PRIVILEGES
    ]
    if writes:
        findings.append(Finding(
            "write",
            f"{who} can write: {_grouped(writes)}",
            tuple(dict.fromkeys(f"{_ALL} ON {g.target}" if g.privilege == _ALL else g.privilege for g in writes)),
        ))
    files = [g for g in facts.grants if g.privilege == "FILE" or (g.privilege == _ALL and g.target == _GLOBAL)]
    if files:
        findings.append(Finding(
            "files",
            f"{who} holds FILE ({_grouped(files)}): LOAD_FILE() and SELECT ... INTO OUTFILE / DUMPFILE "
            "read and write files on the server's host",
            ("FILE",),
        ))
    routine = [g for g in facts.grants if g.privilege in _MYSQL_ROUTINE_PRIVILEGES or g.privilege == _ALL]
    if routine:
        present = [f"{name} ({kind.lower()}, {access.lower()}, SQL SECURITY {security})"
                   for name, kind, access, security in facts.routines]
        where = (f"{len(present)} stored routine(s) in `{database}` it can run: {_names(present)}"
                 if present else f"no stored routine in `{database}` yet")
        findings.append(Finding(
            "routines",
            f"{who} can define or execute stored routines, which may write ({_grouped(routine)}); {where}",
            tuple(dict.fromkeys(f"{_ALL} ON {g.target}" if g.privilege == _ALL else g.privilege for g in routine)),
        ))
    if facts.unread_roles:
        findings.append(Finding(
            "roles",
            f"{who} has the role(s) {', '.join(facts.unread_roles)}, whose privileges could not be read: "
            "check that they grant only SELECT",
            tuple(facts.unread_roles),
        ))
    return findings


def mysql_findings(db, conn=None) -> tuple[str, list[Finding]]:
    """The findings about a MySQL / MariaDB connector's account.

    Args:
        db: a :class:`~quorumsql.db.mysql.MySQLDatabase`.
        conn: an open connection of ``db`` to reuse, or None to open one. Roles are read
            with ``SET ROLE`` on it (MariaDB).

    Returns:
        ``(account, findings)``: the account as ``'user'@'host'`` and what it can do beyond
        reading (see :class:`Finding`).

    Raises:
        DatabaseError: the server cannot be reached or ``SHOW GRANTS`` fails.
    """
    facts = _mysql_facts(db, conn)
    return facts.account, _mysql_findings_from(facts, db.database)


def _mysql_report(db) -> Report:
    facts = _mysql_facts(db)
    findings = _mysql_findings_from(facts, db.database)
    product = "MariaDB" if facts.mariadb else "MySQL"
    report = Report(
        database=db.uri, dialect="mysql", server=f"{product} {facts.version.split('-')[0]}",
        account=facts.account, findings=findings,
    )
    if facts.roles and not facts.unread_roles:
        report.notes.append(f"privileges of the role(s) {', '.join(facts.roles)} were read with SET ROLE")
    if findings:
        report.fix = _mysql_fix(db, facts)
    return report


def _mysql_fix(db, facts: _MySQLFacts) -> Fix:
    # the account is for connections from where this one came; over loopback TCP the server
    # may name the client "localhost", which an account for 127.0.0.1 also matches
    host = facts.client_host
    if host in ("localhost", "127.0.0.1", "::1") or host.startswith("127."):
        host = "::1" if db.host == "::1" else "127.0.0.1"
    name = quote_identifier(db.database, "mysql")
    if facts.account.startswith(_mysql_string(READ_ONLY_ACCOUNT) + "@"):
        # the account exists already (this is it): take back what it has, grant SELECT again
        account = facts.account
        # roles first: on MariaDB, REVOKE ALL takes the role grants too, and a later REVOKE fails
        statements = [f"REVOKE {role} FROM {account};" for role in facts.roles]
        statements.append(f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account};")
        statements.append(f"GRANT SELECT, SHOW VIEW ON {name}.* TO {account};")
        return Fix("sql", statements, account=account)
    password = secrets.token_urlsafe(18)
    account = f"{_mysql_string(READ_ONLY_ACCOUNT)}@{_mysql_string(host)}"
    statements = [
        f"CREATE USER {account} IDENTIFIED BY {_mysql_string(password)};",
        f"GRANT SELECT, SHOW VIEW ON {name}.* TO {account};",
    ]
    server = f"[{db.host}]" if ":" in db.host else db.host
    url = f"mysql+pymysql://{READ_ONLY_ACCOUNT}:{password}@{server}:{db.port}/{quote(db.database, safe='')}"
    return Fix("sql", statements, account=account, password=password, url=url)


# =========================================================================================
# PostgreSQL


@dataclass
class _PostgresFacts:
    account: str
    database: str
    version_num: int
    version: str
    superuser: bool
    createrole: bool
    createdb: bool
    file_roles: list[str]
    member_of: list[str]  # roles granted to this one directly
    tables: list[tuple[str, list[str]]]  # writable tables and the write privileges held
    table_schemas: list[str]  # the schemas of those tables
    sequences: list[str]  # sequences it can advance
    sequence_schemas: list[str]
    create_schemas: list[str]  # schemas it can create objects in
    create_database: bool  # CREATE on this database (new schemas)
    schemas: list[str]  # the user schemas (for the per-schema grants)
    public_create_schemas: list[str]  # schemas where PUBLIC (so every role) may CREATE
    public_create_database: bool
    # extension name -> (schema, functions the role can execute, functions PUBLIC can execute)
    extensions: dict[str, tuple[str, list[str], list[str]]]
    installable: list[str]  # dblink / adminpack, not installed, and this role could create them
    # user routines that may write: (signature, kind p/f, volatility, security definer,
    # executable by this role, executable by PUBLIC)
    routines: list[tuple[str, str, str, bool, bool, bool]]


def _postgres_facts(db, conn=None) -> _PostgresFacts:
    own = conn is None
    conn = conn or db._connect(db.query_timeout)
    fetch = db._fetch
    user_schema = "left(n.nspname, 3) <> 'pg_' AND n.nspname <> 'information_schema'"
    try:
        (account, superuser, createrole, createdb, version_num, version, dbname), = fetch(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, "
            "current_setting('server_version_num')::int, current_setting('server_version'), current_database() "
            "FROM pg_roles WHERE rolname = current_user", (), conn,
        )
        file_roles = [r for (r,) in fetch(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) "
            "AND pg_has_role(current_user, oid, 'MEMBER') ORDER BY rolname", (list(_PG_FILE_ROLES),), conn,
        )]
        member_of = [r for (r,) in fetch(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = current_user ORDER BY 1", (), conn,
        )]
        checks = ", ".join(
            f"CASE WHEN has_table_privilege(c.oid, '{p}') THEN '{p}' END" for p in _PG_TABLE_WRITES
        )
        table_rows = fetch(
                "SELECT name, privs, nspname FROM (SELECT n.nspname, CASE WHEN n.nspname = 'public' THEN c.relname "
                "ELSE n.nspname || '.' || c.relname END AS name, "
                f"array_remove(ARRAY[{checks}], NULL) AS privs "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                f"WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {user_schema}) t "
                "WHERE cardinality(privs) > 0 ORDER BY name", (), conn,
        )
        sequence_rows = fetch(
            "SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END, n.nspname "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind = 'S' AND {user_schema} "
            # CASE: the planner may test the privilege before the relkind, on non-sequences
            "AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'USAGE, UPDATE') END "
            "ORDER BY 1", (), conn,
        )
        schema_rows = fetch(
            "SELECT n.nspname, has_schema_privilege(n.oid, 'CREATE'), has_schema_privilege('public', n.oid, 'CREATE') "
            f"FROM pg_namespace n WHERE {user_schema} ORDER BY 1", (), conn,
        )
        (create_db, public_create_db), = fetch(
            "SELECT has_database_privilege(current_database(), 'CREATE'), "
            "has_database_privilege('public', current_database(), 'CREATE')", (), conn,
        )
        extensions: dict[str, tuple[str, list[str], list[str]]] = {}
        for ext, schema, mine, public in fetch(
            "SELECT e.extname, n.nspname, "
            "coalesce(array_agg(p.oid::regprocedure::text ORDER BY p.proname) "
            "  FILTER (WHERE has_function_privilege(p.oid, 'EXECUTE')), '{}'), "
            "coalesce(array_agg(p.oid::regprocedure::text ORDER BY p.proname) "
            "  FILTER (WHERE has_function_privilege('public', p.oid, 'EXECUTE')), '{}') "
            "FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "LEFT JOIN pg_depend d ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid "
            "  AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e' "
            "LEFT JOIN pg_proc p ON p.oid = d.objid "
            "WHERE e.extname = ANY(%s) GROUP BY e.extname, n.nspname ORDER BY e.extname",
            (list(_PG_EXTENSIONS),), conn,
        ):
            extensions[ext] = (schema, list(mine), list(public))
        trusted = "v.trusted" if version_num >= 130000 else "false"
        installable = [name for (name,) in fetch(
            "SELECT a.name FROM pg_available_extensions a "
            "LEFT JOIN pg_available_extension_versions v ON v.name = a.name AND v.version = a.default_version "
            "WHERE a.name = ANY(%s) AND a.installed_version IS NULL "
            f"AND (%s OR (coalesce({trusted}, false) AND has_database_privilege(current_database(), 'CREATE'))) "
            "ORDER BY 1", (list(_PG_EXTENSIONS), bool(superuser)), conn,
        )]
        routines = [
            (str(sig), kind, vol, bool(secdef), bool(mine), bool(public)) for sig, kind, vol, secdef, mine, public in fetch(
                "SELECT p.oid::regprocedure::text, p.prokind, p.provolatile, p.prosecdef, "
                "has_function_privilege(p.oid, 'EXECUTE'), has_function_privilege('public', p.oid, 'EXECUTE') "
                f"FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {user_schema} "
                "AND p.prokind IN ('f', 'p') AND (p.provolatile = 'v' OR p.prosecdef) "
                "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass "
                "  AND d.objid = p.oid AND d.deptype = 'e') ORDER BY 1", (), conn,
            )
        ]
    finally:
        if own:
            conn.close()
    return _PostgresFacts(
        account=str(account), database=str(dbname), version_num=int(version_num), version=str(version),
        superuser=bool(superuser), createrole=bool(createrole), createdb=bool(createdb),
        file_roles=file_roles, member_of=member_of,
        tables=[(name, list(privs)) for name, privs, _ in table_rows],
        table_schemas=sorted({schema for _, _, schema in table_rows}),
        sequences=[name for name, _ in sequence_rows],
        sequence_schemas=sorted({schema for _, schema in sequence_rows}),
        create_schemas=[s for s, mine, _ in schema_rows if mine],
        create_database=bool(create_db), schemas=[s for s, _, _ in schema_rows],
        public_create_schemas=[s for s, _, public in schema_rows if public],
        public_create_database=bool(public_create_db),
        extensions=extensions, installable=installable, routines=routines,
    )


def _short(signature: str) -> str:
    return signature.split("(", 1)[0]


def _worst_first(ext: str, signatures: list[str]) -> list[str]:
    """The distinct function names of ``signatures``, those of :data:`_PG_EXTENSION_FIRST` first."""
    names = sorted({_short(s) for s in signatures})
    first = [n for n in _PG_EXTENSION_FIRST.get(ext, ()) if n in names]
    return first + [n for n in names if n not in first]


def _postgres_findings_from(facts: _PostgresFacts) -> list[Finding]:
    who = facts.account
    findings: list[Finding] = []
    if facts.superuser:
        findings.append(Finding(
            "superuser",
            f"the role {who} is a superuser (rolsuper): every permission check passes, and the "
            "read-only session is only a default it could change",
            ("rolsuper",),
        ))
    if facts.tables:
        privs = [p for p in _PG_TABLE_WRITES if any(p in t for _, t in facts.tables)]
        findings.append(Finding(
            "write",
            f"the role {who} can write {len(facts.tables)} table(s) ({', '.join(privs)}): "
            f"{_names([name for name, _ in facts.tables])}",
            (f"write {len(facts.tables)} table(s)",),
        ))
    if facts.sequences:
        findings.append(Finding(
            "write",
            f"the role {who} can advance {len(facts.sequences)} sequence(s) (USAGE / UPDATE): "
            f"{_names(facts.sequences)}",
            (f"advance {len(facts.sequences)} sequence(s)",),
        ))
    if facts.create_schemas:
        findings.append(Finding(
            "write",
            f"the role {who} can create tables, functions and other objects in schema(s) "
            f"{', '.join(facts.create_schemas)} (CREATE)",
            (f"create objects in schema(s) {', '.join(facts.create_schemas)}",),
        ))
    if facts.create_database:
        findings.append(Finding(
            "write",
            f"the role {who} can create schemas in database {facts.database} (CREATE on the database)",
            ("create schemas in the database",),
        ))
    if facts.createrole:
        findings.append(Finding("write", f"the role {who} can create and alter roles (CREATEROLE)", ("create roles",)))
    if facts.createdb:
        findings.append(Finding("write", f"the role {who} can create databases (CREATEDB)", ("create databases",)))
    if facts.file_roles:
        findings.append(Finding(
            "files",
            f"the role {who} has the powers of {', '.join(facts.file_roles)}"
            + (" (as a superuser)" if facts.superuser else "")
            + ": it can read or write files or run programs on the server",
            tuple(facts.file_roles),
        ))
    for ext, (schema, mine, _public) in facts.extensions.items():
        if mine:
            findings.append(Finding(
                "extension",
                f"the role {who} can use {ext}: it is installed in this database (schema {schema}) and the role may "
                f"execute {len(mine)} of its functions ({_names(_worst_first(ext, mine), 4)}); "
                f"{_PG_EXTENSIONS[ext]}",
                (ext,),
            ))
    for ext in facts.installable:
        findings.append(Finding(
            "extension",
            f"the role {who} can install {ext} in this database (CREATE EXTENSION {ext}): {_PG_EXTENSIONS[ext]}",
            (ext,),
        ))
    runnable = [r for r in facts.routines if r[4]]
    if runnable:
        shown = [f"{sig} ({'procedure' if kind == 'p' else 'function'}, "
                 f"{'VOLATILE' if vol == 'v' else 'STABLE' if vol == 's' else 'IMMUTABLE'}"
                 f"{', SECURITY DEFINER' if secdef else ''})" for sig, kind, vol, secdef, _, _ in runnable]
        findings.append(Finding(
            "routines",
            f"the role {who} can execute {len(runnable)} user routine(s) that may write (neither IMMUTABLE nor STABLE, "
            f"or SECURITY DEFINER): {_names(shown)}",
            tuple(sig for sig, *_ in runnable),
        ))
    return findings


def postgres_findings(db, conn=None) -> tuple[str, list[Finding]]:
    """The findings about a PostgreSQL connector's role.

    Args:
        db: a :class:`~quorumsql.db.postgres.PostgresDatabase`.
        conn: an open connection of ``db`` to reuse, or None to open one.

    Returns:
        ``(role, findings)``: the role name and what it can do beyond reading.

    Raises:
        DatabaseError: the server cannot be reached or a catalog query fails.
    """
    facts = _postgres_facts(db, conn)
    return facts.account, _postgres_findings_from(facts)


def _postgres_report(db) -> Report:
    facts = _postgres_facts(db)
    findings = _postgres_findings_from(facts)
    report = Report(
        database=db.uri, dialect="postgres", server=f"PostgreSQL {facts.version.split()[0]}",
        account=facts.account, findings=findings,
    )
    for ext, (_schema, mine, _public) in facts.extensions.items():
        if not mine:
            report.notes.append(f"{ext} is installed in this database; the role may not execute its functions")
    if findings:
        report.fix = _postgres_fix(db, facts)
    return report


def _pg_ident(name: str) -> str:
    return quote_identifier(name, "postgres", always=False)


def _pg_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _postgres_revokes(facts: _PostgresFacts, role: str, database: str) -> list[str]:
    """Statements that take from an existing ``role`` what the findings say it holds itself."""
    out = []
    attributes = [a for a, held in (("NOSUPERUSER", facts.superuser), ("NOCREATEROLE", facts.createrole),
                                    ("NOCREATEDB", facts.createdb)) if held]
    if attributes:
        out.append(f"ALTER ROLE {role} {' '.join(attributes)};")
    granted = [r for r in facts.member_of if not r.startswith("pg_") or r in _PG_FILE_ROLES]
    if granted:
        out.append(f"REVOKE {', '.join(_pg_ident(r) for r in granted)} FROM {role};")
    for schema in facts.table_schemas:
        out.append(f"REVOKE {', '.join(_PG_TABLE_WRITES)} ON ALL TABLES IN SCHEMA {_pg_ident(schema)} FROM {role};")
    for schema in facts.sequence_schemas:
        out.append(f"REVOKE USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA {_pg_ident(schema)} FROM {role};")
    for schema in facts.create_schemas:
        out.append(f"REVOKE CREATE ON SCHEMA {_pg_ident(schema)} FROM {role};")
    if facts.create_database:
        out.append(f"REVOKE CREATE ON DATABASE {database} FROM {role};")
    return out


def _postgres_fix(db, facts: _PostgresFacts) -> Fix:
    role = _pg_ident(READ_ONLY_ACCOUNT)
    name = _pg_ident(facts.database)
    exists = facts.account == READ_ONLY_ACCOUNT
    password = None if exists else secrets.token_urlsafe(18)
    if exists:
        # the role exists already (this is it): take back what the findings list
        statements = _postgres_revokes(facts, role, name)
    else:
        statements = [f"CREATE ROLE {role} LOGIN PASSWORD {_pg_string(password)};"]
    statements.append(f"GRANT CONNECT ON DATABASE {name} TO {role};")
    if facts.version_num >= 140000:
        statements += [
            f"GRANT pg_read_all_data TO {role};",
            f"-- pg_read_all_data reads every table of every database {role} may connect to; to keep it to "
            f"{facts.database}, grant per schema instead:",
        ]
        per_schema = "-- "
    else:
        per_schema = ""
    for schema in facts.schemas:
        s = _pg_ident(schema)
        statements += [
            f"{per_schema}GRANT USAGE ON SCHEMA {s} TO {role};",
            f"{per_schema}GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {role};",
            f"{per_schema}ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {role};",
        ]
    # what every role holds through PUBLIC, the new one included
    holes = []
    for schema in facts.public_create_schemas:
        holes.append(f"REVOKE CREATE ON SCHEMA {_pg_ident(schema)} FROM PUBLIC;")
    if facts.public_create_database:
        holes.append(f"REVOKE CREATE ON DATABASE {name} FROM PUBLIC;")
    for ext, (_schema, _mine, public) in facts.extensions.items():
        if public:
            holes.append(f"-- every role may call {len(public)} {ext} function(s); DROP EXTENSION {ext} if unused, or:")
            holes.append(f"REVOKE EXECUTE ON FUNCTION {', '.join(public)} FROM PUBLIC;")
    public_routines = [sig for sig, _, _, _, _, public in facts.routines if public]
    if public_routines:
        holes.append("-- user routines that may write, executable by every role:")
        holes.append(f"REVOKE EXECUTE ON ROUTINE {', '.join(public_routines)} FROM PUBLIC;")
    if holes:
        statements.append(f"-- every role, {role} included, holds these through PUBLIC:")
        statements += holes
    if exists:
        return Fix("sql", statements, account=READ_ONLY_ACCOUNT)
    parts = urlsplit(db._url)
    host = parts.hostname or ""
    netloc = f"{READ_ONLY_ACCOUNT}:{password}@" + (f"[{host}]" if ":" in host else host)
    if parts.port:
        netloc += f":{parts.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return Fix("sql", statements, account=READ_ONLY_ACCOUNT, password=password, url=url)


# =========================================================================================
# SQLite


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, AttributeError):
        return os.environ.get("USER") or os.environ.get("USERNAME") or "the current user"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _wal_mode(path: Path) -> bool:
    """Whether the file's header says WAL journal mode (bytes 18 and 19 equal 2)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(20)
    except OSError:
        return False
    return len(head) == 20 and head[18] == 2 and head[19] == 2


def _sqlite_report(db) -> Report:
    path: Path = db.path
    folder = path.parent
    user = _user_name()
    root = _is_root()
    report = Report(
        database=db.uri, dialect="sqlite", server=f"SQLite {sqlite3.sqlite_version}",
        account=f"{user} (operating-system user)",
    )
    file_writable = os.access(path, os.W_OK)
    folder_writable = os.access(folder, os.W_OK)
    if file_writable:
        why = " (root ignores file modes)" if root else ""
        report.findings.append(Finding(
            "write", f"the file {path} is writable by {user}{why}: anything running as {user} can change it",
            (str(path),),
        ))
    else:
        report.notes.append(f"the file {path} is not writable by {user}")
    if folder_writable:
        report.notes.append(
            f"the folder {folder} is writable by {user}: files can be created beside the database, "
            "or the database replaced (QuorumSQL's connection creates none; a read-only mount covers the folder too)"
        )
    else:
        report.notes.append(f"the folder {folder} is not writable by {user}")
        shm = path.with_name(path.name + "-shm")
        if _wal_mode(path) and not shm.exists():
            report.notes.append(
                "the database is in WAL mode and its folder is read-only: SQLite needs the -shm file to "
                "read it; run PRAGMA journal_mode=DELETE on it before making it read-only"
            )
    if file_writable:
        report.fix = _sqlite_fix(path, root)
    return report


def _sqlite_fix(path: Path, root: bool) -> Fix:
    q = shlex.quote
    copy = path.with_name(f"{path.stem}.ro{path.suffix}")
    if root:
        mount = "/mnt/quorumsql-ro"
        statements = [
            "# root ignores file modes: run QuorumSQL as another user (then chmod a-w the file), or read it through a read-only mount:",
            f"mkdir -p {mount} && mount --bind {q(str(path.parent))} {mount} && mount -o remount,bind,ro {mount}",
        ]
        return Fix("shell", statements, url=f"{mount}/{path.name}")
    statements = [
        f"chmod a-w {q(str(path))}",
        f"# or a read-only copy: install -m 0444 {q(str(path))} {q(str(copy))}",
        "# or a read-only mount of its folder: mount --bind DIR MNT && mount -o remount,bind,ro MNT",
    ]
    return Fix("shell", statements, url=str(path))
