"""HTML renderer of report sections: one self-contained page (figures as data URIs, an
offline 3D viewer in plain JavaScript; nothing is fetched from anywhere)."""

from __future__ import annotations

import base64
import html
import json
import re

import numpy as np

from airss_msc.analysis.report.document import Bullets, Code, Image, Section, Structure, Table, Text
from airss_msc.analysis.report.figures import DRAWN_BOND_FACTOR, color
from airss_msc.generation.geometry import bonds, radius

_VIEWER_JS = """
function drawCluster(canvas, mol) {
  const ctx = canvas.getContext('2d');
  let rx = 0.3, ry = 0.6, drag = null;
  const c = [0, 0, 0];
  mol.pos.forEach(p => { for (let k = 0; k < 3; k++) c[k] += p[k] / mol.pos.length; });
  const P = mol.pos.map(p => [p[0] - c[0], p[1] - c[1], p[2] - c[2]]);
  const R = Math.max(...P.map(p => Math.hypot(p[0], p[1], p[2]))) + 2;
  function render() {
    const s = Math.min(canvas.width, canvas.height) / (2 * R);
    const cx = Math.cos(rx), sx = Math.sin(rx), cy = Math.cos(ry), sy = Math.sin(ry);
    const Q = P.map(p => { const x = p[0] * cy + p[2] * sy, z0 = -p[0] * sy + p[2] * cy;
                           return [x, p[1] * cx - z0 * sx, p[1] * sx + z0 * cx]; });
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = '#888'; ctx.lineWidth = 2;
    mol.bonds.forEach(([i, j]) => { ctx.beginPath();
      ctx.moveTo(canvas.width / 2 + s * Q[i][0], canvas.height / 2 - s * Q[i][1]);
      ctx.lineTo(canvas.width / 2 + s * Q[j][0], canvas.height / 2 - s * Q[j][1]); ctx.stroke(); });
    Q.map((q, i) => [q, i]).sort((a, b) => a[0][2] - b[0][2]).forEach(([q, i]) => {
      ctx.beginPath(); ctx.fillStyle = mol.colors[i]; ctx.strokeStyle = '#333';
      ctx.arc(canvas.width / 2 + s * q[0], canvas.height / 2 - s * q[1], s * mol.radii[i], 0, 2 * Math.PI);
      ctx.fill(); ctx.stroke(); });
  }
  canvas.addEventListener('mousedown', e => { drag = [e.clientX, e.clientY]; });
  window.addEventListener('mouseup', () => { drag = null; });
  canvas.addEventListener('mousemove', e => { if (!drag) return;
    ry += (e.clientX - drag[0]) * 0.01; rx += (e.clientY - drag[1]) * 0.01;
    drag = [e.clientX, e.clientY]; render(); });
  render();
}
document.querySelectorAll('canvas.cluster').forEach(cv => drawCluster(cv, JSON.parse(cv.dataset.mol)));
document.body.dataset.viewer = 'ok';  // tests read this back from the rendered page
"""

_STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em;line-height:1.4}"
    "table{border-collapse:collapse;font-size:12px;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;vertical-align:top}"
    "th{background:#f3f3f3;font-weight:600;text-align:center}"
    # a table wider than the page scrolls inside its box rather than widening the page
    ".table{overflow-x:auto;max-width:100%}td.text{text-align:left}span.w{white-space:nowrap}"
    "ul.bullets li{margin:0.2em 0}"
    "img{max-width:100%}canvas.cluster{border:1px solid #ddd;cursor:grab}pre{font-size:11px;overflow-x:auto}"
    ".legend span{display:inline-block;margin-right:1em;font-size:12px}"
    ".legend i{display:inline-block;width:12px;height:12px;border:1px solid #333;border-radius:6px;"
    "margin-right:4px;vertical-align:middle}"
)


def viewer_payload(atoms) -> str:
    """Positions, bonds (covalent radii), element colours and radii for the viewer, as JSON."""
    syms = atoms.get_chemical_symbols()
    return json.dumps(
        {
            "pos": np.round(atoms.positions, 3).tolist(),
            "bonds": [list(b) for b in bonds(atoms, DRAWN_BOND_FACTOR)],
            "colors": [color(s) for s in syms],
            "radii": [round(0.35 * radius(s), 3) for s in syms],
        }
    )


def _img(path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _legend(atoms) -> str:
    present = list(dict.fromkeys(atoms.get_chemical_symbols()))
    return (
        "<div class='legend'>"
        + "".join(f"<span><i style='background:{color(s)}'></i>{html.escape(s)}</span>" for s in present)
        + "</div>"
    )


#: A cell that reads as a number (a range, a ± or a note in brackets after it) is right-aligned, text left.
_NUMERIC = re.compile(r"^[-+<]?\d[\d.,:%-]*( ?± ?[\d.]+)?( \([^)]*\))?$")


def _td(value: str) -> str:
    if _NUMERIC.match(value) or value == "-":
        return f"<td>{html.escape(value)}</td>"
    # a line may break between words, never at a word's own hyphen ("GFN2-" / "xTB:1")
    words = " ".join(
        f"<span class='w'>{html.escape(w)}</span>" if "-" in w else html.escape(w) for w in value.split(" ")
    )
    return f"<td class='text'>{words}</td>"


def _block(block) -> str:
    if isinstance(block, Text):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul class='bullets'>" + "".join(f"<li>{html.escape(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        th = "".join(f"<th>{html.escape(h)}</th>" for h in block.head)
        trs = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in block.body)
        return f"<div class='table'><table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table></div>"
    if isinstance(block, Image):
        return f"<div class='fig'>{_img(block.path, block.alt)}</div>"
    if isinstance(block, Structure):
        return (
            f"<h3>{html.escape(block.title)}</h3><canvas class='cluster' width='320' height='320' "
            f"data-mol='{html.escape(viewer_payload(block.atoms))}'></canvas>{_img(block.png, block.title)}"
            f"{_legend(block.atoms)}<p>Coordinates: <a href='{html.escape(block.xyz.name)}'>"
            f"{html.escape(block.xyz.name)}</a> (drag the structure to rotate it)</p>"
        )
    if isinstance(block, Code):
        return f"<pre>{html.escape(block.text)}</pre>"
    raise TypeError(f"no HTML for {type(block).__name__}")


def render(sections: list[Section]) -> str:
    title = sections[0].title if sections else "airss-msc report"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    for section in sections:
        parts.append(f"<h{section.level}>{html.escape(section.title)}</h{section.level}>")
        parts.extend(_block(b) for b in section.blocks)
    parts.append(f"<script>{_VIEWER_JS}</script></body></html>")
    return "\n".join(parts)
