"""Distributed face detection on a Spark standalone cluster (DCSpark "face" spec).

What it does
------------
* The driver builds a small, fully offline image set from data bundled inside
  the scikit-image wheel (no downloads):

  - ``astronaut``       skimage.data.astronaut(): one frontal face (Eileen Collins);
  - ``lfw-group``       a 2x4 "group photo" mosaic of 8 face crops from
                        skimage.data.lfw_subset() (Labeled Faces in the Wild);
  - ``lfw-nonfaces``    the same mosaic built from 8 LFW *non-face* patches;
  - ``coffee``, ``chelsea`` (a cat), ``rocket``, ``camera``: photos with no
    human frontal face (controls);
  - ``lfw-face-NNN`` / ``lfw-nonface-NNN``: the 100 face and 100 non-face
    25x25 crops of lfw_subset, each scored on its own.

* The images travel as PNG bytes in an RDD of ``(name, ...)`` records; OpenCV's
  bundled Haar cascade (``cv2.data.haarcascades``) runs inside ``mapPartitions``
  so the detection really happens on the executors.  Each partition also
  reports the Python / OpenCV / NumPy / PySpark versions its Python worker
  actually imported.

* The driver collects the results, prints a report, and asserts:

  - the executors' versions equal the ``--expect-*`` arguments (and the JVM's
    ``spark.version`` equals ``--expect-spark``);
  - ``astronaut`` has exactly one face, at the astronaut's head;
  - ``lfw-group`` has exactly 8 faces, one per tile;
  - every control image has none;
  - on the LFW crops, recall >= ``--min-recall`` and false-positive rate
    <= ``--max-fpr``.

  Any failure is printed and the script exits with status 1.

Usage (as DCSpark runs it)::

    spark-submit --master spark://spark-master-face:7077 /opt/dcspark/app/detect.py \
        --expect-spark 4.0.1 --expect-opencv 4.10.0 --expect-numpy 2.1.3 \
        --expect-python 3.11 --expect-skimage 0.24.0

Needs only the spec's packages: pyspark, opencv-python-headless, numpy,
scikit-image (the last one on the driver only).  Python 3.9+.
"""

import argparse
import os
import platform
import socket
import sys
import time

APP_NAME = "dcspark-face"
CASCADE_FILE = "haarcascade_frontalface_default.xml"

# LFW face crops used for the "group photo": all 8 are found by the pinned
# OpenCV 4.10 cascade in the mosaic (per-crop recall over the 100 faces is ~98%,
# so a random pick could legitimately miss one and make the check flaky).
GROUP_FACES = list(range(10, 18))
GROUP_NONFACES = list(range(110, 118))
LFW_UPSCALE = 5  # 25x25 crops -> 125x125, well above the cascade's 24x24 window
LFW_PAD = 20  # replicated border: the crops are tight, the cascade wants context
# astronaut(): the face is around x 177-270, y 67-160 in the 512x512 image.
ASTRONAUT_FACE_CENTER_BOX = (180, 60, 270, 170)  # x0, y0, x1, y1 the centre must fall in


# --------------------------------------------------------------------------- #
# executor side
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


def detect_partition(records, scale_factor, min_neighbors, min_size):
    """mapPartitions body: decode, (optionally) upscale, run the Haar cascade."""
    import cv2
    import numpy as np
    from pyspark import TaskContext

    cv2.setNumThreads(1)  # the worker containers have one CPU
    ctx = TaskContext.get()
    started = time.time()
    env = runtime_versions()
    env.update(
        kind="env",
        executor=executor_label(),
        partition=ctx.partitionId() if ctx else -1,
        pid=os.getpid(),
    )
    cascade_path = os.path.join(cv2.data.haarcascades, CASCADE_FILE)
    cascade = cv2.CascadeClassifier(cascade_path)
    if cascade.empty():
        raise RuntimeError("could not load the Haar cascade %s on %s" % (cascade_path, env["executor"]))

    count = 0
    for name, group, expected, png, upscale, pad in records:
        t0 = time.time()
        buf = np.frombuffer(png, dtype=np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise RuntimeError("could not decode image %r" % name)
        if img.ndim == 3:
            code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
            gray = cv2.cvtColor(img, code)
        else:
            gray = img
        if upscale != 1:
            gray = cv2.resize(gray, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        if pad:
            gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        gray = cv2.equalizeHist(gray)
        faces = cascade.detectMultiScale(
            gray,
            scaleFactor=scale_factor,
            minNeighbors=min_neighbors,
            minSize=(min_size, min_size),
        )
        boxes = [tuple(int(v) for v in box) for box in faces] if len(faces) else []
        count += 1
        yield {
            "kind": "result",
            "name": name,
            "group": group,
            "expected": expected,
            "shape": tuple(int(v) for v in img.shape),
            "boxes": boxes,
            "ms": (time.time() - t0) * 1000.0,
            "executor": env["executor"],
        }
    env["images"] = count
    env["seconds"] = time.time() - started
    env["peak_rss_mb"] = peak_rss_mb()
    yield env


# --------------------------------------------------------------------------- #
# driver side
# --------------------------------------------------------------------------- #
def png_bytes(img_rgb_or_gray):
    import cv2
    import numpy as np

    img = np.ascontiguousarray(img_rgb_or_gray)
    if img.dtype != np.uint8:
        img = (np.clip(img, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if img.ndim == 3:  # skimage gives RGB(A); OpenCV wants BGR(A)
        code = cv2.COLOR_RGBA2BGRA if img.shape[2] == 4 else cv2.COLOR_RGB2BGR
        img = cv2.cvtColor(img, code)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def lfw_mosaic(lfw, indices, cols):
    """Tiles of upscaled, padded LFW crops; returns (image, tile size)."""
    import cv2
    import numpy as np

    tiles = []
    for i in indices:
        crop = (lfw[i] * 255.0).round().astype(np.uint8)
        big = cv2.resize(crop, None, fx=LFW_UPSCALE, fy=LFW_UPSCALE, interpolation=cv2.INTER_CUBIC)
        pad = 25
        tiles.append(cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE))
    rows = [np.hstack(tiles[r:r + cols]) for r in range(0, len(tiles), cols)]
    return np.vstack(rows), tiles[0].shape[0]


def build_dataset():
    """Records (name, group, expected faces, png bytes, upscale, pad) + metadata."""
    from skimage import data

    records = []
    # whole images: (name, group, expected)
    records.append(("astronaut", "face", 1, png_bytes(data.astronaut()), 1, 0))
    lfw = data.lfw_subset()  # (200, 25, 25) float: 100 faces then 100 non-faces
    group, tile = lfw_mosaic(lfw, GROUP_FACES, cols=4)
    records.append(("lfw-group", "face", len(GROUP_FACES), png_bytes(group), 1, 0))
    nonface = lfw_mosaic(lfw, GROUP_NONFACES, cols=4)[0]
    records.append(("lfw-nonfaces", "control", 0, png_bytes(nonface), 1, 0))
    for name in ("coffee", "chelsea", "rocket", "camera"):
        records.append((name, "control", 0, png_bytes(getattr(data, name)()), 1, 0))
    # single LFW crops, scored as a classifier
    for i in range(lfw.shape[0]):
        is_face = i < 100
        name = "lfw-%s-%03d" % ("face" if is_face else "nonface", i)
        records.append((name, "lfw-crop", 1 if is_face else 0, png_bytes(lfw[i]), LFW_UPSCALE, LFW_PAD))
    return records, {"group_tile": tile}


def interleave(records, parts):
    """Reorder so slice k of `parts` equal slices holds every parts-th record."""
    out = []
    for k in range(parts):
        out.extend(records[k::parts])
    return out


def version_matches(actual, expected):
    """'4.10.0' matches '4.10.0' and '4.10.0.84'; '3.11' matches '3.11.7'."""
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
    print("  driver : Spark (JVM) %s, PySpark %s, Python %s, OpenCV %s, NumPy %s, scikit-image %s"
          % (spark_version, driver_versions["pyspark"], driver_versions["python"],
             driver_versions["opencv"], driver_versions["numpy"], driver_versions.get("skimage", "?")))
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
        if expected is None:
            return
        if not version_matches(actual, expected):
            failures.append("%s is %s, expected %s" % (label, actual, expected))

    want("Spark version (driver JVM spark.version)", spark_version, args.expect_spark)
    want("scikit-image on the driver", driver_versions.get("skimage", "?"), args.expect_skimage)
    for env in envs:
        who = "executor %s" % env["executor"]
        want("OpenCV on " + who, env["opencv"], args.expect_opencv)
        want("NumPy on " + who, env["numpy"], args.expect_numpy)
        want("Python on " + who, env["python"], args.expect_python)
        want("PySpark on " + who, env["pyspark"], args.expect_spark)
        if env["python"].split(".")[:2] != driver_versions["python"].split(".")[:2]:
            failures.append("%s runs Python %s but the driver runs %s"
                            % (who, env["python"], driver_versions["python"]))


def dedupe_failures(failures):
    out = []
    for f in failures:
        if f not in out:
            out.append(f)
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Detect faces with OpenCV's Haar cascade on Spark executors and check the runtime.")
    p.add_argument("--expect-spark", help="expected Spark version (driver spark.version and executors' pyspark)")
    p.add_argument("--expect-opencv", help="expected cv2.__version__ on the executors, e.g. 4.10.0")
    p.add_argument("--expect-numpy", help="expected numpy.__version__ on the executors, e.g. 2.1.3")
    p.add_argument("--expect-python", help="expected Python version on the executors, e.g. 3.11")
    p.add_argument("--expect-skimage", help="expected scikit-image version on the driver, e.g. 0.24.0")
    p.add_argument("--partitions", type=int, default=0,
                   help="RDD partitions (default: 2 x defaultParallelism, at least 2)")
    p.add_argument("--wait-executors", type=int, default=0,
                   help="wait up to --wait-timeout s for this many executors before starting (default 0: don't)")
    p.add_argument("--wait-timeout", type=float, default=60.0)
    p.add_argument("--scale-factor", type=float, default=1.1)
    p.add_argument("--min-neighbors", type=int, default=5)
    p.add_argument("--min-size", type=int, default=30, help="smallest face in pixels (default 30)")
    p.add_argument("--min-recall", type=float, default=0.90,
                   help="minimum share of the 100 LFW face crops detected (default 0.90)")
    p.add_argument("--max-fpr", type=float, default=0.05,
                   help="maximum share of the 100 LFW non-face crops with a detection (default 0.05)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    t_start = time.time()
    try:  # the report uses a few non-ASCII characters; never die on a C locale
        sys.stdout.reconfigure(errors="replace")
    except Exception:  # pragma: no cover - stdout replaced by something else
        pass

    import skimage
    from pyspark.sql import SparkSession

    driver_versions = runtime_versions()
    driver_versions["skimage"] = skimage.__version__

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

        t0 = time.time()
        records, meta = build_dataset()
        payload = sum(len(r[3]) for r in records)
        parts = args.partitions or max(2, 2 * sc.defaultParallelism)
        print("dataset: %d images, %.1f MB of PNG, %d partitions (built in %.2f s)"
              % (len(records), payload / 1e6, parts, time.time() - t0))

        # parallelize() slices the list in order: spread the big photos so that
        # every partition gets a mix of photos and small crops
        rdd = sc.parallelize(interleave(records, parts), parts)
        sf, mn, ms = args.scale_factor, args.min_neighbors, args.min_size
        t0 = time.time()
        out = rdd.mapPartitions(lambda it: detect_partition(it, sf, mn, ms)).collect()
        job_s = time.time() - t0
        results = {r["name"]: r for r in out if r["kind"] == "result"}
        envs = [r for r in out if r["kind"] == "env"]
        if len(results) != len(records):
            failures.append("got %d results for %d images" % (len(results), len(records)))

        # ---------------- report ----------------
        print("")
        print("Detections (Haar cascade %s, scaleFactor %.2f, minNeighbors %d, minSize %d)"
              % (CASCADE_FILE, sf, mn, ms))
        print("  %-14s %-9s %-11s %8s %6s  %-24s %s" % ("image", "role", "size", "expected", "found", "executor", "boxes x,y,w,h"))
        whole = [r for r in results.values() if r["group"] != "lfw-crop"]
        whole.sort(key=lambda r: (r["group"] != "face", r["name"]))
        for r in whole:
            size = "x".join(str(v) for v in r["shape"][:2][::-1])
            boxes = " ".join("%d,%d,%d,%d" % b for b in r["boxes"]) or "-"
            print("  %-14s %-9s %-11s %8d %6d  %-24s %s"
                  % (r["name"], r["group"], size, r["expected"], len(r["boxes"]), r["executor"], boxes))

        crops = [r for r in results.values() if r["group"] == "lfw-crop"]
        face_crops = [r for r in crops if r["expected"] == 1]
        nonface_crops = [r for r in crops if r["expected"] == 0]
        hits = sum(1 for r in face_crops if r["boxes"])
        false_pos = sum(1 for r in nonface_crops if r["boxes"])
        recall = hits / float(len(face_crops) or 1)
        fpr = false_pos / float(len(nonface_crops) or 1)
        missed = sorted(r["name"] for r in face_crops if not r["boxes"])
        print("  LFW crops: %d/%d faces detected (recall %.0f%%), %d/%d non-faces flagged (FPR %.0f%%)%s"
              % (hits, len(face_crops), 100 * recall, false_pos, len(nonface_crops), 100 * fpr,
                 (", missed: " + ", ".join(missed[:6]) + (" ..." if len(missed) > 6 else "")) if missed else ""))

        print("")
        print("Work distribution")
        per_exec = {}
        for env in envs:
            per_exec.setdefault(env["executor"], []).append(env)
        for ex in sorted(per_exec):
            items = per_exec[ex]
            rss = [e["peak_rss_mb"] for e in items if e.get("peak_rss_mb")]
            print("  %-24s partitions %-12s images %4d  busy %.2f s  python worker peak RSS %s"
                  % (ex, ",".join(str(e["partition"]) for e in sorted(items, key=lambda e: e["partition"])),
                     sum(e["images"] for e in items), sum(e["seconds"] for e in items),
                     ("%.0f MB" % max(rss)) if rss else "?"))
        print("  detection job: %.2f s wall on %d executor(s)" % (job_s, len(per_exec)))

        check_versions(args, spark_version, envs, driver_versions, failures)

        # ---------------- assertions ----------------
        astro = results.get("astronaut")
        if astro is not None:
            if len(astro["boxes"]) != 1:
                failures.append("astronaut: expected exactly 1 face, found %d" % len(astro["boxes"]))
            else:
                x, y, w, h = astro["boxes"][0]
                cx, cy = x + w / 2.0, y + h / 2.0
                x0, y0, x1, y1 = ASTRONAUT_FACE_CENTER_BOX
                if not (x0 <= cx <= x1 and y0 <= cy <= y1):
                    failures.append("astronaut: the face found at %s is not on the astronaut's head" % (astro["boxes"][0],))
        group = results.get("lfw-group")
        if group is not None:
            tile = meta["group_tile"]
            cells = sorted(((y + h // 2) // tile, (x + w // 2) // tile) for x, y, w, h in group["boxes"])
            if len(group["boxes"]) != group["expected"]:
                failures.append("lfw-group: expected %d faces, found %d" % (group["expected"], len(group["boxes"])))
            elif len(set(cells)) != len(cells):
                failures.append("lfw-group: %d faces found but not one per tile (tiles %s)" % (len(cells), cells))
        for r in whole:
            if r["group"] == "control" and r["boxes"]:
                failures.append("%s: control image without faces, but found %d at %s"
                                % (r["name"], len(r["boxes"]), r["boxes"]))
        if recall < args.min_recall:
            failures.append("LFW face crops: recall %.2f below --min-recall %.2f" % (recall, args.min_recall))
        if fpr > args.max_fpr:
            failures.append("LFW non-face crops: false-positive rate %.2f above --max-fpr %.2f" % (fpr, args.max_fpr))
        if not envs:
            failures.append("no executor reported its runtime")
    finally:
        spark.stop()

    failures = dedupe_failures(failures)
    total = time.time() - t_start
    rss = peak_rss_mb()
    if rss:
        print("driver Python peak RSS: %.0f MB" % rss)
    print("")
    if failures:
        print("FAILED checks:")
        for f in failures:
            print("  - " + f)
        print("face: FAILED — %d check(s) failed (see above), %.1f s" % (len(failures), total))
        return 1
    controls = [r for r in whole if r["group"] == "control"]
    env0 = envs[0]
    print("face: OK — %d face(s) in astronaut, %d/%d in lfw-group, 0 in %d control images, LFW crops recall %.0f%% FPR %.0f%%; "
          "%d executor(s) with OpenCV %s, NumPy %s, Python %s; Spark %s; %.1f s"
          % (len(astro["boxes"]), len(group["boxes"]), group["expected"], len(controls), 100 * recall, 100 * fpr,
             len(per_exec), env0["opencv"], env0["numpy"], env0["python"], spark_version, total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
