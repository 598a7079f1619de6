"""Run SQL on chdb (in-process ClickHouse 26.x) and print the result.

Used by tokentrail's tests as a modern-ClickHouse oracle next to the Debian
ClickHouse 18.16 server. Invoked through the deploy/local/chdb-run wrapper,
which picks the venv made by `deploy/local/services install`.

Examples:
    chdb-run -q "SELECT version()"
    chdb-run -q "CREATE TABLE t (a UInt8) ENGINE=MergeTree ORDER BY a; INSERT INTO t VALUES (1); SELECT * FROM t"
    chdb-run -f schema.sql -f checks.sql --format JSONEachRow
    echo "SELECT 1" | chdb-run
    chdb-run --path /tmp/db -q "..."     # keep the database between runs
    chdb-run --param n=5 -q "SELECT {n:UInt8} + 1"

All -q/-f inputs run in order in ONE chdb session, so DDL from one statement
is visible to the next. A single -q/-f may hold several `;`-separated
statements (chdb parses them itself, so `;` inside string literals is fine).
Exit status: 0 on success, 1 on an SQL/engine error (message on stderr),
2 on bad usage.
"""

import argparse
import os
import shutil
import sys
import tempfile


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="chdb-run",
        description="Run SQL on chdb (ClickHouse in-process).",
    )
    p.add_argument("-q", "--query", action="append", default=[],
                   help="SQL text (repeatable; may contain several ;-separated statements)")
    p.add_argument("-f", "--file", action="append", default=[],
                   help="file with SQL statements, '-' for stdin (repeatable)")
    p.add_argument("--format", default="TabSeparated",
                   help="output format: TabSeparated (default), JSONEachRow, CSV, "
                        "or any ClickHouse output format")
    p.add_argument("--path", default=None,
                   help="session data directory (kept); default: a temp dir removed on exit")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="query parameter for {NAME:Type} placeholders (repeatable)")
    p.add_argument("--version", action="store_true",
                   help="print the ClickHouse engine version (SELECT version()) and exit")
    return p.parse_args(argv)


def collect_sql(args):
    """Ordered list of SQL texts: -q then -f, in the order given per kind."""
    texts = list(args.query)
    for f in args.file:
        if f == "-":
            texts.append(sys.stdin.read())
        else:
            with open(f, encoding="utf-8") as fh:
                texts.append(fh.read())
    if not texts and not sys.stdin.isatty():
        texts.append(sys.stdin.read())
    # A file that is only comments/whitespace would be a parse error in chdb.
    return [t for t in texts if t.strip().rstrip(";").strip()]


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)

    params = {}
    for kv in args.param:
        name, sep, value = kv.partition("=")
        if not sep or not name:
            print(f"chdb-run: bad --param {kv!r}, expected NAME=VALUE", file=sys.stderr)
            return 2
        params[name] = value

    # Import late: it loads a ~550 MB shared object; keep --help instant.
    import chdb
    from chdb import session as chs

    if args.version:
        args.query = ["SELECT version()"]
        args.file = []
        args.format = "TabSeparated"

    try:
        texts = collect_sql(args)
    except OSError as e:
        print(f"chdb-run: cannot read SQL file: {e}", file=sys.stderr)
        return 2
    if not texts:
        print("chdb-run: nothing to run (use -q SQL, -f FILE or stdin)", file=sys.stderr)
        return 2

    tmpdir = None
    path = args.path
    if path is None:
        tmpdir = tempfile.mkdtemp(prefix="chdb-run-")
        path = tmpdir
    else:
        os.makedirs(path, exist_ok=True)

    sess = None
    out = sys.stdout.buffer
    try:
        sess = chs.Session(path)
        for sql in texts:
            res = sess.query(sql, args.format, params=params or None)
            data = res.bytes() if hasattr(res, "bytes") else str(res).encode()
            out.write(data)
        out.flush()
        return 0
    except RuntimeError as e:  # chdb.ChdbError and engine errors: message only, no traceback
        out.flush()
        print(f"chdb-run: {str(e).strip()}", file=sys.stderr)
        return 1
    finally:
        if sess is not None:
            sess.close()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
