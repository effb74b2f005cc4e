"""Video synopsis with OpenCV background subtraction on Spark (DCSpark "video-synopsis" spec).

What it does
------------
1. The driver generates a synthetic video deterministically (NumPy only, fixed
   seed): a textured static background with sensor noise, and a few moving
   objects that appear at different times (ground truth is kept).  Frames are
   JPEG-encoded, as in an MJPEG stream, so a few MB travel to the executors.
2. The frames are cut into contiguous chunks, one per RDD record.  Each chunk
   carries the ``--warmup`` frames before it (the first chunk replays its own
   first frames) so that MOG2, which needs temporal context, has learnt the
   background before the chunk's first frame.  Inside ``mapPartitions`` the
   executors run ``cv2.createBackgroundSubtractorMOG2``, clean the masks, find
   the blobs (``cv2.findContours`` returns 3 values in OpenCV 3.4 and 2 in 4.x;
   both are handled) and return per frame the boxes, pixels and masks of the
   moving blobs, plus their background estimate and runtime versions.
3. The driver links the boxes over time into "tubes" (one per moving object),
   shifts the tubes in time so that objects from different moments play
   together without colliding, and renders the synopsis over the background:
   ``synopsis.avi`` (MJPG, when the OpenCV build can write it), ``synopsis.npz``
   (frames + tube table) and ``synopsis_keyframe.png`` in ``--out-dir``.
4. It asserts: the executors' versions equal the ``--expect-*`` arguments (and
   the JVM's ``spark.version`` equals ``--expect-spark``); the number of tubes
   equals the number of generated objects (within ``--count-tolerance``, 0 by
   default); each generated object is matched by one tube that covers its
   time span and follows its boxes; the synopsis is shorter than the input.
   Any failure is printed and the script exits with status 1.

Usage (as DCSpark runs it)::

    spark-submit --master spark://spark-master-video-synopsis:7077 /opt/dcspark/app/synopsis.py \
        --expect-spark 3.5.3 --expect-opencv 3.4.18 --expect-numpy 1.26.4 --expect-python 3.11

Needs only pyspark, opencv-python-headless and numpy.  Python 3.9+;
OpenCV 3.4 or 4.x.
"""

import argparse
import os
import platform
import socket
import sys
import time

APP_NAME = "dcspark-video-synopsis"
WIDTH, HEIGHT = 160, 120
BASE_FRAMES = 240  # the object schedule below is written for 240 frames

# Moving objects, timed for a 240-frame video (scaled for other lengths).
# shape, (w, h), colour BGR, first/last frame, centre at first frame, centre at last frame
OBJECTS = [
    ("rect", (16, 10), (40, 40, 220), 15, 84, (-10, 20), (170, 20)),      # red, left -> right
    ("ellipse", (18, 12), (60, 200, 60), 60, 139, (170, 55), (-10, 55)),  # green, right -> left
    ("rect", (14, 10), (200, 50, 200), 100, 169, (170, 97), (-10, 97)),   # magenta, right -> left
    ("rect", (12, 16), (235, 235, 235), 150, 209, (120, -10), (120, 130)),  # white, top -> bottom
    ("ellipse", (16, 12), (40, 220, 230), 190, 235, (-10, 90), (170, 90)),  # yellow, left -> right
]


# --------------------------------------------------------------------------- #
# shared helpers
# --------------------------------------------------------------------------- #
def executor_label():
    """A readable id for the process running this task.

    In standalone mode an executor's working directory is
    <worker work dir>/app-<id>/<executor id>; in local mode it is the driver's.
    """
    host = socket.gethostname()
    cwd = os.getcwd()
    if os.path.basename(os.path.dirname(cwd)).startswith("app-"):
        return "%s/executor-%s" % (host, os.path.basename(cwd))
    return "%s/local" % host


def runtime_versions():
    import cv2
    import numpy
    import pyspark

    return {
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "numpy": numpy.__version__,
        "pyspark": pyspark.__version__,
        "cv2_path": os.path.dirname(cv2.__file__),
    }


def peak_rss_mb():
    """Peak resident memory of this Python process in MB (Linux), or None."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except Exception:  # pragma: no cover - non-Unix
        return None


def find_contours(mask):
    """cv2.findContours for OpenCV 3.4 (image, contours, hierarchy) and 4.x (contours, hierarchy)."""
    import cv2

    found = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return found[-2]


def iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / float(union) if union else 0.0


def centre_distance(a, b):
    return (((a[0] + a[2] / 2.0) - (b[0] + b[2] / 2.0)) ** 2
            + ((a[1] + a[3] / 2.0) - (b[1] + b[3] / 2.0)) ** 2) ** 0.5


def union_box(boxes):
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


# --------------------------------------------------------------------------- #
# executor side
# --------------------------------------------------------------------------- #
def process_chunks(chunks, params):
    """mapPartitions body: MOG2 over each chunk (after its warm-up), blobs per frame."""
    import cv2
    import numpy as np
    from pyspark import TaskContext

    cv2.setNumThreads(1)  # the worker containers have one CPU
    ctx = TaskContext.get()
    env = runtime_versions()
    env.update(kind="env", executor=executor_label(), partition=ctx.partitionId() if ctx else -1,
               pid=os.getpid(), chunks=[], seconds=0.0)
    open_k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    close_k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    for chunk in chunks:
        t0 = time.time()
        frames = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in chunk["jpegs"]]
        warm = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in chunk["warmup_jpegs"]]
        mog = cv2.createBackgroundSubtractorMOG2(history=params["history"],
                                                 varThreshold=params["var_threshold"],
                                                 detectShadows=False)
        # An object that crossed a pixel during a short warm-up owns a few percent
        # of that pixel's mixture; with the default ratio 0.9 it would count as
        # background.  0.7 keeps only components seen >30% of the time.
        mog.setBackgroundRatio(params["background_ratio"])
        for f in warm:
            mog.apply(f)
        detections = []
        fg_pixels = 0
        for i, frame in enumerate(frames):
            t = chunk["start"] + i
            fg = mog.apply(frame)
            fg = cv2.threshold(fg, 200, 255, cv2.THRESH_BINARY)[1]
            fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, open_k)
            fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, close_k)
            fg_pixels += int(cv2.countNonZero(fg))
            for cnt in find_contours(fg):
                if cv2.contourArea(cnt) < params["min_area"]:
                    continue
                x, y, w, h = (int(v) for v in cv2.boundingRect(cnt))
                detections.append({
                    "t": t,
                    "box": (x, y, w, h),
                    "area": float(cv2.contourArea(cnt)),
                    "patch": frame[y:y + h, x:x + w].copy(),
                    "mask": fg[y:y + h, x:x + w].copy(),
                })
        background = mog.getBackgroundImage()
        seconds = time.time() - t0
        env["seconds"] += seconds
        env["chunks"].append(chunk["id"])
        yield {
            "kind": "chunk",
            "id": chunk["id"],
            "start": chunk["start"],
            "end": chunk["start"] + len(frames),
            "warmup": len(warm),
            "detections": detections,
            "background": background,
            "fg_pixels": fg_pixels,
            "seconds": seconds,
            "executor": env["executor"],
        }
    env["peak_rss_mb"] = peak_rss_mb()
    yield env


# --------------------------------------------------------------------------- #
# driver side: synthetic video
# --------------------------------------------------------------------------- #
def make_background(rng):
    """Textured, smooth-ish static scene (uint8 BGR)."""
    import numpy as np

    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    coarse = rng.uniform(0, 1, size=(HEIGHT // 8 + 2, WIDTH // 8 + 2, 3)).astype(np.float32)
    # bilinear upsampling of a coarse random grid, NumPy only
    gy = yy / 8.0
    gx = xx / 8.0
    y0 = gy.astype(int)
    x0 = gx.astype(int)
    fy = (gy - y0)[..., None]
    fx = (gx - x0)[..., None]
    blotches = ((1 - fy) * (1 - fx) * coarse[y0, x0] + (1 - fy) * fx * coarse[y0, x0 + 1]
                + fy * (1 - fx) * coarse[y0 + 1, x0] + fy * fx * coarse[y0 + 1, x0 + 1])
    bg = 70.0 + 60.0 * blotches
    bg += (18.0 * np.sin(xx / 5.0) * np.cos(yy / 7.0))[..., None]          # fine texture
    bg += (0.25 * yy)[..., None] * np.array([1.0, 0.6, 0.3], np.float32)    # lighting gradient
    bg[(xx.astype(int) // 20 + yy.astype(int) // 20) % 2 == 0] += 10.0      # tiles
    return np.clip(bg, 0, 255).astype(np.float32)


def object_schedule(n_frames):
    scale = n_frames / float(BASE_FRAMES)
    out = []
    for i, (shape, size, colour, f0, f1, c0, c1) in enumerate(OBJECTS):
        out.append({
            "id": i, "shape": shape, "size": size, "colour": colour,
            "first": int(round(f0 * scale)), "last": min(n_frames - 1, int(round(f1 * scale))),
            "c0": c0, "c1": c1,
        })
    return out


def object_mask(obj, t):
    """Boolean mask of the object at frame t (None when not on screen)."""
    import numpy as np

    if not obj["first"] <= t <= obj["last"]:
        return None
    span = max(1, obj["last"] - obj["first"])
    a = (t - obj["first"]) / float(span)
    cx = obj["c0"][0] + a * (obj["c1"][0] - obj["c0"][0])
    cy = obj["c0"][1] + a * (obj["c1"][1] - obj["c0"][1])
    w, h = obj["size"]
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    if obj["shape"] == "ellipse":
        m = ((xx - cx) / (w / 2.0)) ** 2 + ((yy - cy) / (h / 2.0)) ** 2 <= 1.0
    else:
        m = (np.abs(xx - cx) <= w / 2.0) & (np.abs(yy - cy) <= h / 2.0)
    return m if m.any() else None


def generate_video(n_frames, seed, noise, min_area):
    """Frames (list of uint8 BGR) and ground truth {object id: {t: box}}."""
    import numpy as np

    rng = np.random.RandomState(seed)
    bg = make_background(rng)
    objects = object_schedule(n_frames)
    stripes = (0.8 + 0.2 * (np.indices((HEIGHT, WIDTH)).sum(axis=0) % 4 < 2))[..., None]
    frames = []
    truth = dict((o["id"], {}) for o in objects)
    for t in range(n_frames):
        img = bg + rng.normal(0.0, noise, size=bg.shape).astype(np.float32)
        for o in objects:
            m = object_mask(o, t)
            if m is None:
                continue
            img[m] = (np.array(o["colour"], np.float32) * stripes[m])
            if m.sum() >= min_area:
                ys, xs = np.nonzero(m)
                truth[o["id"]][t] = (int(xs.min()), int(ys.min()),
                                     int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames, truth, objects


def make_chunks(jpegs, n_chunks, warmup):
    n = len(jpegs)
    n_chunks = max(1, min(n_chunks, n))
    bounds = [int(round(k * n / float(n_chunks))) for k in range(n_chunks + 1)]
    chunks = []
    for k in range(n_chunks):
        start, end = bounds[k], bounds[k + 1]
        if start >= warmup:
            warm = jpegs[start - warmup:start]
        else:
            # no (or too little) history before this chunk: replay its first frames
            warm = (jpegs[:start] + jpegs[start:end])[:warmup]
        chunks.append({"id": k, "start": start, "jpegs": jpegs[start:end], "warmup_jpegs": warm})
    return chunks


# --------------------------------------------------------------------------- #
# driver side: tubes and synopsis
# --------------------------------------------------------------------------- #
def link_tubes(detections, n_frames, max_gap, min_len):
    """Greedy tracking: a blob joins the live tube whose last box it overlaps most."""
    by_frame = {}
    for d in detections:
        by_frame.setdefault(d["t"], []).append(d)
    tubes = []
    for t in range(n_frames):
        live = [tb for tb in tubes if t - tb["last_t"] <= max_gap + 1]
        for d in sorted(by_frame.get(t, []), key=lambda d: -d["area"]):
            x, y, w, h = d["box"]
            grown = (x - 4, y - 4, w + 8, h + 8)
            best, best_score = None, 0.0
            for tb in live:
                score = iou(grown, tb["last_box"])
                if score > best_score:
                    best, best_score = tb, score
            if best is None:
                best = {"frames": {}, "first_t": t, "last_t": t, "last_box": d["box"]}
                tubes.append(best)
                live.append(best)
            best["frames"].setdefault(t, []).append(d)
        for tb in live:
            if t in tb["frames"]:
                tb["last_t"] = t
                tb["last_box"] = union_box([d["box"] for d in tb["frames"][t]])
    kept, dropped = [], []
    for tb in tubes:
        tb["boxes"] = dict((t, union_box([d["box"] for d in ds])) for t, ds in tb["frames"].items())
        tb["length"] = tb["last_t"] - tb["first_t"] + 1
        (kept if len(tb["frames"]) >= min_len else dropped).append(tb)
    for i, tb in enumerate(kept):
        tb["id"] = i
    return kept, dropped


def match_truth(tubes, truth):
    """For each generated object, the tube with the best mean box IoU."""
    matches = {}
    for oid, gt in truth.items():
        best = None
        for tb in tubes:
            common = [t for t in gt if t in tb["boxes"]]
            if not common:
                continue
            mean_iou = sum(iou(gt[t], tb["boxes"][t]) for t in common) / float(len(common))
            span_gt = set(gt)
            span_tb = set(range(tb["first_t"], tb["last_t"] + 1))
            t_iou = len(span_gt & span_tb) / float(len(span_gt | span_tb))
            errors = sorted(centre_distance(gt[t], tb["boxes"][t]) for t in common)
            if best is None or mean_iou * t_iou > best["mean_iou"] * best["time_iou"]:
                best = {"tube": tb["id"], "mean_iou": mean_iou, "time_iou": t_iou,
                        "centre_err": errors[len(errors) // 2]}
        matches[oid] = best
    return matches


def plan_synopsis(tubes, max_overlap):
    """Earliest start for each tube (in order of appearance) without box collisions."""
    placed = []  # (start, tube)
    for tb in sorted(tubes, key=lambda tb: tb["first_t"]):
        offsets = sorted(t - tb["first_t"] for t in tb["boxes"])
        start = 0
        while True:
            clash = False
            for s2, other in placed:
                for k in offsets:
                    t_other = start + k - s2 + other["first_t"]
                    box = other["boxes"].get(t_other)
                    if box is not None and iou(tb["boxes"][tb["first_t"] + k], box) > max_overlap:
                        clash = True
                        break
                if clash:
                    break
            if not clash:
                break
            start += 1
        placed.append((start, tb))
    for start, tb in placed:
        tb["synopsis_start"] = start
    length = max(start + tb["length"] for start, tb in placed) if placed else 0
    return length


def render_synopsis(tubes, background, length):
    import cv2

    frames = []
    for s in range(length):
        img = background.copy()
        labels = []
        for tb in tubes:
            t = tb["first_t"] + s - tb["synopsis_start"]
            for d in tb["frames"].get(t, []):
                x, y, w, h = d["box"]
                region = img[y:y + h, x:x + w]
                m = d["mask"] > 0
                region[m] = d["patch"][m]
            if t in tb["boxes"]:
                labels.append((tb["boxes"][t], t))
        for (x, y, w, h), t in labels:
            cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (0, 255, 255), 1)
            cv2.putText(img, str(t), (x, max(8, y - 2)), cv2.FONT_HERSHEY_PLAIN, 0.7, (255, 255, 255), 1)
        frames.append(img)
    return frames


def write_outputs(out_dir, frames, tubes, background, fps):
    """synopsis.npz always; synopsis.avi (MJPG) when the OpenCV build can write it."""
    import cv2
    import numpy as np

    os.makedirs(out_dir, exist_ok=True)
    notes = []
    npz = os.path.join(out_dir, "synopsis.npz")
    table = np.array([(tb["id"], tb["first_t"], tb["last_t"], tb["synopsis_start"]) for tb in tubes],
                     dtype=np.int32).reshape(-1, 4)
    np.savez_compressed(npz, frames=np.stack(frames), background=background, tubes=table,
                        tube_columns=np.array(["tube", "first_frame", "last_frame", "synopsis_start"]))
    notes.append("%s (%d frames, %.1f MB)" % (npz, len(frames), os.path.getsize(npz) / 1e6))
    key = os.path.join(out_dir, "synopsis_keyframe.png")
    cv2.imwrite(key, frames[len(frames) // 2])
    notes.append(key)
    avi = os.path.join(out_dir, "synopsis.avi")
    avi_frames = None
    writer = cv2.VideoWriter(avi, cv2.VideoWriter_fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    if writer.isOpened():
        for f in frames:
            writer.write(f)
        writer.release()
        cap = cv2.VideoCapture(avi)
        avi_frames = 0
        while cap.isOpened():
            ok = cap.read()[0]
            if not ok:
                break
            avi_frames += 1
        cap.release()
        notes.append("%s (MJPG, %d frames read back)" % (avi, avi_frames))
    else:
        notes.append("note: cv2.VideoWriter cannot write MJPG here; no .avi (the .npz has the frames)")
    return npz, avi_frames, notes


# --------------------------------------------------------------------------- #
# checks
# --------------------------------------------------------------------------- #
def version_matches(actual, expected):
    """'3.4.18' matches '3.4.18' and '3.4.18.65'; '3.11' matches '3.11.7'."""
    want = expected.strip().split(".")
    return actual.strip().split(".")[: len(want)] == want


def wait_for_executors(sc, wanted, timeout):
    """Wait until `wanted` executors registered (so the work spreads); never fails."""
    if wanted <= 0 or sc.master.startswith("local"):
        return None
    deadline = time.time() + timeout
    count = 0
    while True:
        try:
            # includes the driver's own block manager, hence -1
            count = len(sc._jsc.sc().statusTracker().getExecutorInfos()) - 1
        except Exception as exc:  # pragma: no cover - py4j/JVM API drift
            print("note: cannot count executors (%s); not waiting" % exc)
            return None
        if count >= wanted or time.time() >= deadline:
            return count
        time.sleep(0.5)


def check_versions(args, spark_version, envs, driver_versions, failures):
    print("")
    print("Runtime versions")
    print("  driver : Spark (JVM) %s, PySpark %s, Python %s, OpenCV %s, NumPy %s"
          % (spark_version, driver_versions["pyspark"], driver_versions["python"],
             driver_versions["opencv"], driver_versions["numpy"]))
    seen = {}
    for env in envs:
        key = (env["python"], env["opencv"], env["numpy"], env["pyspark"], env["cv2_path"])
        seen.setdefault(key, set()).add(env["executor"])
    for (py, cv, np_, pys, path), where in sorted(seen.items()):
        print("  executors %s: Python %s, OpenCV %s, NumPy %s, PySpark %s (cv2 from %s)"
              % (", ".join(sorted(where)), py, cv, np_, pys, path))
    if len(seen) > 1:
        failures.append("executors loaded different library versions: %s" % sorted(seen))

    def want(label, actual, expected):
        if expected is not None and not version_matches(actual, expected):
            failures.append("%s is %s, expected %s" % (label, actual, expected))

    want("Spark version (driver JVM spark.version)", spark_version, args.expect_spark)
    for env in envs:
        who = "executor %s" % env["executor"]
        want("OpenCV on " + who, env["opencv"], args.expect_opencv)
        want("NumPy on " + who, env["numpy"], args.expect_numpy)
        want("Python on " + who, env["python"], args.expect_python)
        want("PySpark on " + who, env["pyspark"], args.expect_spark)
        if env["python"].split(".")[:2] != driver_versions["python"].split(".")[:2]:
            failures.append("%s runs Python %s but the driver runs %s"
                            % (who, env["python"], driver_versions["python"]))


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Build a video synopsis with OpenCV MOG2 background subtraction on Spark executors.")
    p.add_argument("--expect-spark", help="expected Spark version (driver spark.version and executors' pyspark)")
    p.add_argument("--expect-opencv", help="expected cv2.__version__ on the executors, e.g. 3.4.18")
    p.add_argument("--expect-numpy", help="expected numpy.__version__ on the executors, e.g. 1.26.4")
    p.add_argument("--expect-python", help="expected Python version on the executors, e.g. 3.11")
    p.add_argument("--frames", type=int, default=BASE_FRAMES, help="input length (default %d)" % BASE_FRAMES)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--noise", type=float, default=2.5, help="sensor noise sigma (default 2.5)")
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--chunks", type=int, default=4, help="contiguous chunks, one task each (default 4)")
    p.add_argument("--warmup", type=int, default=40, help="frames fed to MOG2 before each chunk (default 40)")
    p.add_argument("--history", type=int, default=200)
    p.add_argument("--var-threshold", type=float, default=16.0)
    p.add_argument("--background-ratio", type=float, default=0.7)
    p.add_argument("--min-area", type=int, default=25, help="smallest blob in pixels (default 25)")
    p.add_argument("--max-gap", type=int, default=3, help="frames a tube may miss and still continue")
    p.add_argument("--min-tube", type=int, default=8, help="tubes with fewer frames are noise (default 8)")
    p.add_argument("--max-overlap", type=float, default=0.0,
                   help="box IoU allowed between tubes in the synopsis (default 0: none)")
    p.add_argument("--count-tolerance", type=int, default=0,
                   help="allowed |tubes - generated objects| (default 0)")
    p.add_argument("--min-box-iou", type=float, default=0.45,
                   help="mean box IoU a tube must reach with its object (default 0.45: JPEG 4:2:0 chroma "
                        "bleed adds 1-2 px per side to 10-16 px objects, entering/leaving boxes are partial)")
    p.add_argument("--max-centre-error", type=float, default=3.0,
                   help="median distance in px between a tube's and its object's box centres (default 3)")
    p.add_argument("--min-time-iou", type=float, default=0.8,
                   help="overlap of a tube's time span with its object's (default 0.8)")
    p.add_argument("--out-dir", default="/tmp/dcspark-video-synopsis")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--wait-executors", type=int, default=0,
                   help="wait up to --wait-timeout s for this many executors before starting (default 0: don't)")
    p.add_argument("--wait-timeout", type=float, default=60.0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    t_start = time.time()
    try:  # the report uses a few non-ASCII characters; never die on a C locale
        sys.stdout.reconfigure(errors="replace")
    except Exception:  # pragma: no cover - stdout replaced by something else
        pass

    import cv2
    import numpy as np
    from pyspark.sql import SparkSession

    driver_versions = runtime_versions()
    spark = SparkSession.builder.appName(APP_NAME).getOrCreate()
    failures = []
    try:
        sc = spark.sparkContext
        spark_version = spark.version
        print("%s: Spark %s, master %s, app id %s" % (APP_NAME, spark_version, sc.master, sc.applicationId))
        registered = wait_for_executors(sc, args.wait_executors, args.wait_timeout)
        if registered is not None:
            note = "" if registered >= args.wait_executors else " (wanted %d; going on anyway)" % args.wait_executors
            print("executors registered: %d%s" % (registered, note))

        # ---------------- input video ----------------
        t0 = time.time()
        frames, truth, objects = generate_video(args.frames, args.seed, args.noise, args.min_area)
        quality = [int(cv2.IMWRITE_JPEG_QUALITY), args.jpeg_quality]
        jpegs = [cv2.imencode(".jpg", f, quality)[1].tobytes() for f in frames]
        chunks = make_chunks(jpegs, args.chunks, args.warmup)
        shipped = sum(len(b) for c in chunks for b in c["jpegs"] + c["warmup_jpegs"])
        print("input: %d frames of %dx%d, %d moving objects, %.1f MB raw, %.1f MB of JPEG shipped "
              "in %d chunks (+%d warm-up frames each); generated in %.2f s"
              % (len(frames), WIDTH, HEIGHT, len(objects), len(frames) * frames[0].nbytes / 1e6,
                 shipped / 1e6, len(chunks), args.warmup, time.time() - t0))
        for o in objects:
            gt = truth[o["id"]]
            print("  object %d: %-7s %-15s frames %3d-%3d (visible %d frames)"
                  % (o["id"], o["shape"], "BGR%s" % (o["colour"],), o["first"], o["last"], len(gt)))

        # ---------------- distributed background subtraction ----------------
        params = {"history": args.history, "var_threshold": args.var_threshold,
                  "background_ratio": args.background_ratio, "min_area": args.min_area}
        t0 = time.time()
        rdd = sc.parallelize(chunks, len(chunks))
        out = rdd.mapPartitions(lambda it: process_chunks(it, params)).collect()
        job_s = time.time() - t0
        done = sorted((r for r in out if r["kind"] == "chunk"), key=lambda r: r["id"])
        envs = [r for r in out if r["kind"] == "env" and r["chunks"]]
        if [c["id"] for c in done] != list(range(len(chunks))):
            failures.append("chunks processed: %s, expected %d" % ([c["id"] for c in done], len(chunks)))

        print("")
        print("Background subtraction (MOG2 history %d, varThreshold %.0f, backgroundRatio %.2f)"
              % (args.history, args.var_threshold, args.background_ratio))
        for c in done:
            print("  chunk %d: frames %3d-%3d (+%d warm-up) on %-24s %4d blobs, %6d fg px, %.2f s"
                  % (c["id"], c["start"], c["end"] - 1, c["warmup"], c["executor"], len(c["detections"]),
                     c["fg_pixels"], c["seconds"]))
        per_exec = {}
        for e in envs:
            per_exec.setdefault(e["executor"], []).append(e)
        for ex in sorted(per_exec):
            rss = [e["peak_rss_mb"] for e in per_exec[ex] if e.get("peak_rss_mb")]
            print("  %-24s chunks %-8s busy %.2f s  python worker peak RSS %s"
                  % (ex, ",".join(str(c) for e in per_exec[ex] for c in e["chunks"]),
                     sum(e["seconds"] for e in per_exec[ex]), ("%.0f MB" % max(rss)) if rss else "?"))
        print("  job: %.2f s wall on %d executor(s)" % (job_s, len(per_exec)))

        # ---------------- tubes ----------------
        detections = [d for c in done for d in c["detections"]]
        tubes, dropped = link_tubes(detections, len(frames), args.max_gap, args.min_tube)
        print("")
        print("Tubes: %d (dropped %d noise tube(s) shorter than %d frames%s)"
              % (len(tubes), len(dropped), args.min_tube,
                 (": " + ", ".join("%d-%d" % (d["first_t"], d["last_t"]) for d in dropped[:5])) if dropped else ""))
        for tb in tubes:
            boxes = tb["boxes"]
            print("  tube %d: frames %3d-%3d (%d with a box), from %s to %s"
                  % (tb["id"], tb["first_t"], tb["last_t"], len(boxes), boxes[tb["first_t"]], boxes[tb["last_t"]]))

        matches = match_truth(tubes, truth)
        used = {}
        for oid in sorted(matches):
            m = matches[oid]
            o = objects[oid]
            if m is None:
                print("  object %d (frames %d-%d): NOT FOUND" % (oid, o["first"], o["last"]))
                failures.append("object %d (frames %d-%d) has no tube" % (oid, o["first"], o["last"]))
                continue
            print("  object %d -> tube %d: mean box IoU %.2f, median centre error %.1f px, time IoU %.2f"
                  % (oid, m["tube"], m["mean_iou"], m["centre_err"], m["time_iou"]))
            used.setdefault(m["tube"], []).append(oid)
            if m["mean_iou"] < args.min_box_iou:
                failures.append("object %d: tube %d box IoU %.2f < %.2f" % (oid, m["tube"], m["mean_iou"], args.min_box_iou))
            if m["centre_err"] > args.max_centre_error:
                failures.append("object %d: tube %d median centre error %.1f px > %.1f"
                                % (oid, m["tube"], m["centre_err"], args.max_centre_error))
            if m["time_iou"] < args.min_time_iou:
                failures.append("object %d: tube %d time IoU %.2f < %.2f" % (oid, m["tube"], m["time_iou"], args.min_time_iou))
        for tube_id, oids in used.items():
            if len(oids) > 1:
                failures.append("tube %d covers several objects %s (merged)" % (tube_id, oids))
        if abs(len(tubes) - len(objects)) > args.count_tolerance:
            failures.append("detected %d objects (tubes), generated %d (tolerance %d)"
                            % (len(tubes), len(objects), args.count_tolerance))

        # ---------------- synopsis ----------------
        t0 = time.time()
        background = np.median(np.stack([c["background"] for c in done]), axis=0).astype(np.uint8)
        length = plan_synopsis(tubes, args.max_overlap)
        syn = render_synopsis(tubes, background, length) if tubes else []
        print("")
        print("Synopsis: %d frames from %d input frames (%.0f%% of the input)"
              % (length, len(frames), 100.0 * length / len(frames)))
        for tb in sorted(tubes, key=lambda tb: tb["synopsis_start"]):
            print("  tube %d: input frames %3d-%3d -> synopsis frames %3d-%3d"
                  % (tb["id"], tb["first_t"], tb["last_t"], tb["synopsis_start"],
                     tb["synopsis_start"] + tb["length"] - 1))
        if not syn:
            failures.append("no synopsis: no tubes")
        else:
            npz, avi_frames, notes = write_outputs(args.out_dir, syn, tubes, background, args.fps)
            for n in notes:
                print("  wrote " + n if not n.startswith("note:") else "  " + n)
            with np.load(npz) as z:
                if z["frames"].shape[0] != length:
                    failures.append("synopsis.npz holds %d frames, expected %d" % (z["frames"].shape[0], length))
            if avi_frames is not None and avi_frames not in (0, length):
                failures.append("synopsis.avi reads back %d frames, expected %d" % (avi_frames, length))
        print("  composed in %.2f s" % (time.time() - t0))
        if length >= len(frames):
            failures.append("synopsis (%d frames) is not shorter than the input (%d)" % (length, len(frames)))

        check_versions(args, spark_version, envs, driver_versions, failures)
        if not envs:
            failures.append("no executor reported its runtime")
    finally:
        spark.stop()

    unique = []
    for f in failures:
        if f not in unique:
            unique.append(f)
    total = time.time() - t_start
    rss = peak_rss_mb()
    if rss:
        print("driver Python peak RSS: %.0f MB" % rss)
    print("")
    if unique:
        print("FAILED checks:")
        for f in unique:
            print("  - " + f)
        print("video-synopsis: FAILED — %d check(s) failed (see above), %.1f s" % (len(unique), total))
        return 1
    env0 = envs[0]
    print("video-synopsis: OK — %d/%d objects found, synopsis %d frames vs %d input (%.0f%%); "
          "%d executor(s) with OpenCV %s, NumPy %s, Python %s; Spark %s; %.1f s"
          % (len(tubes), len(objects), length, len(frames), 100.0 * length / len(frames),
             len(set(e["executor"] for e in envs)), env0["opencv"], env0["numpy"], env0["python"],
             spark_version, total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
