"""Embedding many images on a Dask cluster (Debian's python3-distributed), one model per worker.

    from jaclip import distributed
    summary = distributed.embed(["/photos"], "/shared/run1", "/models/cloob.jaclip",
                                scheduler="tcp://10.0.0.1:8786")
    distributed.merge("/shared/run1", "/shared/photos.jci")

or from a shell: python3 -m jaclip.distributed --scheduler tcp://10.0.0.1:8786 --model M --out DIR PATHS...
(without --scheduler it starts a LocalCluster on this machine). docs/distributed.md has the details.

The client lists the files (walking folders as `jaclip index build` does) and cuts the list into
partitions of consecutive files, ending a partition after a path whose hash says so (about
partition_size files each), so that a re-run after files were added or deleted redoes only the
partitions that hold them. Each worker loads the model once (a WorkerPlugin) and writes each
partition it is given as a shard in OUT:

    shards/part-NNNNN.jci         a jaclip index file (labels + L2-normalised float32 rows, CRC32-checked)
    img_emb/img_emb_N.npy         the same rows as float32 [rows, D] (clip-retrieval's layout)
    metadata/metadata_N.json      the labels of those rows, a JSON list (clip-retrieval uses parquet)
    manifest/part-NNNNN.json      the shard's entry: counts, skipped files, model fingerprint, SHA-256
                                  of each file; written last, so it is the commit of the shard

Every file is written under a temporary name and renamed into place, so a worker killed at any moment
leaves either no entry (the partition is simply done again) or a complete shard. A re-run skips every
partition whose entry matches its planned files and model and whose files match their checksums.
manifest.json, written by the client once every partition is done, lists the entries in order.

libjaclip is reached through ctypes and runs libtorch itself: do not import Python's torch in the
workers (docs/threading.md, "One libtorch per process").
"""
import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import socket
import sys
import time
import uuid

from . import _errors, _sync
from ._api import Image, Model
from ._index import Index
from ._manifest import FORMAT, MANIFEST, ManifestError, inside_run, load_manifest, verify_entry  # noqa: F401
from ._manifest import sha256_file as _sha256_file

PLUGIN_NAME = "jaclip-model"
_SUBDIRS = ("shards", "img_emb", "metadata", "manifest")
# The file names the jaclip command's walker takes (tools/jaclip/common.c): the formats libjaclip decodes.
_IMAGE_EXTENSIONS = _sync.IMAGE_EXTENSIONS
# Decoding failures are final (the file is recorded as skipped); an unreadable file fails the partition
# instead, because a worker that cannot see the storage must not commit an empty shard.
_SKIPPABLE = (_errors.ImageDecodeError, _errors.ImageTooLargeError)


class PartitionError(RuntimeError):
    """Raised by embed() when partitions failed after their retries; .failures lists (partition, error)."""

    def __init__(self, failures):
        self.failures = failures
        first = failures[0]
        super().__init__(f"{len(failures)} partition(s) failed; partition {first[0]}: {first[1]}")


# ---- inputs -----------------------------------------------------------------------------------------

def _walk(root, out):
    """Image files under root, as `jaclip index build` finds them: recursively, names starting with '.'
    skipped, symbolic links to files followed and to folders not."""
    try:
        entries = list(os.scandir(root))
    except OSError as e:
        print(f"jaclip.distributed: {root}: cannot read directory: {e.strerror}", file=sys.stderr)
        return
    for e in entries:
        if e.name.startswith("."):
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                _walk(e.path, out)
            elif e.is_file() and e.name.lower().endswith(_IMAGE_EXTENSIONS):
                out.append(e.path)
        except OSError:
            continue


def list_images(inputs):
    """The files to embed: each folder of inputs walked (under its real path, in byte order of path, as
    `jaclip index build` labels them), each file taken as its absolute path, in the order given.
    Returns (paths, skipped): names that are not valid UTF-8 cannot be labels and are skipped."""
    if isinstance(inputs, (str, bytes, os.PathLike)):
        inputs = [inputs]
    paths, skipped = [], []
    for item in inputs:
        item = os.fsdecode(item)
        if os.path.isdir(item):
            found = []
            _walk(os.path.realpath(item), found)
            found.sort(key=os.fsencode)
            paths.extend(found)
        elif os.path.isfile(item):
            paths.append(os.path.abspath(item))
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    good = []
    for p in paths:
        try:
            p.encode("utf-8")
            good.append(p)
        except UnicodeEncodeError:
            skipped.append({"path": os.fsencode(p).decode("utf-8", "replace"),
                            "error": "the file name is not valid UTF-8"})
    return good, skipped


def _digest(paths):
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def _cuts_after(path, partition_size):
    """Whether a partition ends after path: decided by the path alone (a stable hash), so removing or
    adding one file changes only the partition that holds it, not every partition after it."""
    h = int.from_bytes(hashlib.sha256(path.encode("utf-8", "surrogateescape")).digest()[:8], "big")
    return h % partition_size == 0


def plan(paths, partition_size):
    """[(number, paths, digest)] of consecutive partitions of about partition_size files (a partition
    ends after a path whose hash says so, or at 4 x partition_size); the same inputs give the same plan."""
    if partition_size < 1:
        raise ValueError("partition_size must be at least 1")
    parts, start = [], 0
    for i, p in enumerate(paths):
        if i + 1 == len(paths) or i + 1 - start >= 4 * partition_size or _cuts_after(p, partition_size):
            parts.append(paths[start:i + 1])
            start = i + 1
    return [(n, part, _digest(part)) for n, part in enumerate(parts)]


# ---- files ------------------------------------------------------------------------------------------

def _names(out_dir, number):
    return {"index": os.path.join("shards", f"part-{number:05d}.jci"),
            "npy": os.path.join("img_emb", f"img_emb_{number}.npy"),
            "metadata": os.path.join("metadata", f"metadata_{number}.json"),
            "entry": os.path.join("manifest", f"part-{number:05d}.json")}


def _temp_name(path):
    d, base = os.path.split(path)
    return os.path.join(d, f".{base}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path, data):
    """Writes bytes to path by a synced temporary file renamed over it; returns their SHA-256."""
    tmp = _temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(os.path.dirname(path) or ".")
    return hashlib.sha256(data).hexdigest()


def _file_record(out_dir, rel, sha=None):
    path = os.path.join(out_dir, rel)
    return {"path": rel, "bytes": os.path.getsize(path), "sha256": sha or _sha256_file(path)}


def _read_entry(out_dir, number):
    try:
        with open(os.path.join(out_dir, _names(out_dir, number)["entry"]), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _reusable(out_dir, entry, number, digest, count, fingerprint):
    return (entry is not None and entry.get("format") == FORMAT and entry.get("partition") == number
            and entry.get("planned_digest") == digest and entry.get("planned") == count
            and entry.get("model") == fingerprint and verify_entry(out_dir, entry) is None)


# ---- the worker side --------------------------------------------------------------------------------

try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # jaclip itself needs no Dask; only this module's cluster functions do
    _WorkerPlugin = object


class ModelPlugin(_WorkerPlugin):
    """Loads the model once when a worker starts (or joins later, or is restarted after a crash) and
    shares it between that worker's threads (a jaclip.Model may encode from many threads at once)."""

    name = PLUGIN_NAME

    def __init__(self, path, device="cpu", num_threads=0, precision=None):
        self.path, self.device, self.num_threads, self.precision = path, device, num_threads, precision
        self.model = None

    def setup(self, worker):
        # Dask's nanny starts workers with OPENBLAS_NUM_THREADS=1, and num_threads 0 leaves OpenBLAS's pool
        # as the environment sized it: name the worker's cores so the fp32 path really uses them.
        threads = self.num_threads or len(os.sched_getaffinity(0))
        self.model = Model(self.path, device=self.device, num_threads=threads, precision=self.precision)

    def teardown(self, worker):
        if self.model is not None:
            self.model.close()

    def __getstate__(self):  # the model never travels; each worker loads its own
        state = dict(self.__dict__)
        state["model"] = None
        return state


def _worker_model():
    from distributed import get_worker
    worker = get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    if plugin is None or plugin.model is None:
        raise RuntimeError(f"worker {worker.address} has no jaclip model (is the {PLUGIN_NAME} plugin registered?)")
    return worker, plugin.model


def _worker_fingerprint(dask_worker):
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return plugin.model.fingerprint if plugin is not None and plugin.model is not None else None


def _read_stamped(path):
    """(stamp, bytes) of a file from one open file, as `jaclip index sync` stamps it."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except OSError as e:
        raise _errors.InputOutputError(f"{path}: {e.strerror}", 3) from None
    return _sync._Stamp(st.st_size, st.st_mtime_ns, _sync._content_hash(data)), data


def _npy_bytes(array):
    import numpy as np
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32))
    return buf.getvalue()


def embed_partition(number, paths, digest, out_dir, batch_size=16, write_npy=True):
    """Runs on a worker: embeds one partition with the worker's model and commits it as a shard, or
    returns the existing entry if a previous run already committed this very partition."""
    import numpy as np
    worker, model = _worker_model()
    start = time.monotonic()
    names = _names(out_dir, number)
    fingerprint = model.fingerprint
    old = _read_entry(out_dir, number)
    if _reusable(out_dir, old, number, digest, len(paths), fingerprint):
        old["reused"] = True
        return old

    dim = model.embedding_dim
    labels, blocks, skipped, stamps, times = [], [], [], [], []
    for first in range(0, len(paths), batch_size):
        images, batch_labels = [], []
        try:
            for p in paths[first:first + batch_size]:
                try:
                    stamp, data = _read_stamped(p)
                    images.append(Image.from_bytes(data))
                    batch_labels.append(p)
                    stamps.append(stamp)
                    times.append(_sync._capture_time(data))
                except _SKIPPABLE as e:
                    why = str(e)
                    skipped.append({"path": p, "error": why[len(p) + 2:] if why.startswith(p + ": ") else why})
            if images:
                blocks.append(model.encode_images(images))
                labels.extend(batch_labels)
        finally:
            for image in images:
                image.close()
    rows = np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)

    index_path = os.path.join(out_dir, names["index"])
    with Index(dim) as index:  # the model, each file's stamp and capture time recorded, as `jaclip index sync` does
        index.fingerprint = fingerprint
        index.save(index_path)  # atomic and synced by the library
    if labels:
        _sync._commit(index_path, [], rows, labels, stamps, times)
    with Index.load(index_path) as index:
        normalised = index.embeddings()
    files = {"index": _file_record(out_dir, names["index"])}
    meta = json.dumps(labels, ensure_ascii=False).encode("utf-8")
    files["metadata"] = _file_record(out_dir, names["metadata"],
                                     _write_atomic(os.path.join(out_dir, names["metadata"]), meta))
    if write_npy:
        files["npy"] = _file_record(out_dir, names["npy"],
                                    _write_atomic(os.path.join(out_dir, names["npy"]), _npy_bytes(normalised)))
    entry = {"format": FORMAT, "partition": number, "planned": len(paths), "planned_digest": digest,
             "rows": len(labels), "dim": dim, "model": fingerprint, "skipped": skipped, "files": files,
             "worker": {"address": worker.address, "host": socket.gethostname(), "pid": os.getpid()},
             "seconds": round(time.monotonic() - start, 3)}
    _write_atomic(os.path.join(out_dir, names["entry"]), json.dumps(entry, ensure_ascii=False, indent=1).encode())
    entry["reused"] = False
    return entry


# ---- the client side --------------------------------------------------------------------------------

class _Progress:
    """One line on stderr: rewritten in place on a terminal, else at most every `every` seconds."""

    def __init__(self, partitions, images, stream=sys.stderr, every=10.0):
        self.partitions, self.images, self.stream, self.every = partitions, images, stream, every
        self.tty = stream.isatty()
        self.done = self.reused = self.images_done = self.images_new = 0
        self.start = self.last = time.monotonic()

    def update(self, entry, final=False):
        if entry is not None:
            self.done += 1
            self.images_done += entry["planned"]
            if entry["reused"]:
                self.reused += 1
            else:
                self.images_new += entry["planned"]
        now = time.monotonic()
        if not (final or self.tty or now - self.last >= self.every):
            return
        self.last = now
        rate = self.images_new / max(now - self.start, 1e-9)
        left = self.images - self.images_done
        eta = f", {_duration(left / rate)} left" if rate > 0 and left else ""
        line = (f"jaclip.distributed: {self.done}/{self.partitions} partitions ({self.reused} reused), "
                f"{self.images_done}/{self.images} images, {rate:.1f} images/s{eta}")
        self.stream.write(("\r\033[K" + line + ("\n" if final else "")) if self.tty else line + "\n")
        self.stream.flush()


def _duration(seconds):
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@contextlib.contextmanager
def _run_lock(out_dir):
    """One run per output folder at a time."""
    import fcntl
    fd = os.open(os.path.join(out_dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{out_dir}: another jaclip.distributed run is using this folder") from None
        yield
    finally:
        os.close(fd)


def _tidy(out_dir, partitions):
    """Removes temporary files of killed writers and the shards of partitions beyond this plan."""
    numbered = re.compile(r"(\d+)\.(jci|npy|json)$")
    for sub in _SUBDIRS:
        d = os.path.join(out_dir, sub)
        for name in os.listdir(d):
            m = numbered.search(name)
            if ".tmp-" in name or (m and int(m.group(1)) >= partitions):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(d, name))


def local_cluster(workers=1, worker_threads=1):
    """A distributed.LocalCluster of `workers` processes on loopback, without a dashboard (its HTTP
    endpoint on a free port rather than 8787)."""
    from distributed import LocalCluster
    return LocalCluster(n_workers=workers, threads_per_worker=worker_threads, processes=True, host="127.0.0.1",
                        dashboard_address=None,
                        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})


@contextlib.contextmanager
def _client_for(client, scheduler, workers, worker_threads):
    if client is not None:
        yield client
        return
    from distributed import Client
    if scheduler:
        with Client(scheduler) as c:
            yield c
        return
    with local_cluster(workers, worker_threads) as cluster, Client(cluster) as c:
        yield c


def embed(inputs, out_dir, model, *, client=None, scheduler=None, workers=1, worker_threads=1,
          partition_size=256, batch_size=16, num_threads=None, device="cpu", precision=None, write_npy=True,
          progress=True, on_entry=None):
    """Embeds the images of inputs (files and folders) into shards in out_dir on a Dask cluster and
    writes out_dir/manifest.json; returns a summary dict.

    The cluster: `client` (a distributed.Client), else `scheduler` (an address), else a LocalCluster of
    `workers` processes with `worker_threads` threads each. model: a model file path valid on every
    worker. num_threads: libjaclip's cores per worker (None: all the worker's cores on a remote cluster,
    cores / workers on a LocalCluster). on_entry(entry) is called on the client as each shard completes.
    The summary's setup_seconds is the part of seconds spent starting the cluster and loading models.
    Partitions that fail after their retries raise PartitionError once the others are done."""
    from distributed import as_completed
    out_dir = os.path.abspath(out_dir)
    model = os.path.abspath(model)
    for sub in _SUBDIRS:
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    paths, name_skipped = list_images(inputs)
    parts = plan(paths, partition_size)
    if num_threads is None:
        num_threads = 0 if (client is not None or scheduler) else max(1, (os.cpu_count() or 1) // workers)
    started = time.monotonic()
    with _run_lock(out_dir), _client_for(client, scheduler, workers, worker_threads) as c:
        with contextlib.suppress(FileNotFoundError):  # the run is complete again only once it is rewritten
            os.unlink(os.path.join(out_dir, MANIFEST))
        c.register_worker_plugin(ModelPlugin(model, device, num_threads, precision), name=PLUGIN_NAME)
        prints = {f for f in c.run(_worker_fingerprint).values()}
        if not prints:
            raise RuntimeError("the cluster has no workers")
        if len(prints) != 1 or None in prints:
            raise RuntimeError(f"the workers loaded different models from {model}: {sorted(map(str, prints))}")
        setup_seconds = time.monotonic() - started
        run = uuid.uuid4().hex[:8]
        # Bounded in flight: the scheduler holds a few partitions per worker thread, not the whole list.
        limit = max(4, 2 * sum(c.nthreads().values()))
        todo = iter(parts)
        live = as_completed()
        pending = {}  # key -> (future, partition)

        def submit_next():
            part = next(todo, None)
            if part is not None:
                number, files, digest = part
                fut = c.submit(embed_partition, number, files, digest, out_dir, batch_size, write_npy,
                               key=f"jaclip-part-{number:05d}-{run}", retries=2)
                pending[fut.key] = (fut, number)
                live.add(fut)

        for _ in range(limit):
            submit_next()
        entries, failures = {}, []
        bar = _Progress(len(parts), len(paths)) if progress else None
        try:
            for fut in live:
                _, number = pending.pop(fut.key)
                try:
                    entry = fut.result()
                except Exception as e:  # the task's own exception, or KilledWorker after repeated deaths
                    failures.append((number, f"{type(e).__name__}: {e}"))
                    entry = None
                fut.release()
                if entry is not None:
                    entries[number] = entry
                    if on_entry:
                        on_entry(entry)
                if bar:
                    bar.update(entry)
                submit_next()
        except BaseException:
            c.cancel([f for f, _ in pending.values()])
            raise
        if bar:
            bar.update(None, final=True)
        if failures:
            raise PartitionError(sorted(failures))
        _tidy(out_dir, len(parts))
        ordered = [entries[n] for n in range(len(parts))]
        reused = sum(1 for e in ordered if e.pop("reused", False))
        manifest = {"format": FORMAT, "model": next(iter(prints)), "partitions": len(parts),
                    "partition_size": partition_size, "images": len(paths),
                    "rows": sum(e["rows"] for e in ordered),
                    "skipped": name_skipped + [s for e in ordered for s in e["skipped"]],
                    "shards": ordered}
        _write_atomic(os.path.join(out_dir, MANIFEST), json.dumps(manifest, ensure_ascii=False, indent=1).encode())
    seconds = time.monotonic() - started
    return {"partitions": len(parts), "reused": reused, "embedded": len(parts) - reused, "images": len(paths),
            "rows": manifest["rows"], "skipped": manifest["skipped"], "seconds": seconds,
            "setup_seconds": setup_seconds}


# ---- reading and merging ----------------------------------------------------------------------------

def _checked_shards(out_dir, verify):
    manifest = load_manifest(out_dir)
    for entry in manifest["shards"]:
        why = verify_entry(out_dir, entry) if verify else None
        if why:
            raise ManifestError(f"{out_dir}: shard {entry['partition']}: {why}")
    return manifest


def read_shards(out_dir, verify=True):
    """Yields (labels, embeddings float32 [rows, D]) of each shard of a completed run, in partition
    order (their concatenation is what merge() writes). verify: check each file's SHA-256 first."""
    manifest = _checked_shards(out_dir, verify)
    for entry in manifest["shards"]:
        with Index.load(inside_run(out_dir, entry["files"]["index"]["path"])) as index:
            yield index.labels(), index.embeddings()


def merge(out_dir, index_path, verify=True):
    """Merges the shards of a completed run into one index file (jaclip_index_merge, refusing duplicate
    labels) after checking each shard against the manifest; returns the number of rows."""
    manifest = _checked_shards(out_dir, verify)
    shards = [inside_run(out_dir, e["files"]["index"]["path"]) for e in manifest["shards"]]
    if not shards:
        raise _errors.InvalidArgumentError(f"{out_dir}: the run holds no shards", 1)
    Index.merge(index_path, shards, unique_labels=True)
    return manifest["rows"]


# ---- command line -----------------------------------------------------------------------------------

def _positive(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python3 -m jaclip.distributed",
        description="Embed image files and folders on a Dask cluster into shards (one model per worker); "
                    "a re-run skips finished shards.")
    ap.add_argument("paths", nargs="*", metavar="PATH", help="image files and folders (walked recursively)")
    ap.add_argument("--list", metavar="FILE", help="also embed the paths listed in FILE, one per line")
    ap.add_argument("--model", "-m", default=os.environ.get("JACLIP_MODEL"), help="model file (default: $JACLIP_MODEL)")
    ap.add_argument("--out", "-o", required=True, metavar="DIR", help="folder for the shards and manifest.json")
    ap.add_argument("--scheduler", metavar="ADDR", help="Dask scheduler address (default: a LocalCluster here)")
    ap.add_argument("--workers", type=_positive, default=1, help="LocalCluster worker processes (default 1)")
    ap.add_argument("--worker-threads", type=_positive, default=1, help="LocalCluster threads per worker (default 1)")
    ap.add_argument("--threads", type=_positive, default=None,
                    help="libjaclip cores per worker (default: all, or cores/workers on a LocalCluster)")
    ap.add_argument("--partition-size", type=_positive, default=256, help="images per shard (default 256)")
    ap.add_argument("--batch", type=_positive, default=16, help="images per model call (default 16)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    ap.add_argument("--precision", choices=("fp32", "bf16"), help="default: as stored in the model file")
    ap.add_argument("--no-npy", action="store_true", help="do not write img_emb/img_emb_N.npy")
    ap.add_argument("--merge", metavar="INDEX", help="then merge the shards into this index file")
    args = ap.parse_args(argv)
    if not args.model:
        ap.error("--model is required (or set JACLIP_MODEL)")
    inputs = list(args.paths)
    if args.list:
        with open(args.list, encoding="utf-8", errors="surrogateescape") as f:
            inputs += [line.rstrip("\n") for line in f if line.strip()]
    if not inputs:
        ap.error("no PATH given")
    try:
        summary = embed(inputs, args.out, args.model, scheduler=args.scheduler, workers=args.workers,
                        worker_threads=args.worker_threads, partition_size=args.partition_size,
                        batch_size=args.batch, num_threads=args.threads, device=args.device, precision=args.precision,
                        write_npy=not args.no_npy)
        for s in summary["skipped"]:
            print(f"jaclip.distributed: {s['path']}: skipped: {s['error']}", file=sys.stderr)
        print(f"jaclip.distributed: {args.out}: {summary['rows']} rows in {summary['partitions']} shards "
              f"({summary['reused']} reused), {len(summary['skipped'])} files skipped, in "
              f"{summary['seconds']:.1f} s", file=sys.stderr)
        if args.merge:
            rows = merge(args.out, args.merge)
            print(f"jaclip.distributed: {args.merge}: {rows} rows merged", file=sys.stderr)
    except KeyboardInterrupt:
        print("jaclip.distributed: interrupted; finished shards are kept, run the same command again",
              file=sys.stderr)
        return 130
    except (PartitionError, RuntimeError, OSError, _errors.Error) as e:
        print(f"jaclip.distributed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # Run the importable module, so that the tasks Dask ships name jaclip.distributed, not __main__.
    from jaclip.distributed import main as _main
    sys.exit(_main())
