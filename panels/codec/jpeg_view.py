"""HTML summary of an opened JPEG for the Codec panel: header facts, IJG quality verdict, every
quantisation table in full, Huffman tables and (once decoded) the bit accounting."""

from __future__ import annotations

__all__ = ["jpeg_info_html"]


def _table_html(table) -> str:
    rows = "".join("<tr>" + "".join(f"<td align='right'>&nbsp;{v}</td>" for v in row) + "</tr>" for row in table)
    return f"<table cellspacing='0' cellpadding='1' style='font-family: monospace; font-size: 9pt'>{rows}</table>"


def jpeg_info_html(info: dict, internals=None) -> str:
    """Rich text for ``inspect_jpeg`` output ``info`` and optional ``JpegInternals``."""
    eoi = "EOI present" if info["eoi"] else "<b>EOI MISSING</b>"
    rst = f"restart interval {info['restart_interval']} MCUs" if info["restart_interval"] else "no restart interval"
    verdict = info["quality_note"] if info["ijg_tables"] else f"<b>{info['quality_note']}</b>"
    parts = [
        f"<br><b>JPEG</b> {info['process']}, {info['precision']}-bit, {info['subsampling']}, components "
        + ", ".join(f"{c[0]}:{c[1]}×{c[2]}→Q{c[3]}" for c in info["components"])
        + f"<br>{info['scans']} scan(s), {rst}, {eoi}<br>IJG quality: {verdict}",
    ]
    if internals is not None:
        s = internals.summary()
        parts.append(
            f"<br>our entropy decoder: {s['block_bits']:,} bits in blocks + {s['padding_bits']} padding bits + "
            f"{s['stuffed_bytes']:,} stuffed bytes + {s['header_and_marker_bytes']:,} header/marker bytes = {s['bytes']:,} bytes"
            + (f"; {s['restart_markers']} RST markers" if s["restart_markers"] else "")
        )
    else:
        parts.append("<br><i>decoding the blocks…</i>")
    tables = "".join(
        f"<td valign='top'>Q{tid} ({info['quantization_precision'].get(tid, 8)}-bit)<br>{_table_html(t)}</td>" for tid, t in info["quantization"].items()
    )
    parts.append(f"<br><table><tr>{tables}</tr></table>")
    huff = ", ".join(f"{h['class']}{h['id']} ({h['symbols']} symbols)" for h in info["huffman_tables"])
    parts.append(f"Huffman tables: {huff}<br>markers: {' '.join(info['markers'][:40])}{' …' if len(info['markers']) > 40 else ''}")
    return "".join(parts)
