#!/usr/bin/env python3
"""Writes an OCI image layout (and a loadable tarball of it) from a root filesystem directory,
without a container daemon: one gzip layer, the image config, the manifest and index.json.

    oci_layout.py ROOTFS OUT_DIR --ref tokentrail:0.1.0 --created EPOCH [--label k=v ...]

Deterministic: entries sorted by name, every mtime set to --created (the commit's time, so two
builds of one commit give the same digests), owners numeric (root, except /var/lib/tokentrail
owned by the image user), gzip header without a time stamp.
OUT_DIR gets the layout (oci-layout, index.json, blobs/sha256/...) and OUT_DIR.tar, the same
files as one tar that `docker load` (25 and later) and `podman load` accept; its manifest.json
is the Docker archive index that older `docker load` reads.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import time

USER = 65532
# Paths (relative to the root) owned by the image user; everything else is root's, so the
# user cannot change the binary or its libraries even where the root filesystem is writable.
USER_OWNED = {"var/lib/tokentrail"}


def layer_tar(rootfs: str, created: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = []
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in dirnames + filenames:
                entries.append(os.path.relpath(os.path.join(dirpath, name), rootfs))
        for rel in sorted(entries):
            path = os.path.join(rootfs, rel)
            info = tar.gettarinfo(path, arcname=rel)
            info.mtime = created
            info.uid = info.gid = USER if rel in USER_OWNED else 0
            info.uname = info.gname = ""
            info.pax_headers = {}
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0, filename="") as g:
        g.write(data)
    return out.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("rootfs")
    ap.add_argument("out")
    ap.add_argument("--ref", required=True, help="name:tag recorded in index.json")
    ap.add_argument("--created", type=int, required=True, help="seconds since the epoch")
    ap.add_argument("--label", action="append", default=[])
    args = ap.parse_args()

    layer = layer_tar(args.rootfs, args.created)
    layer_gz = gz(layer)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(args.created))
    labels = dict(kv.split("=", 1) for kv in args.label)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {
            "User": f"{USER}:{USER}",
            "Entrypoint": ["/usr/local/bin/tokentrail"],
            "Cmd": ["--help"],
            "WorkingDir": "/var/lib/tokentrail",
            # In a container the loopback-only defaults of the example config would make the
            # probes and the collector unreachable; config files and variables still override.
            "Env": [
                "PATH=/usr/local/bin",
                "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
                "TOKENTRAIL__TELEMETRY__LISTEN=0.0.0.0:9464",
                "TOKENTRAIL__COLLECT__LISTEN=0.0.0.0:8080",
            ],
            "ExposedPorts": {"8080/tcp": {}, "9464/tcp": {}},
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [sha(layer)]},
        "history": [{"created": created, "created_by": "deploy/image/build"}],
    }
    config_b = canonical(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha(config_b),
            "size": len(config_b),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha(layer_gz),
                "size": len(layer_gz),
            }
        ],
        "annotations": {"org.opencontainers.image.created": created, **labels},
    }
    manifest_b = canonical(manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha(manifest_b),
                "size": len(manifest_b),
                "annotations": {
                    "org.opencontainers.image.ref.name": args.ref.split(":", 1)[1],
                    "io.containerd.image.name": args.ref,
                },
            }
        ],
    }

    shutil.rmtree(args.out, ignore_errors=True)
    blobs = os.path.join(args.out, "blobs", "sha256")
    os.makedirs(blobs)
    files = {"oci-layout": canonical({"imageLayoutVersion": "1.0.0"}), "index.json": canonical(index)}
    for blob in (layer_gz, config_b, manifest_b):
        files["blobs/sha256/" + sha(blob)[7:]] = blob
    files["manifest.json"] = canonical(
        [
            {
                "Config": "blobs/sha256/" + sha(config_b)[7:],
                "RepoTags": [args.ref],
                "Layers": ["blobs/sha256/" + sha(layer_gz)[7:]],
            }
        ]
    )
    for rel, data in files.items():
        with open(os.path.join(args.out, rel), "wb") as f:
            f.write(data)
    with tarfile.open(args.out.rstrip("/") + ".tar", "w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(files):
            info = tarfile.TarInfo(rel)
            info.size, info.mtime, info.mode = len(files[rel]), args.created, 0o644
            tar.addfile(info, io.BytesIO(files[rel]))
    print(json.dumps({
        "manifest": sha(manifest_b),
        "layer_gzip_bytes": len(layer_gz),
        "layer_tar_bytes": len(layer),
        "config": sha(config_b),
    }))


if __name__ == "__main__":
    main()
