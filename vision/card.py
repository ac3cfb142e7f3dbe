"""Find an ID card in a phone photo, rectify it, and tell its side and orientation.

Pipeline (all classical OpenCV, ~10-30 ms on a 12 MP photo because the search runs on a
copy downscaled to ``SEARCH_SIDE`` px):

1. Candidate quadrilaterals from several masks (edges, bright low-saturation paper,
   Otsu on lightness), each contour simplified to four corners.
2. Each candidate is scored by card aspect ratio, support of its sides by image edges,
   and area; the best one wins.
3. Its sides are refined on the full-resolution image: edge points are searched along
   each side's normal and a robust line is fitted per side, so field crops of the
   rectified card land where the layout says (the fast reader depends on it).
4. The card is warped to the canonical 1000 x 631 px and its side (portrait / emblem)
   and 180-degree orientation are decided from where the large non-text masses are:
   the portrait photo on the front, the national emblem on the back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from vision import layout
from vision.layout import Side

Image = npt.NDArray[np.uint8]
Quad = npt.NDArray[np.float32]  # (4, 2): TL, TR, BR, BL in reading orientation

SEARCH_SIDE = 512
REFINE_SIDE = 1600
MIN_AREA_FRACTION = 0.03  # low-resolution captures show a small card


@dataclass(frozen=True, slots=True)
class CardDetection:
    """A card located in a photo.

    ``quad`` holds the card corners in the input image's pixels, ordered TL, TR, BR, BL
    of the card in its reading orientation (after side/rotation were decided).
    """

    quad: Quad
    confidence: float  # 0..1, how card-like the chosen quadrilateral is
    area_fraction: float  # card area / image area
    touches_border: bool  # a corner lies on or outside the frame: card likely cut off
    width_px: float  # mean length of the long sides in the input image


@dataclass(frozen=True, slots=True)
class RectifiedCard:
    """The card warped to the canonical size, upright, with what was decided."""

    image: Image  # (CANONICAL_HEIGHT, CANONICAL_WIDTH, 3) BGR
    side: Side
    side_confidence: float  # 0..1
    rotation: int  # degrees the photo was rotated clockwise relative to the card: 0/90/180/270
    detection: CardDetection | None  # None when the whole image was taken as the card


def _u8(array: object) -> Image:
    """OpenCV returns loosely typed arrays; pin them to uint8 images (no copy)."""
    return np.asarray(array, dtype=np.uint8)


def _order_clockwise(points: npt.NDArray[np.float32]) -> Quad:
    """Order four points clockwise (image coordinates) starting at the top-left-most."""
    pts = [(float(x), float(y)) for x, y in points]
    cx = sum(p[0] for p in pts) / len(pts)
    cy = sum(p[1] for p in pts) / len(pts)
    pts.sort(key=lambda p: math.atan2(p[1] - cy, p[0] - cx))
    start = min(range(len(pts)), key=lambda i: pts[i][0] + pts[i][1])
    return np.array(pts[start:] + pts[:start], dtype=np.float32)


def _long_side_first(quad: Quad) -> Quad:
    """Roll the corners so that the first edge (0->1) is a long side of the card."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = quad.tolist()
    e01 = math.hypot(x0 - x1, y0 - y1) + math.hypot(x2 - x3, y2 - y3)
    e12 = math.hypot(x1 - x2, y1 - y2) + math.hypot(x3 - x0, y3 - y0)
    return quad if e01 >= e12 else np.roll(quad, -1, axis=0)


def _quad_from_contour(contour: npt.NDArray[np.int32]) -> Quad | None:
    peri = cv2.arcLength(contour, True)
    hull = cv2.convexHull(contour)
    for eps in (0.015, 0.025, 0.04, 0.06):
        approx = cv2.approxPolyDP(hull, eps * peri, True)
        if len(approx) == 4:
            return _order_clockwise(approx.reshape(4, 2).astype(np.float32))
    # Rounded corners or a cut-off card: fall back to the minimum-area rectangle when
    # the contour fills it well.
    rect = cv2.minAreaRect(hull)
    box = cv2.boxPoints(rect).astype(np.float32)
    rect_area = rect[1][0] * rect[1][1]
    if rect_area > 0 and cv2.contourArea(hull) / rect_area > 0.85:
        return _order_clockwise(box)
    return None


def _candidate_masks(small: Image) -> list[Image]:
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    blur = cv2.GaussianBlur(gray, (5, 5), 0)
    masks: list[Image] = []

    med = float(np.median(blur))
    edges = _u8(cv2.Canny(blur, int(max(10, 0.5 * med)), int(min(255, 1.2 * med + 30))))
    edges = _u8(cv2.dilate(edges, np.ones((3, 3), np.uint8), iterations=2))
    # Closed regions bounded by edges: fill what the edges enclose.
    masks.append(edges)

    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    sat, val = hsv[:, :, 1], hsv[:, :, 2]
    kernel = np.ones((7, 7), np.uint8)
    for sat_max, val_min in ((60, 150), (90, 120), (40, 185)):
        paper = ((sat < sat_max) & (val > val_min)).astype(np.uint8) * 255
        paper = _u8(cv2.morphologyEx(paper, cv2.MORPH_CLOSE, kernel, iterations=2))
        paper = _u8(cv2.morphologyEx(paper, cv2.MORPH_OPEN, kernel))
        masks.append(paper)
    _, otsu = cv2.threshold(blur, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    masks.append(_u8(cv2.morphologyEx(otsu, cv2.MORPH_CLOSE, kernel, iterations=2)))
    return masks


_SUPPORT_T = np.linspace(0.05, 0.95, 40, dtype=np.float32)


def _edge_support(edge_map: Image, quad: Quad) -> float:
    """How well the quad's sides lie on image edges: mean and weakest side blended.

    Points outside the frame are ignored, so a card cut off by the frame is judged on
    the sides that are visible.
    """
    h, w = edge_map.shape
    a = quad
    b = np.roll(quad, -1, axis=0)
    pts = a[:, None, :] + (b - a)[:, None, :] * _SUPPORT_T[None, :, None]  # (4, T, 2)
    xi = np.round(pts[..., 0]).astype(np.int32)
    yi = np.round(pts[..., 1]).astype(np.int32)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    hits = edge_map[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)] > 0
    counts = inside.sum(axis=1)
    visible = counts >= 8
    if int(visible.sum()) < 2:
        return 0.0
    per_side = (hits & inside).sum(axis=1)[visible] / counts[visible]
    return 0.5 * float(per_side.mean()) + 0.5 * float(per_side.min())


Line = list[float]  # [angle in [0, pi), signed distance rho, supporting length]


def _detect_lines(gray: Image) -> list[Line]:
    """Long straight edges (LSD segments merged when collinear), strongest first.

    Masks fail when the card touches a background of similar colour; the card's
    straight sides still show up as line segments.
    """
    h, w = gray.shape
    lsd = cv2.createLineSegmentDetector()
    found = lsd.detect(gray)[0]
    if found is None:
        return []
    segs = found.reshape(-1, 4).astype(np.float32)
    lengths = np.hypot(segs[:, 2] - segs[:, 0], segs[:, 3] - segs[:, 1])
    segs = segs[lengths >= 0.03 * max(h, w)]
    lengths = lengths[lengths >= 0.03 * max(h, w)]
    lines: list[Line] = []
    for k in np.argsort(-lengths):
        x0, y0, x1, y1 = (float(v) for v in segs[k])
        theta = math.atan2(y1 - y0, x1 - x0) % math.pi
        rho = -x0 * math.sin(theta) + y0 * math.cos(theta)
        for line in lines:
            dtheta = abs(line[0] - theta)
            dtheta = min(dtheta, math.pi - dtheta)
            sn, cs = math.sin(line[0]), math.cos(line[0])
            if (
                dtheta < math.radians(3)
                and abs(-x0 * sn + y0 * cs - line[1]) < 4
                and abs(-x1 * sn + y1 * cs - line[1]) < 4
            ):
                line[2] += float(lengths[k])
                break
        else:
            lines.append([theta, rho, float(lengths[k])])
    lines.sort(key=lambda ln: -ln[2])
    return lines


def _angle_between(a: Line, b: Line) -> float:
    d = abs(a[0] - b[0])
    return min(d, math.pi - d)


def _parallel_pairs(lines: list[Line], w: int, h: int) -> list[tuple[Line, Line]]:
    min_gap = 0.12 * min(h, w)
    return [
        (lines[i], lines[j])
        for i in range(len(lines))
        for j in range(i + 1, len(lines))
        if _angle_between(lines[i], lines[j]) < math.radians(25)
        and _line_distance(lines[i], lines[j], w, h) > min_gap
    ]


def _plausible(corners: list[tuple[float, float] | None], w: int, h: int) -> bool:
    margin = 0.15 * max(h, w)  # corners of a cut-off card may lie outside the frame
    return all(
        p is not None and -margin <= p[0] <= w + margin and -margin <= p[1] <= h + margin
        for p in corners
    )


def _quads_from_lines(lines: list[Line], w: int, h: int) -> list[Quad]:
    """Quadrilaterals formed by two pairs of near-parallel lines."""
    pairs = _parallel_pairs(lines, w, h)
    quads: list[Quad] = []
    for i in range(len(pairs)):
        for j in range(i + 1, len(pairs)):
            (a, b), (c, d) = pairs[i], pairs[j]
            if _angle_between(a, c) < math.radians(50):
                continue
            corners = [_cross(a, c), _cross(c, b), _cross(b, d), _cross(d, a)]
            if _plausible(corners, w, h):
                quads.append(_order_clockwise(np.array(corners, dtype=np.float32)))
    return quads


def _completed_quads(lines: list[Line], edge_map: Image) -> list[tuple[Quad, bool]]:
    """Quads from three visible sides, the fourth placed by the card's aspect ratio.

    For a card cut off by the frame, or with one faint edge (a light card on white
    paper), only three sides are found; the missing one is parallel to its opposite
    side at the distance the 85.6 x 54 mm shape implies (affine approximation; the
    refinement snaps it to a real edge when there is one). Returns ``(quad, weak)``:
    weak when the invented side lies inside the frame without an edge under it (text
    baselines would otherwise complete any sheet of paper into a "card"), and the
    caller then asks for a stronger layout match.
    """
    quads: list[tuple[Quad, bool]] = []
    h, w = edge_map.shape
    for a, b in _parallel_pairs(lines, w, h):
        ua = (math.cos(a[0]), math.sin(a[0]))
        ub = (math.cos(b[0]), math.sin(b[0]))
        if ua[0] * ub[0] + ua[1] * ub[1] < 0:
            ub = (-ub[0], -ub[1])
        for c in lines:
            if c is a or c is b or _angle_between(a, c) < math.radians(50):
                continue
            p1, p2 = _cross(a, c), _cross(b, c)
            if p1 is None or p2 is None:
                continue
            across = math.hypot(p1[0] - p2[0], p1[1] - p2[1])
            for length in (across * layout.CARD_ASPECT, across / layout.CARD_ASPECT):
                for sign in (1.0, -1.0):
                    p4 = (p1[0] + sign * length * ua[0], p1[1] + sign * length * ua[1])
                    p3 = (p2[0] + sign * length * ub[0], p2[1] + sign * length * ub[1])
                    corners: list[tuple[float, float] | None] = [p1, p4, p3, p2]
                    if _plausible(corners, w, h):
                        quad = _order_clockwise(np.array(corners, dtype=np.float32))
                        quads.append((quad, not _invented_side_ok(p4, p3, edge_map)))
    return quads


def _invented_side_ok(a: tuple[float, float], b: tuple[float, float], edge_map: Image) -> bool:
    h, w = edge_map.shape
    t = _SUPPORT_T
    xs = np.round(a[0] + (b[0] - a[0]) * t).astype(np.int32)
    ys = np.round(a[1] + (b[1] - a[1]) * t).astype(np.int32)
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    if inside.mean() <= 0.4:
        return True
    hits = edge_map[ys[inside], xs[inside]] > 0
    return float(hits.mean()) >= 0.5


def _shoelace(points: list[tuple[float, float]]) -> float:
    """Area of a polygon given in order (either direction)."""
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        area += x0 * y1 - x1 * y0
    return abs(area) / 2


def _line_distance(a: Line, b: Line, w: int, h: int) -> float:
    """Distance between two near-parallel lines, measured at the frame centre."""
    cx, cy = w / 2, h / 2
    da = cx * -np.sin(a[0]) + cy * np.cos(a[0]) - a[1]
    db = cx * -np.sin(b[0]) + cy * np.cos(b[0]) - b[1]
    # Normals may point opposite ways for angles near 0 / pi.
    same = np.cos(a[0] - b[0]) > 0
    return float(abs(da - db) if same else abs(da + db))


def _cross(a: Line, b: Line) -> tuple[float, float] | None:
    na = (-np.sin(a[0]), np.cos(a[0]))
    nb = (-np.sin(b[0]), np.cos(b[0]))
    det = na[0] * nb[1] - na[1] * nb[0]
    if abs(det) < 1e-6:
        return None
    x = (a[1] * nb[1] - na[1] * b[1]) / det
    y = (na[0] * b[1] - a[1] * nb[0]) / det
    return float(x), float(y)


Vec3 = tuple[float, float, float]


def _triple(a: Vec3, b: Vec3, c: Vec3) -> float:
    """(a x b) . c on plain floats (numpy is slow for 3-vectors)."""
    return (
        (a[1] * b[2] - a[2] * b[1]) * c[0]
        + (a[2] * b[0] - a[0] * b[2]) * c[1]
        + (a[0] * b[1] - a[1] * b[0]) * c[2]
    )


def _rectified_aspect(quad: Quad, center: tuple[float, float] | None = None) -> float:
    """Long/short side ratio of the physical rectangle seen as ``quad``.

    Perspective shortens far sides, so side lengths mislead at 30 degrees of tilt. With
    square pixels and the principal point at the image centre, the rectangle's true
    aspect follows from the quad alone (Zhang & He, "Whiteboard scanning", 2007).
    Falls back to side lengths when the view is too close to fronto-parallel.
    """
    q = [(float(x), float(y)) for x, y in _long_side_first(quad)]

    def dist(a: tuple[float, float], b: tuple[float, float]) -> float:
        return math.hypot(a[0] - b[0], a[1] - b[1])

    long_side = (dist(q[0], q[1]) + dist(q[2], q[3])) / 2
    short_side = (dist(q[1], q[2]) + dist(q[3], q[0])) / 2
    naive = long_side / max(short_side, 1e-6)
    if center is None:
        return naive
    cx, cy = center
    m1, m2, m4, m3 = ((x - cx, y - cy, 1.0) for x, y in q)  # TL, TR, BR, BL
    d2 = _triple(m2, m4, m3)
    d3 = _triple(m3, m4, m2)
    if abs(d2) < 1e-12 or abs(d3) < 1e-12:
        return naive
    k2 = _triple(m1, m4, m3) / d2
    k3 = _triple(m1, m4, m2) / d3
    n2 = (k2 * m2[0] - m1[0], k2 * m2[1] - m1[1], k2 - 1.0)
    n3 = (k3 * m3[0] - m1[0], k3 * m3[1] - m1[1], k3 - 1.0)
    denom = n2[2] * n3[2]
    if abs(denom) < 1e-9:
        return naive
    f2 = -(n2[0] * n3[0] + n2[1] * n3[1]) / denom
    if not math.isfinite(f2) or f2 <= 0:
        return naive
    w2 = (n2[0] ** 2 + n2[1] ** 2) / f2 + n2[2] ** 2
    h2 = (n3[0] ** 2 + n3[1] ** 2) / f2 + n3[2] ** 2
    # A focal length far outside phone cameras means the estimate is noise.
    f = math.sqrt(f2)
    diag = 2 * math.hypot(cx, cy)
    if w2 <= 0 or h2 <= 0 or not 0.3 * diag < f < 5 * diag:
        return naive
    return math.sqrt(w2 / h2)


def _aspect_scores(
    q: npt.NDArray[np.float64], center: tuple[float, float]
) -> npt.NDArray[np.float64]:
    """Vectorised card-aspect fit of ``(N, 4, 2)`` quads (see :func:`_rectified_aspect`).

    The perspective-corrected aspect is right for a pinhole view; side lengths are right
    for near-frontal views. Each quad keeps whichever fits a card better, loosely.
    """
    side = np.linalg.norm(q - np.roll(q, -1, axis=1), axis=2)  # (N, 4): 01, 12, 23, 30
    e01 = side[:, 0] + side[:, 2]
    e12 = side[:, 1] + side[:, 3]
    naive = np.maximum(e01, e12) / np.maximum(np.minimum(e01, e12), 1e-6)
    # Long side first, as the aspect formula expects.
    q = np.where((e12 > e01)[:, None, None], np.roll(q, -1, axis=1), q)
    cx, cy = center
    ones = np.ones(q.shape[0])

    def vec(i: int) -> npt.NDArray[np.float64]:
        return np.stack([q[:, i, 0] - cx, q[:, i, 1] - cy, ones], axis=1)

    m1, m2, m4, m3 = vec(0), vec(1), vec(2), vec(3)

    def triple(
        a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], c: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        return np.asarray(np.einsum("ij,ij->i", np.cross(a, b), c), dtype=np.float64)

    with np.errstate(divide="ignore", invalid="ignore"):
        k2 = triple(m1, m4, m3) / triple(m2, m4, m3)
        k3 = triple(m1, m4, m2) / triple(m3, m4, m2)
        n2 = k2[:, None] * m2 - m1
        n3 = k3[:, None] * m3 - m1
        f2 = -(n2[:, 0] * n3[:, 0] + n2[:, 1] * n3[:, 1]) / (n2[:, 2] * n3[:, 2])
        w2 = (n2[:, 0] ** 2 + n2[:, 1] ** 2) / f2 + n2[:, 2] ** 2
        h2 = (n3[:, 0] ** 2 + n3[:, 1] ** 2) / f2 + n3[:, 2] ** 2
        zhang = np.sqrt(w2 / h2)
        diag = 2 * float(np.hypot(cx, cy))
        f = np.sqrt(f2)
        # A focal length far outside phone cameras means the estimate is noise.
        ok = np.isfinite(zhang) & (f2 > 0) & (w2 > 0) & (h2 > 0) & (f > 0.3 * diag) & (f < 5 * diag)
        zhang = np.where(ok, zhang, naive)

    def fit(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(
            np.exp(-(np.log(a / layout.CARD_ASPECT) ** 2) / (2 * 0.25**2)), dtype=np.float64
        )

    return np.maximum(fit(naive), fit(zhang))


def _edge_supports(edge_map: Image, q: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Vectorised :func:`_edge_support` over ``(N, 4, 2)`` quads."""
    h, w = edge_map.shape
    b = np.roll(q, -1, axis=1)
    t = _SUPPORT_T.astype(np.float64)[None, None, :, None]
    pts = q[:, :, None, :] + (b - q)[:, :, None, :] * t  # (N, 4, T, 2)
    xi = np.round(pts[..., 0]).astype(np.int32)
    yi = np.round(pts[..., 1]).astype(np.int32)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    hits = (edge_map[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)] > 0) & inside
    counts = inside.sum(axis=2)
    visible = counts >= 8
    per_side = hits.sum(axis=2) / np.maximum(counts, 1)
    n_visible = visible.sum(axis=1)
    mean = np.where(visible, per_side, 0.0).sum(axis=1) / np.maximum(n_visible, 1)
    low = np.where(visible, per_side, np.inf).min(axis=1)
    return np.where(n_visible >= 2, 0.5 * mean + 0.5 * low, 0.0)


def _score_many(quads: list[Quad], edge_map: Image, frame_area: float) -> list[float]:
    """Geometric card-likeness of each quad: area, convexity, aspect, edge support."""
    if not quads:
        return []
    h, w = edge_map.shape
    q = np.stack(quads).astype(np.float64)
    x, y = q[:, :, 0], q[:, :, 1]
    xn, yn = np.roll(x, -1, axis=1), np.roll(y, -1, axis=1)
    frac = np.abs((x * yn - xn * y).sum(axis=1)) / 2 / frame_area
    ex, ey = xn - x, yn - y
    turns = ex * np.roll(ey, -1, axis=1) - ey * np.roll(ex, -1, axis=1)
    convex = (turns > 0).all(axis=1) | (turns < 0).all(axis=1)
    aspect = _aspect_scores(q, ((w - 1) / 2, (h - 1) / 2))
    keep = (frac >= MIN_AREA_FRACTION) & (frac <= 0.995) & convex & (aspect >= 0.2)
    scores = np.zeros(len(quads))
    if keep.any():
        support = _edge_supports(edge_map, q[keep])
        scores[keep] = (
            aspect[keep] * (0.2 + 0.8 * support) * (0.6 + 0.4 * np.minimum(1.0, frac[keep] / 0.5))
        )
    return [float(v) for v in scores]


def find_card(image: Image) -> CardDetection | None:
    """Locate the card in a BGR photo; ``None`` when nothing card-like is found.

    The returned quad is ordered with a long side first but its 180-degree orientation
    is not yet known; :func:`rectify_card` decides it.
    """
    h, w = image.shape[:2]
    # Halving with pyrDown is 3x cheaper than one INTER_AREA resize of a 12 MP photo.
    work = image
    while max(work.shape[:2]) > 2 * REFINE_SIDE:
        work = _u8(cv2.pyrDown(work))
    wscale = work.shape[1] / w
    scale = SEARCH_SIDE / max(h, w)
    shrunk = work
    while max(shrunk.shape[:2]) >= 2 * SEARCH_SIDE:
        shrunk = _u8(cv2.pyrDown(shrunk))
    small = _u8(
        cv2.resize(shrunk, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    )
    sh, sw = small.shape[:2]
    frame_area = float(sh * sw)
    gray = _u8(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    # Low thresholds: a light card on white paper has faint borders.
    edge_map = _u8(cv2.Canny(cv2.GaussianBlur(gray, (3, 3), 0), 20, 60))
    edge_map = _u8(cv2.dilate(edge_map, np.ones((3, 3), np.uint8)))

    mask_quads: list[Quad] = []
    for mask in _candidate_masks(small):
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        for contour in contours:
            if cv2.contourArea(contour) < MIN_AREA_FRACTION * frame_area:
                continue
            found = _quad_from_contour(np.asarray(contour, dtype=np.int32))
            if found is not None:
                mask_quads.append(found)
    mask_candidates = list(
        zip(_score_many(mask_quads, edge_map, frame_area), mask_quads, strict=True)
    )
    # Geometry narrows the field; the printed layout decides: sheets of paper, boxes
    # and screens are card-shaped too, but only a card carries the card's layout.
    # Each source gets its own quota so that one (a screen's many straight lines)
    # cannot crowd out the other.
    tolerance = 0.04 * max(sh, sw)
    best: tuple[float, Quad] | None = None
    checked: set[tuple[int, ...]] = set()
    # A small card among long clutter lines needs more lines: retry only when needed.
    lines = _detect_lines(gray)
    weak: list[Quad] = []

    def first_pass() -> list[Quad]:
        return _quads_from_lines(lines[:14], sw, sh)

    def second_pass() -> list[Quad]:
        completed = _completed_quads(lines[:10], edge_map)
        weak.extend(q for q, is_weak in completed if is_weak)
        return _quads_from_lines(lines[:26], sw, sh) + [q for q, _ in completed]

    for make_quads in (first_pass, second_pass):
        quads = make_quads()
        line_candidates = list(zip(_score_many(quads, edge_map, frame_area), quads, strict=True))
        distinct = _distinct(line_candidates, tolerance)
        if not checked:
            distinct += _distinct(mask_candidates, tolerance)
        for geo, quad in distinct:
            key = tuple(np.round(quad).astype(np.int32).ravel().tolist())
            if key in checked:
                continue
            checked.add(key)
            content = _layout_match(_warp_small(small, quad))[0]
            total = float(np.sqrt(geo)) * max(0.0, content)
            if any(q is quad for q in weak):
                total *= WEAK_COMPLETION_PENALTY
            if best is None or total > best[0]:
                best = (total, quad)
        if best is not None and best[0] >= MIN_CARD_SCORE:
            break
    # A scan or tight crop has no card border to find: the whole frame is the card.
    full = np.array([[0, 0], [sw - 1, 0], [sw - 1, sh - 1], [0, sh - 1]], dtype=np.float32)
    full_aspect = _rectified_aspect(full)
    aspect_fit = float(np.exp(-(np.log(full_aspect / layout.CARD_ASPECT) ** 2) / (2 * 0.08**2)))
    if aspect_fit > 0.3:
        full_total = aspect_fit * max(0.0, _layout_match(_warp_small(small, full))[0])
        if best is None or full_total >= best[0]:
            return None
    if best is None or best[0] < MIN_CARD_SCORE:
        return None
    score, quad_small = best
    quad = _long_side_first(quad_small / scale)
    # Refine at <= 2 x REFINE_SIDE px: precise enough for the layout crops and bounded
    # in cost on 12 MP photos.
    quad = _refine_quad(work, quad * wscale) / wscale
    margin = 2.0
    touches = bool(
        (quad[:, 0] <= margin).any()
        or (quad[:, 1] <= margin).any()
        or (quad[:, 0] >= w - 1 - margin).any()
        or (quad[:, 1] >= h - 1 - margin).any()
    )
    width_px = float((np.linalg.norm(quad[0] - quad[1]) + np.linalg.norm(quad[2] - quad[3])) / 2)
    return CardDetection(
        quad=quad,
        confidence=float(min(1.0, score)),
        area_fraction=float(cv2.contourArea(quad)) / float(h * w),
        touches_border=touches,
        width_px=width_px,
    )


def _distinct(candidates: list[tuple[float, Quad]], tolerance: float) -> list[tuple[float, Quad]]:
    """The best-scoring candidates, skipping near-duplicates of better ones."""
    out: list[tuple[float, Quad]] = []
    kept = np.zeros((0, 4, 4, 2), dtype=np.float32)  # every cyclic order of kept quads
    for geo, quad in sorted(candidates, key=lambda c: -c[0]):
        if geo <= 0.02:
            break
        if len(out) and float(np.abs(kept - quad[None, None]).max(axis=(2, 3)).min()) <= tolerance:
            continue
        out.append((geo, quad))
        rolls = np.stack([np.roll(quad, k, axis=0) for k in range(4)])
        kept = np.concatenate([kept, rolls[None]])
        if len(out) == CONTENT_CHECKS:
            break
    return out


def _corner_distance(a: Quad, b: Quad) -> float:
    """Largest corner displacement between two quads, over the cyclic orderings."""
    return min(float(np.abs(np.roll(a, k, axis=0) - b).max()) for k in range(4))


# --- the printed layout as a template ---------------------------------------------------
GRID_W, GRID_H = 32, 20
CONTENT_CHECKS = 16
MIN_CARD_SCORE = 0.2
WEAK_COMPLETION_PENALTY = 0.7


def _template(regions: list[tuple[layout.Region, float]]) -> npt.NDArray[np.float32]:
    t = np.zeros((GRID_H, GRID_W), dtype=np.float32)
    for region, weight in regions:
        x0, y0, x1, y1 = (
            region.x0 * GRID_W,
            region.y0 * GRID_H,
            region.x1 * GRID_W,
            region.y1 * GRID_H,
        )
        for gy in range(GRID_H):
            oy = max(0.0, min(gy + 1, y1) - max(gy, y0))
            for gx in range(GRID_W):
                ox = max(0.0, min(gx + 1, x1) - max(gx, x0))
                t[gy, gx] = max(t[gy, gx], weight * ox * oy)
    return t


def _front_template() -> npt.NDArray[np.float32]:
    regions = [(r, 0.8) for r in layout.FRONT_LABELS.values()]
    for name, r in layout.FRONT_VALUES.items():
        # Values are left-aligned and of varying length: expect ink at their start.
        extent = 0.9 if name in ("id_number", "address") else 0.45
        regions.append((layout.Region(r.x0, r.y0, r.x0 + (r.x1 - r.x0) * extent, r.y1), 0.7))
    regions.append((layout.PORTRAIT_PHOTO, 1.0))
    return _template(regions)


def _back_template() -> npt.NDArray[np.float32]:
    regions = [(layout.EMBLEM, 1.0), (layout.BACK_TITLE, 0.9)]
    regions += [(r, 0.8) for r in layout.BACK_LABELS.values()]
    regions += [
        (layout.Region(r.x0, r.y0, r.x0 + (r.x1 - r.x0) * 0.7, r.y1), 0.7)
        for r in layout.BACK_VALUES.values()
    ]
    return _template(regions)


def _normalised(t: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    v = t - t.mean()
    return np.asarray(v / max(float(np.linalg.norm(v)), 1e-6), dtype=np.float32)


_FRONT = _normalised(_front_template())
_BACK = _normalised(_back_template())
_HYPOTHESES: tuple[tuple[Side, bool, npt.NDArray[np.float32]], ...] = (
    (Side.PORTRAIT, False, _FRONT),
    (Side.PORTRAIT, True, np.ascontiguousarray(_FRONT[::-1, ::-1])),
    (Side.EMBLEM, False, _BACK),
    (Side.EMBLEM, True, np.ascontiguousarray(_BACK[::-1, ::-1])),
)


def _warp_small(image: Image, quad: Quad) -> Image:
    """Warp ``quad`` of ``image`` to a tiny canonical card (4 px per template cell)."""
    w, h = GRID_W * 4, GRID_H * 4
    q = _long_side_first(quad)
    dst = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(q.astype(np.float32), dst)
    return _u8(cv2.warpPerspective(image, m, (w, h), flags=cv2.INTER_AREA))


def _ink_density(card: Image) -> npt.NDArray[np.float32]:
    """Share of dark (ink, photo, emblem) pixels per template cell."""
    size = (GRID_W * 4, GRID_H * 4)
    small = (
        card
        if card.shape[1::-1] == size
        else _u8(cv2.resize(card, size, interpolation=cv2.INTER_AREA))
    )
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
    # Background from a blurred copy so uneven light and glare do not read as ink.
    background = cv2.dilate(gray, np.ones((9, 9), np.uint8))
    background = cv2.GaussianBlur(background, (0, 0), 4)
    dark = np.clip((background - gray) / 40.0, 0.0, 1.0)
    cells = dark.reshape(GRID_H, 4, GRID_W, 4).mean(axis=(1, 3))
    return np.asarray(cells, dtype=np.float32)


def _layout_match(card: Image) -> tuple[float, Side, bool, float]:
    """Best correlation of the card's ink with a layout hypothesis.

    Returns ``(correlation, side, upside_down, margin_to_runner_up)``.
    """
    observed = _normalised(_ink_density(card))
    scored = sorted(
        ((float((observed * t).sum()), side, flipped) for side, flipped, t in _HYPOTHESES),
        key=lambda r: -r[0],
    )
    best, runner_up = scored[0], scored[1]
    return best[0], best[1], best[2], best[0] - runner_up[0]


def _refine_quad(image: Image, quad: Quad) -> Quad:
    """Snap each side to the strongest nearby edge and re-intersect the four lines."""
    h, w = image.shape[:2]
    diag = float(np.hypot(h, w))
    band = max(4.0, diag * 0.012)
    # Gradients only inside the quad's bounding box (plus the search band).
    bx0 = int(max(0, np.floor(quad[:, 0].min() - band - 2)))
    by0 = int(max(0, np.floor(quad[:, 1].min() - band - 2)))
    bx1 = int(min(w, np.ceil(quad[:, 0].max() + band + 3)))
    by1 = int(min(h, np.ceil(quad[:, 1].max() + band + 3)))
    if bx1 - bx0 < 8 or by1 - by0 < 8:
        return quad
    roi = cv2.cvtColor(image[by0:by1, bx0:bx1], cv2.COLOR_BGR2GRAY)
    roi = cv2.GaussianBlur(roi, (0, 0), 1.0)
    gx = cv2.Sobel(roi, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(roi, cv2.CV_32F, 0, 1, ksize=3)
    rh, rw = roi.shape[:2]
    local = quad - np.array([bx0, by0], dtype=np.float32)
    center = local.mean(axis=0)
    offsets = np.linspace(-band, band, int(2 * band) + 1, dtype=np.float32)
    ts = np.linspace(0.08, 0.92, 48, dtype=np.float32)
    lines: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None] = []
    for i in range(4):
        a, b = local[i], local[(i + 1) % 4]
        d = (b - a) / max(float(np.linalg.norm(b - a)), 1e-6)
        n = np.array([-d[1], d[0]], dtype=np.float32)
        if float(np.dot(center - a, n)) < 0:
            n = -n  # n points into the card
        base = a[None, :] + (b - a)[None, :] * ts[:, None]  # (T, 2)
        samples = base[:, None, :] + offsets[None, :, None] * n[None, None, :]  # (T, K, 2)
        xs = np.round(samples[..., 0]).astype(np.int32)
        ys = np.round(samples[..., 1]).astype(np.int32)
        inside = (xs >= 0) & (xs < rw) & (ys >= 0) & (ys < rh)
        xs, ys = np.clip(xs, 0, rw - 1), np.clip(ys, 0, rh - 1)
        # Gradient along the normal, either polarity (card lighter or darker).
        g = np.abs(gx[ys, xs] * float(n[0]) + gy[ys, xs] * float(n[1])) * inside
        k = np.argmax(g, axis=1)
        rows = np.arange(len(ts))
        strong = g[rows, k] > 8.0
        if int(strong.sum()) < 8:
            lines.append(None)
            continue
        pts = samples[rows[strong], k[strong]].astype(np.float32)
        vx, vy, x0, y0 = cv2.fitLine(pts, cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        lines.append((np.array([x0, y0], np.float32), np.array([vx, vy], np.float32)))

    refined = local.copy()
    for i in range(4):
        prev_line, next_line = lines[(i - 1) % 4], lines[i]
        if prev_line is None or next_line is None:
            continue
        p = _intersect(prev_line, next_line)
        # Accept only small moves: a wild intersection means a side locked onto clutter.
        if p is not None and float(np.linalg.norm(p - local[i])) < band * 2.5:
            refined[i] = p
    return (refined + np.array([bx0, by0], dtype=np.float32)).astype(np.float32)


def _intersect(
    l1: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
    l2: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
) -> npt.NDArray[np.float32] | None:
    (p, r), (q, s) = l1, l2
    denom = float(r[0] * s[1] - r[1] * s[0])
    if abs(denom) < 1e-6:
        return None
    t = float((q[0] - p[0]) * s[1] - (q[1] - p[1]) * s[0]) / denom
    return (p + t * r).astype(np.float32)


def warp(image: Image, quad: Quad) -> Image:
    """Warp the quad (TL, TR, BR, BL) to the canonical card size."""
    w, h = layout.CANONICAL_WIDTH, layout.CANONICAL_HEIGHT
    dst = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    out = cv2.warpPerspective(
        image, m, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(out, dtype=np.uint8)


def _region_mean(mask: npt.NDArray[np.float32], region: layout.Region) -> float:
    h, w = mask.shape
    x0, y0, x1, y1 = region.to_pixels(w, h)
    return float(mask[y0:y1, x0:x1].mean()) if x1 > x0 and y1 > y0 else 0.0


def _rot180(region: layout.Region) -> layout.Region:
    return layout.Region(1 - region.x1, 1 - region.y1, 1 - region.x0, 1 - region.y0)


def classify_side(card: Image) -> tuple[Side, bool, float]:
    """Decide side and whether the rectified card is upside down.

    Correlates the card's coarse ink map with the printed layout of each side in both
    orientations (photo, emblem, title, labels and values sit in fixed places); works on
    colour and grey (photocopied) cards alike. Returns ``(side, upside_down, confidence)``
    where confidence grows with the margin over the runner-up hypothesis.
    """
    _, side, upside_down, margin = _layout_match(card)
    return side, upside_down, float(min(1.0, max(0.0, margin) * 2.5))


def rectify_card(image: Image) -> RectifiedCard:
    """Find, warp and orient the card in ``image``.

    When no card-like quadrilateral is found the whole image is assumed to be the card
    (a scan or a tight crop) and ``detection`` is ``None``.
    """
    detection = find_card(image)
    if detection is None:
        h, w = image.shape[:2]
        quad = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
        quad = _long_side_first(quad)
    else:
        quad = detection.quad
    card = warp(image, quad)
    side, upside_down, conf = classify_side(card)
    if upside_down:
        card = np.ascontiguousarray(card[::-1, ::-1])
        quad = np.roll(quad, 2, axis=0)
    rotation = _rotation_of(quad)
    if detection is not None:
        detection = CardDetection(
            quad=quad,
            confidence=detection.confidence,
            area_fraction=detection.area_fraction,
            touches_border=detection.touches_border,
            width_px=detection.width_px,
        )
    return RectifiedCard(
        image=card, side=side, side_confidence=conf, rotation=rotation, detection=detection
    )


def flip(rectified: RectifiedCard) -> RectifiedCard:
    """The same card turned 180 degrees (used when reading suggests the vote was wrong)."""
    det = rectified.detection
    if det is not None:
        det = CardDetection(
            quad=np.roll(det.quad, 2, axis=0),
            confidence=det.confidence,
            area_fraction=det.area_fraction,
            touches_border=det.touches_border,
            width_px=det.width_px,
        )
    return RectifiedCard(
        image=np.ascontiguousarray(rectified.image[::-1, ::-1]),
        side=rectified.side,
        side_confidence=rectified.side_confidence,
        rotation=(rectified.rotation + 180) % 360,
        detection=det,
    )


def _rotation_of(quad: Quad) -> int:
    """Angle of the card's top edge in the photo, snapped to 0/90/180/270 (clockwise)."""
    dx, dy = quad[1] - quad[0]
    angle = float(np.degrees(np.arctan2(dy, dx))) % 360
    return round(angle / 90.0) % 4 * 90
