"""The manifests of a Dask run (jaclip.distributed): reading them as untrusted input. A manifest whose
shape is wrong (not JSON, an entry without files, shards that are not a list) raises ManifestError,
and every file it names must lie inside the run folder (no absolute path, no '..', no symbolic link
leading out), so a merge never reads outside the run."""
import hashlib
import json
import os
import re

from . import _errors

FORMAT = 1
MANIFEST = "manifest.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(_errors.IndexFormatError):
    """A run's manifest (or a shard's entry) that is not what jaclip.distributed writes."""

    def __init__(self, message):
        super().__init__(message, 12)


def _int(value, minimum=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def inside_run(out_dir, rel):
    """The absolute path of rel inside out_dir; ManifestError if rel is absolute, climbs out with
    '..', or resolves (through symbolic links) to a place outside the run folder."""
    if not isinstance(rel, str) or not rel or "\0" in rel or os.path.isabs(rel) or ".." in rel.split(os.sep):
        raise ManifestError(f"{out_dir}: the manifest names {rel!r}, not a path inside the run folder")
    top = os.path.realpath(out_dir)
    path = os.path.realpath(os.path.join(top, rel))
    if os.path.commonpath([top, path]) != top:
        raise ManifestError(f"{out_dir}: the manifest's {rel!r} leads outside the run folder")
    return path


def check_entry(out_dir, entry, where="entry"):
    """Raises ManifestError unless entry has the shape a worker writes, its files inside out_dir."""
    if not isinstance(entry, dict):
        raise ManifestError(f"{out_dir}: {where} is a {type(entry).__name__}, not an object")
    if not _int(entry.get("partition")) or not _int(entry.get("rows")):
        raise ManifestError(f"{out_dir}: {where} lacks a partition number or a row count")
    files = entry.get("files")
    if not isinstance(files, dict) or not isinstance(files.get("index"), dict):
        raise ManifestError(f"{out_dir}: {where} has no 'files' object naming its index")
    for what, rec in files.items():
        if not (isinstance(rec, dict) and _int(rec.get("bytes")) and isinstance(rec.get("sha256"), str)
                and _SHA256.fullmatch(rec["sha256"])):
            raise ManifestError(f"{out_dir}: {where}: file {what!r} lacks its path, size or SHA-256")
        inside_run(out_dir, rec.get("path"))
    if not isinstance(entry.get("skipped", []), list):
        raise ManifestError(f"{out_dir}: {where}: 'skipped' is not a list")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_entry(out_dir, entry):
    """None if every file of a shard's entry is present with its size and SHA-256, else why not (also
    when the entry is malformed or names a file outside the run)."""
    try:
        check_entry(out_dir, entry)
    except ManifestError as e:
        return str(e)
    for what, rec in entry["files"].items():
        path = inside_run(out_dir, rec["path"])
        try:
            if os.path.getsize(path) != rec["bytes"]:
                return f"{rec['path']}: {os.path.getsize(path)} bytes, the manifest says {rec['bytes']}"
            if sha256_file(path) != rec["sha256"]:
                return f"{rec['path']}: SHA-256 differs from the manifest's"
        except OSError as e:
            return f"{rec['path']}: {e.strerror}"
    return None


def load_manifest(out_dir):
    """out_dir/manifest.json as a dict; OSError if the run has not completed (no manifest),
    ManifestError if it is not a manifest this module wrote (shape, format, paths)."""
    path = os.path.join(out_dir, MANIFEST)
    with open(path, "rb") as f:
        data = f.read()
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ManifestError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: a {type(manifest).__name__}, not a JSON object")
    if manifest.get("format") != FORMAT:
        raise ManifestError(f"{path}: format {manifest.get('format')!r}, this module reads {FORMAT}")
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise ManifestError(f"{path}: 'shards' is {type(shards).__name__}, not a list of entries")
    if not _int(manifest.get("rows")) or not isinstance(manifest.get("skipped", []), list):
        raise ManifestError(f"{path}: no row count, or 'skipped' is not a list")
    for i, entry in enumerate(shards):
        check_entry(out_dir, entry, f"shards[{i}]")
    if manifest["rows"] != sum(e["rows"] for e in shards):
        raise ManifestError(f"{path}: 'rows' is not the sum of its shards' rows")
    return manifest
