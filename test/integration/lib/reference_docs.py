#!/usr/bin/env python3
"""Checks that every object of the installed extension has its entry in
docs/reference/*.md, and that the relative links of the documentation land.

    reference_docs.py CATALOGUE REPO_ROOT

CATALOGUE has one object a line, fields separated by '|':
    function|NAME              table|NAME|RELKIND|PARENT (PARENT: a partition's table)
    column|TABLE|NAME          type|NAME|TYPTYPE
    attribute|TYPE|NAME        label|TYPE|LABEL
    sequence|NAME              setting|NAME            job|NAME

Prints one line per kind of object, "KIND|CHECKED|MISSING ..." (the missing
ones separated by spaces), and a last line "links|CHECKED|BAD ...".

What counts as an entry (docs/reference/README.md says the same for writers):
- a function NAME: a heading naming it in backticks (`NAME`, `NAME(...)`,
  `evcharge.NAME...`), a table row whose first cell holds `NAME(...)`, a
  line of a code block starting with evcharge.NAME( (a signature), or a line
  starting with `NAME(...)`;
- a table, view or composite type: a heading naming it in backticks, and in
  the section under such a heading a column table (a Markdown table whose
  header starts with "column", "field" or "attribute" and has a "type"
  cell) whose first cells name every column (or attribute) in backticks; a
  partition needs the heading only (its columns are its table's);
- a base type: a heading naming it in backticks;
- an enum type: a heading naming it, with every label in backticks in its
  section;
- a sequence, setting or job: a heading naming it in backticks, or a table
  row whose first cell does.
"""
import os
import re
import sys

TOKEN = re.compile(r'`([^`]+)`')
HEADING = re.compile(r'^(#{1,6})\s+(.*)$')
LINK = re.compile(r'\]\(([^)\s]+)\)')


def slug(heading):
    """GitHub's anchor for a heading."""
    s = heading.strip().lower()
    s = re.sub(r'[^\w\- ]', '', s)
    return s.replace(' ', '-')


class Page:
    def __init__(self, path):
        self.path = path
        self.lines = open(path, encoding='utf-8').read().split('\n')
        self.fenced = []
        fence = ''  # the opening fence while inside a code block
        for line in self.lines:
            m = re.match(r'^\s*(`{3,})', line)
            if m and not fence:
                fence = m.group(1)
                self.fenced.append(True)
            elif fence and line.strip() == fence:
                fence = ''
                self.fenced.append(True)
            else:
                self.fenced.append(bool(fence))
        self.headings = []  # (line index, level, text)
        for i, line in enumerate(self.lines):
            m = HEADING.match(line)
            if m and not self.fenced[i]:
                self.headings.append((i, len(m.group(1)), m.group(2)))
        self.anchors = set()
        seen = {}
        for _, _, text in self.headings:
            a = slug(text)
            n = seen.get(a, 0)
            seen[a] = n + 1
            self.anchors.add(a if n == 0 else '%s-%d' % (a, n))

    def sections(self, names):
        """(start, end) of each section whose heading names one of names."""
        out = []
        for k, (i, level, text) in enumerate(self.headings):
            if not names & set(TOKEN.findall(text)):
                continue
            end = len(self.lines)
            for j, lv, _ in self.headings[k + 1:]:
                if lv <= level:
                    end = j
                    break
            out.append((i, end))
        return out

    def column_tables(self, start, end):
        """The names in the first cells of the column tables of a range."""
        names = set()
        i = start
        while i < end:
            line = self.lines[i].strip()
            if not self.fenced[i] and line.startswith('|'):
                cells = [c.strip().lower() for c in line.strip('|').split('|')]
                is_column_table = cells and cells[0] in ('column', 'field', 'attribute') and 'type' in cells
                i += 1
                while i < end and self.lines[i].strip().startswith('|'):
                    row = self.lines[i].strip().strip('|').split('|')
                    if is_column_table and not re.match(r'^[\s:-]+$', row[0]):
                        names |= set(TOKEN.findall(row[0]))
                    i += 1
                continue
            i += 1
        return names

    def table_rows_first_cells(self):
        for i, line in enumerate(self.lines):
            s = line.strip()
            if s.startswith('|') and not self.fenced[i]:
                yield s.strip('|').split('|')[0]


def names_of(name):
    return {name, 'evcharge.' + name}


def function_documented(pages, f):
    call = (f + '(', 'evcharge.' + f + '(')
    for p in pages:
        for _, _, text in p.headings:
            for t in TOKEN.findall(text):
                if t in names_of(f) or t.startswith(call):
                    return True
        for cell in p.table_rows_first_cells():
            if any(t.startswith(call) for t in TOKEN.findall(cell)):
                return True
        for i, line in enumerate(p.lines):
            s = line.lstrip()
            if p.fenced[i] and s.startswith('evcharge.' + f + '('):
                return True
            if not p.fenced[i] and (s.startswith('`' + call[0]) or s.startswith('`' + call[1])):
                return True
    return False


def has_section(pages, name):
    return any(p.sections(names_of(name)) for p in pages)


def named_entry(pages, name):
    for p in pages:
        if p.sections(names_of(name)):
            return True
        for cell in p.table_rows_first_cells():
            if names_of(name) & set(TOKEN.findall(cell)):
                return True
    return False


def columns_documented(pages, name, columns):
    """The columns that no column table of the object's sections names."""
    found = set()
    for p in pages:
        for start, end in p.sections(names_of(name)):
            found |= p.column_tables(start, end)
    return [c for c in columns if c not in found]


def labels_documented(pages, name, labels):
    found = set()
    for p in pages:
        for start, end in p.sections(names_of(name)):
            for line in p.lines[start:end]:
                found |= set(TOKEN.findall(line))
    return [label for label in labels if label not in found]


def check_links(root):
    """Relative links of README.md and docs/**/*.md: the file exists and,
    for a Markdown target, so does the anchor."""
    files = [os.path.join(root, 'README.md')]
    for d, _, fs in os.walk(os.path.join(root, 'docs')):
        files += [os.path.join(d, f) for f in fs if f.endswith('.md')]
    pages = {}
    bad = []
    checked = 0
    for path in sorted(files):
        page = pages.setdefault(path, Page(path))
        for i, line in enumerate(page.lines):
            if page.fenced[i]:
                continue
            for target in LINK.findall(line):
                if re.match(r'^[a-z]+:', target):
                    continue
                checked += 1
                file, _, anchor = target.partition('#')
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
                where = '%s:%d:%s' % (os.path.relpath(path, root), i + 1, target)
                if not os.path.exists(dest):
                    bad.append(where)
                    continue
                if anchor and dest.endswith('.md'):
                    if anchor not in pages.setdefault(dest, Page(dest)).anchors:
                        bad.append(where)
    return checked, bad


def main():
    catalogue, root = sys.argv[1], sys.argv[2]
    refdir = os.path.join(root, 'docs', 'reference')
    pages = [Page(os.path.join(refdir, f)) for f in sorted(os.listdir(refdir)) if f.endswith('.md')]

    objects = {}
    columns = {}
    relkind = {}
    parent = {}
    typtype = {}
    for line in open(catalogue, encoding='utf-8'):
        f = line.rstrip('\n').split('|')
        if len(f) < 2:
            continue
        kind = f[0]
        if kind in ('column', 'attribute', 'label'):
            columns.setdefault(f[1], []).append(f[2])
            continue
        objects.setdefault(kind, set()).add(f[1])
        if kind == 'table':
            relkind[f[1]] = f[2]
            if len(f) > 3 and f[3]:
                parent[f[1]] = f[3]
        if kind == 'type':
            typtype[f[1]] = f[2]

    out = []
    fns = sorted(objects.get('function', ()))
    out.append(('functions', len(fns), [f for f in fns if not function_documented(pages, f)]))

    rels = sorted(objects.get('table', ()))
    tables = [t for t in rels if relkind[t] in ('r', 'p')]
    views = [t for t in rels if relkind[t] in ('v', 'm')]
    for label, group in (('tables', tables), ('views', views)):
        out.append((label, len(group), [t for t in group if not has_section(pages, t)]))
    for label, group in (('table columns', tables), ('view columns', views)):
        missing = []
        n = 0
        for t in group:
            if t in parent:
                continue
            cols = columns.get(t, [])
            n += len(cols)
            missing += ['%s.%s' % (t, c) for c in columns_documented(pages, t, cols)]
        out.append((label, n, missing))

    types = sorted(objects.get('type', ()))
    missing = []
    n = len(types)
    for t in types:
        if not has_section(pages, t):
            missing.append(t)
        elif typtype[t] == 'c':
            cols = columns.get(t, [])
            n += len(cols)
            missing += ['%s.%s' % (t, c) for c in columns_documented(pages, t, cols)]
        elif typtype[t] == 'e':
            labels = columns.get(t, [])
            n += len(labels)
            missing += ['%s.%s' % (t, c) for c in labels_documented(pages, t, labels)]
    out.append(('types', n, missing))

    for kind, label in (('sequence', 'sequences'), ('setting', 'settings'), ('job', 'jobs')):
        group = sorted(objects.get(kind, ()))
        out.append((label, len(group), [x for x in group if not named_entry(pages, x)]))

    checked, bad = check_links(root)
    out.append(('links', checked, bad))
    for label, n, missing in out:
        print('%s|%d|%s' % (label, n, ' '.join(missing)))


main()
