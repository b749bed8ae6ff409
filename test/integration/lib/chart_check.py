#!/usr/bin/env python3
# test/integration/lib/chart_check.py: reads an evidence chart (an SVG of
# session_chart or driver_chart) part by part, for chart_render.sh.
#
#   chart_check.py facts CHART.svg
#       prints what the chart holds, one fact a line: "group ID", "text
#       GROUP TEXT", "polyline CLASS N" (N points), "label-box N"
#   chart_check.py layout CHART.svg
#       renders every text on its own with rsvg-convert (the same style
#       sheet, cropped around it), finds the box its ink covers, and checks:
#       every text's ink inside the viewBox; no two texts' ink overlapping;
#       every label's ink inside its label box; no label box crossing a
#       curve (the polylines and the pile's claim) or another label box,
#       nor leaving the plot.  Prints "ok NAME" or "not ok NAME: why" per
#       check, and "# ..." lines with what it measured.
#
# The ink is measured, not estimated: whatever the chart thought a text's
# width was, the renderer's glyphs are what a reader sees.
import os
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib

SVG = 'http://www.w3.org/2000/svg'
NS = '{%s}' % SVG
ET.register_namespace('', SVG)


def walk(node, group=None):
    """Yields (element, id of the innermost <g> around it)."""
    for child in node:
        if child.tag == NS + 'g':
            yield from walk(child, child.get('id'))
        else:
            yield child, group


def text_of(e):
    return ''.join(e.itertext())


def png_alpha_box(path, threshold=32):
    """The box (x0, y0, x1, y1, exclusive) of the pixels whose alpha is at
    least threshold in an 8-bit RGBA PNG, or None when there is none."""
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    pos, idat = 8, b''
    while pos < len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b'IHDR':
            width, height, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT':
            idat += body
        pos += 12 + length
    assert depth == 8 and ctype == 6 and interlace == 0, (depth, ctype, interlace)
    raw = zlib.decompress(idat)
    stride = width * 4
    prev = bytearray(stride)
    box = None
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(4, stride):
                line[i] = (line[i] + line[i - 4]) & 255
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride):
                a = line[i - 4] if i >= 4 else 0
                line[i] = (line[i] + (a + prev[i]) // 2) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - 4] if i >= 4 else 0
                b = prev[i]
                c = prev[i - 4] if i >= 4 else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        xs = [x for x in range(width) if line[x * 4 + 3] >= threshold]
        if xs:
            if box is None:
                box = [xs[0], y, xs[-1] + 1, y + 1]
            else:
                box = [min(box[0], xs[0]), box[1], max(box[2], xs[-1] + 1), y + 1]
        prev = line
    return box


def ink_box(style, e, work):
    """Renders the text element e alone and returns the box of its ink in
    the chart's coordinates (x0, y0, x1, y1)."""
    x, y = float(e.get('x')), float(e.get('y'))
    reach = 40 + 20 * len(text_of(e))
    anchor = e.get('text-anchor', 'start')
    left = {'start': 20, 'middle': reach / 2 + 20, 'end': reach}[anchor]
    right = {'start': reach, 'middle': reach / 2 + 20, 'end': 20}[anchor]
    rx, ry, rw, rh = int(x - left), int(y - 40), int(left + right), 60
    doc = ('<svg xmlns="%s" version="1.1" width="%d" height="%d" viewBox="%d %d %d %d">%s%s</svg>'
           % (SVG, rw, rh, rx, ry, rw, rh, ET.tostring(style, encoding='unicode'), ET.tostring(e, encoding='unicode')))
    src, out = os.path.join(work, 'one.svg'), os.path.join(work, 'one.png')
    with open(src, 'w', encoding='utf-8') as fh:
        fh.write(doc)
    subprocess.run(['rsvg-convert', '--format=png', '--output=' + out, src], check=True)
    box = png_alpha_box(out)
    if box is None:
        return None
    if box[0] == 0 or box[2] == rw or box[1] == 0 or box[3] == rh:
        raise SystemExit('text %r reaches the edge of its crop: widen the crop' % text_of(e))
    return (rx + box[0], ry + box[1], rx + box[2], ry + box[3])


def overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def inside(a, b):
    return a[0] >= b[0] and a[1] >= b[1] and a[2] <= b[2] and a[3] <= b[3]


def segment_hits_box(p, q, box, margin):
    """Whether the segment p-q (a stroke margin px wide on each side)
    crosses the box."""
    x0, y0, x1, y1 = box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin
    (ax, ay), (bx, by) = p, q
    if max(ax, bx) < x0 or min(ax, bx) > x1 or max(ay, by) < y0 or min(ay, by) > y1:
        return False
    if ax == bx:
        return True
    cx0, cx1 = max(min(ax, bx), x0), min(max(ax, bx), x1)
    ya = ay + (by - ay) * (cx0 - ax) / (bx - ax)
    yb = ay + (by - ay) * (cx1 - ax) / (bx - ax)
    return max(ya, yb) >= y0 and min(ya, yb) <= y1


def main():
    mode, path = sys.argv[1], sys.argv[2]
    root = ET.parse(path).getroot()
    vb = [float(v) for v in root.get('viewBox').split()]
    view = (vb[0], vb[1], vb[0] + vb[2], vb[1] + vb[3])
    elements = list(walk(root))
    texts = [(e, g) for e, g in elements if e.tag == NS + 'text']
    polylines = [(e.get('class'), [tuple(float(c) for c in pt.split(',')) for pt in e.get('points').split()])
                 for e, g in elements if e.tag == NS + 'polyline' and e.get('points')]
    label_boxes = []
    for e, g in elements:
        if e.tag == NS + 'rect' and e.get('class') == 'label-box':
            x, y, w, h = (float(e.get(k)) for k in ('x', 'y', 'width', 'height'))
            label_boxes.append((x, y, x + w, y + h))
    frame = [e for e, g in elements if e.tag == NS + 'rect' and e.get('class') == 'frame']

    if mode == 'facts':
        for g in root.iter(NS + 'g'):
            print('group', g.get('id'))
        for e, g in texts:
            print('text', g, text_of(e))
        for cls, pts in polylines:
            print('polyline', cls, len(pts))
        print('label-box', len(label_boxes))
        return 0

    style = root.find(NS + 'style')
    failed = 0

    def check(name, problems):
        nonlocal failed
        if problems:
            failed += 1
            print('not ok %s: %s' % (name, '; '.join(problems[:5])))
        else:
            print('ok %s' % name)

    with tempfile.TemporaryDirectory() as work:
        inks = []
        for e, g in texts:
            inks.append((e, g, ink_box(style, e, work)))
    print('# %d texts rendered, %d label boxes, %d polylines' % (len(inks), len(label_boxes), len(polylines)))

    check('every text is inside the viewBox',
          ['%r at %s' % (text_of(e), b) for e, g, b in inks if b and not inside(b, view)])
    problems = []
    for i in range(len(inks)):
        for j in range(i + 1, len(inks)):
            a, b = inks[i][2], inks[j][2]
            if a and b and overlap(a, b):
                problems.append('%r and %r' % (text_of(inks[i][0]), text_of(inks[j][0])))
    check('no two texts overlap', problems)

    # A label is the text drawn right after its label box.
    labels = []
    for idx, (e, g) in enumerate(elements):
        if e.tag == NS + 'rect' and e.get('class') == 'label-box':
            nxt = elements[idx + 1][0]
            x, y, w, h = (float(e.get(k)) for k in ('x', 'y', 'width', 'height'))
            labels.append((nxt, (x, y, x + w, y + h)))
    ink_of = {id(e): b for e, g, b in inks}
    check('every label\'s ink is inside its label box',
          ['%r ink %s box %s' % (text_of(t), ink_of.get(id(t)), box) for t, box in labels
           if ink_of.get(id(t)) is None or not inside(ink_of[id(t)], box)])
    problems = []
    for t, box in labels:
        for cls, pts in polylines:
            if any(segment_hits_box(pts[k], pts[k + 1], box, 1.0) for k in range(len(pts) - 1)):
                problems.append('%r crosses the %s line' % (text_of(t), cls))
    check('no label box crosses a curve or the pile\'s claim', problems)
    problems = []
    for i in range(len(label_boxes)):
        for j in range(i + 1, len(label_boxes)):
            if overlap(label_boxes[i], label_boxes[j]):
                problems.append('%s and %s' % (text_of(labels[i][0]), text_of(labels[j][0])))
    check('no two label boxes overlap', problems)
    # The plot, and above it the strip the moments' dashed lines reach up
    # into, where their labels go.
    if frame:
        x, y, w, h = (float(frame[0].get(k)) for k in ('x', 'y', 'width', 'height'))
        top = min([float(e.get('y1')) for e, g in elements if e.tag == NS + 'line' and e.get('class') == 'mark'] + [y])
        check('every label box is inside the plot or the strip of the moments above it',
              ['%r at %s' % (text_of(t), box) for t, box in labels if not inside(box, (x, top, x + w, y + h))])
    else:
        check('every label box is inside the plot or the strip of the moments above it', ['the chart has no plot frame'])
    return 1 if failed else 0


sys.exit(main())
