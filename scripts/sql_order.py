#!/usr/bin/env python3
"""The load order of the extension's SQL is its call order.

    sql_order.py FILE...      (the files of INSTALL_SQL, in load order)

Each file may call only functions declared in itself or in a file before
it.  A C file counts as the SQL file that declares its functions (its
PG_FUNCTION_INFO_V1 symbols named in 'MODULE_PATHNAME', '<symbol>'); a C
file with no SQL function of its own counts as the file of the unit it
serves (HELPERS below).  Calls are `evcharge.NAME(` outside comments, in
SQL bodies and in C string literals.  PL/pgSQL resolves names only when it
runs, so without this check a call up the layers (the pipeline calling
money) would go unnoticed; with it the build fails and names the call.

Table references are not checked: a PL/pgSQL body may read a table of a
later file (cancel_session reads the bridge's ocpp_transaction), which
docs/architecture.md lists where it happens.

The one allowed call upwards is EXCEPTIONS: the heartbeat pipeline's
balance guard, docs/architecture.md ("Where each rule lives").
"""
import os
import re
import sys

# C files with no SQL function of their own: the unit whose work they do.
HELPERS = {
    'src/session_machine.c': 'src/heartbeat_trigger.c',
}

# (caller file, callee): why it may call a later file.
EXCEPTIONS = {
    ('src/session_machine.c', 'balance_guard'):
        'the balance guard acts in the transaction of the heartbeats that moved the money '
        '(docs/architecture.md)',
}

DECL = re.compile(r'CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE|AGGREGATE)\s+evcharge\.(\w+)', re.I)
CSYM = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+evcharge\.\w+[^;]*?'MODULE_PATHNAME',\s*'(\w+)'", re.I | re.S)
CALL = re.compile(r'evcharge\.(\w+)\s*\(')


def sql_text(path):
    """The file without comments and COMMENT ON statements."""
    t = open(path, encoding='utf-8').read()
    t = re.sub(r"COMMENT ON [^;]*?IS\s*(?:'(?:[^']|'')*'\s*)+;", '', t, flags=re.S)
    return re.sub(r'--[^\n]*', '', t)


def c_strings(path):
    """The string literals of a C file, comments left out."""
    t = open(path, encoding='utf-8').read()
    t = re.sub(r'/\*.*?\*/', '', t, flags=re.S)
    t = re.sub(r'//[^\n]*', '', t)
    return ' '.join(re.findall(r'"((?:[^"\\\n]|\\.)*)"', t))


def main(files):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    where = {}        # function -> index of the first file declaring it
    csym_at = {}      # C symbol -> index of the SQL file declaring it
    texts = []
    for i, f in enumerate(files):
        raw = open(f, encoding='utf-8').read()
        for m in DECL.finditer(raw):
            where.setdefault(m.group(1), i)
        for m in CSYM.finditer(raw):
            csym_at.setdefault(m.group(1), i)
        texts.append((f, i, sql_text(f)))
    c_at = {}
    for name in sorted(os.listdir('src')):
        if not name.endswith('.c'):
            continue
        path = 'src/' + name
        syms = re.findall(r'PG_FUNCTION_INFO_V1\((\w+)\)', open(path, encoding='utf-8').read())
        at = [csym_at[s] for s in syms if s in csym_at]
        if at:
            c_at[path] = max(at)
    for helper, unit in HELPERS.items():
        if unit in c_at:
            c_at[helper] = c_at[unit]
    for path, i in sorted(c_at.items()):
        texts.append((path, i, c_strings(path)))

    bad = []
    for f, i, text in texts:
        seen = set()
        for m in CALL.finditer(text):
            n = m.group(1)
            if n in seen or n not in where or where[n] <= i:
                continue
            seen.add(n)
            if (f, n) in EXCEPTIONS:
                continue
            bad.append('%s%s calls evcharge.%s, declared later in %s'
                       % (f, '' if f == files[i] else ' (loaded as %s)' % files[i], n, files[where[n]]))
    for (f, n), why in EXCEPTIONS.items():
        if f not in c_at and f not in files:
            bad.append('exception for %s calling %s names no file of the build' % (f, n))
    if bad:
        for b in bad:
            print('sql_order: ' + b, file=sys.stderr)
        print('sql_order: each file calls only what stands before it in INSTALL_SQL (Makefile): '
              'move the callee earlier or the caller later', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
