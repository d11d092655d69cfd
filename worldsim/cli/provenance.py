"""worldsim provenance FILE: what a picture or video was made from, and whether it changed since it was signed.

Every MP4 and PNG that `sample`, `demo`, `eval`, the web app and `export-video` write carries a signed C2PA manifest
(worldsim/provenance.py): the IPTC digital source type (trainedAlgorithmicMedia: drawn by a trained model;
algorithmicMedia: rendered by an engine; compositeWithTrainedAlgorithmicMedia: both side by side), and what it was
made from (checkpoint and training-store digests, prompt, seed, sampler; or the store and episode). This command
reads the manifest, checks the signature and the hash of the file's bytes, and says what it found: "intact" (and
signed by this machine's worldsim root, or by a signer it does not know), "CHANGED AFTER SIGNING" (pixels or
bytes edited), or "no C2PA manifest". The signing keys are self-signed, generated on first use in
~/.config/worldsim/c2pa ($WORLDSIM_C2PA_DIR); see docs/provenance.md to sign with your own certificate.

Exit status: 0 when every file is intact, 1 when one is unsigned, changed or does not verify.

examples:
  worldsim provenance outputs/sample.mp4
  worldsim provenance path=[outputs/demo/side_by_side.mp4,outputs/episode_0.mp4] json=true
"""

from __future__ import annotations

import json
from dataclasses import asdict

from omegaconf import ListConfig


def main(raw) -> int:
    from worldsim.provenance import verify

    paths = list(raw.path) if isinstance(raw.path, ListConfig | list) else [raw.path]
    ok = True
    for p in paths:
        v = verify(str(p), trust_local=bool(raw.trust_local))
        ok &= v.intact
        print(json.dumps({**asdict(v), "tampered": v.tampered}) if raw.json else v.summary())
    return 0 if ok else 1
