"""Signed provenance (C2PA) for every picture and video worldsim writes, and the check that reads it back.

    sign(path, GENERATED, {"checkpoint_digest": ..., "stores": [...], "prompt": ..., "seed": 0})  # in place
    report = verify(path)   # Verdict: state, made by a model or an engine, what from, tampered or not

A C2PA manifest is embedded in the MP4 or PNG (`c2pa-python`, the Content Authenticity Initiative's SDK): a
`c2pa.actions` assertion whose `c2pa.created` action names the IPTC digital source type (`trainedAlgorithmicMedia`
for frames a trained model drew, `algorithmicMedia` for engine renders, `compositeWithTrainedAlgorithmicMedia` for
engine and model side by side) and an `org.worldsim.provenance` assertion with what it was made from (checkpoint
and store digests, prompt, seed, sampler settings). The manifest hashes the file's bytes: a file whose pixels were
changed after signing fails verification (`assertion.dataHash.mismatch`).

Keys: on first use a local root certificate and a signing certificate under it (ECDSA P-256, ES256) are generated
in `~/.config/worldsim/c2pa` (or `$WORLDSIM_C2PA_DIR`), the private keys readable by their owner only. They are
self-signed: anyone can make such a pair, so "trusted" below means "signed by this machine's worldsim root". Use
your own certificate chain (a CA's, for files you publish) with `$WORLDSIM_C2PA_CERT` (PEM chain, signer first)
and `$WORLDSIM_C2PA_KEY` (its PEM private key); `$WORLDSIM_C2PA_ALG` names its algorithm (default es256).
`$WORLDSIM_SIGN=0` turns signing off (the JSON provenance beside each file is still written).
"""

from __future__ import annotations

import datetime
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldsim.errors import InputError

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
GENERATED = "trainedAlgorithmicMedia"  # drawn by a trained model (sample, DreamEnv, the demo's dream)
RENDERED = "algorithmicMedia"  # rendered by an engine from its state (export-video of a store episode)
COMPOSITE = "compositeWithTrainedAlgorithmicMedia"  # engine frames beside model frames (side-by-side videos)
SOURCE_TYPES = (GENERATED, RENDERED, COMPOSITE)
LABEL = "org.worldsim.provenance"
MIME = {".mp4": "video/mp4", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_LOCK = threading.Lock()


def enabled() -> bool:
    return os.environ.get("WORLDSIM_SIGN", "1").strip().lower() not in ("0", "false", "no", "off")


def key_dir() -> Path:
    return Path(os.environ.get("WORLDSIM_C2PA_DIR") or Path.home() / ".config" / "worldsim" / "c2pa")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_keys(folder: Path | None = None) -> dict[str, Path]:
    """The local root certificate, the signing chain and its key, generated once (paths: root, chain, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = folder or key_dir()
    paths = {"root": folder / "root.pem", "chain": folder / "signer_chain.pem", "key": folder / "signer.key"}
    if all(p.exists() for p in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    pem = serialization.Encoding.PEM

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "worldsim (self-signed, local)")])

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not sign,
                             crl_sign=not sign, encipher_only=False, decipher_only=False)

    def cert(subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool) -> Any:
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
             .add_extension(usage(not ca), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if not ca:  # C2PA wants a signing purpose on the signer's certificate
            b = (b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                critical=False))
        return b.sign(issuer_key, hashes.SHA256())

    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = cert("worldsim local root", root_key, "worldsim local root", root_key, ca=True)
    signer = cert("worldsim signer", key, "worldsim local root", root_key, ca=False)
    _write_private(paths["key"], key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    paths["chain"].write_bytes(signer.public_bytes(pem) + root.public_bytes(pem))
    paths["root"].write_bytes(root.public_bytes(pem))  # last: its presence marks a complete set
    return paths


def _signer() -> Any:
    import c2pa

    cert, key = os.environ.get("WORLDSIM_C2PA_CERT"), os.environ.get("WORLDSIM_C2PA_KEY")
    if bool(cert) != bool(key):
        raise InputError("set both WORLDSIM_C2PA_CERT (PEM chain) and WORLDSIM_C2PA_KEY (PEM key), or neither")
    if not cert:
        try:
            paths = ensure_keys()
        except OSError as err:
            raise InputError(f"cannot make the signing keys in {key_dir()} ({err.strerror or err}); the file is "
                             f"written unsigned: set WORLDSIM_C2PA_DIR to a writable folder, or WORLDSIM_SIGN=0"
                             ) from err
        cert, key = str(paths["chain"]), str(paths["key"])
    try:
        chain, private = Path(cert).read_bytes(), Path(key).read_bytes()
    except OSError as err:
        raise InputError(f"cannot read the signing certificate or key: {err}") from err
    alg = os.environ.get("WORLDSIM_C2PA_ALG", "es256").lower()
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, chain, private, None))


def manifest(title: str, source_type: str, data: dict[str, Any]) -> dict[str, Any]:
    from worldsim import __version__

    if source_type not in SOURCE_TYPES:
        raise ValueError(f"unknown digital source type {source_type!r}")
    return {
        "claim_generator_info": [{"name": "worldsim", "version": __version__}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": IPTC + source_type,
                 "softwareAgent": {"name": "worldsim", "version": __version__}}]}},
            {"label": LABEL, "data": json.loads(json.dumps(data, default=str))},
        ],
    }


def sign(path: str | Path, source_type: str, data: dict[str, Any]) -> bool:
    """Embed a signed C2PA manifest in the MP4/PNG/JPEG at `path` (replaced atomically). False when signing is off
    or the format is not one worldsim signs; errors of our own (a bad key) raise."""
    path = Path(path)
    mime = MIME.get(path.suffix.lower())
    if not enabled() or mime is None:
        return False
    import c2pa

    tmp = path.with_name(path.stem + ".signing" + path.suffix)
    with _LOCK:  # one signer at a time (the web app signs from several threads)
        signer = _signer()
        try:
            with c2pa.Builder(manifest(path.name, source_type, data)) as builder, open(path, "rb") as src, \
                    open(tmp, "w+b") as dst:
                builder.sign(signer, mime, src, dst)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
            signer.close()
    return True


@dataclass
class Verdict:
    """What `verify` found in a file."""

    path: str
    signed: bool  # a C2PA manifest is present
    state: str = "unsigned"  # unsigned | Invalid | Valid (intact, signer not trusted here) | Trusted (intact, our root)
    intact: bool = False  # the manifest's hashes match the file's bytes and the signature verifies
    source_type: str = ""  # trainedAlgorithmicMedia | algorithmicMedia | composite... | "" (unknown)
    made_from: dict[str, Any] = field(default_factory=dict)  # the org.worldsim.provenance assertion
    generator: str = ""  # the claim generator (software and version)
    signer: str = ""  # the certificate's subject / issuer as the manifest reports it
    signed_at: str = ""
    problems: list[str] = field(default_factory=list)  # failure codes with their explanations

    @property
    def tampered(self) -> bool:
        return any("dataHash.mismatch" in p or "hashedURI.mismatch" in p or "bmffHash.mismatch" in p
                   for p in self.problems)

    def summary(self) -> str:
        if not self.signed:
            return f"{self.path}: no C2PA manifest (not signed, or its manifest was stripped)"
        kind = {GENERATED: "made by a trained model", RENDERED: "rendered by an engine",
                COMPOSITE: "engine frames beside a model's"}.get(self.source_type, self.source_type or "unknown")
        if self.tampered:
            head = "CHANGED AFTER SIGNING: its bytes no longer match the signed manifest"
        elif not self.intact:
            head = "manifest present but does not verify"
        else:
            head = "intact, " + ("signed by this machine's worldsim root" if self.state == "Trusted"
                                 else "signature valid, signer not in this machine's trust list")
        lines = [f"{self.path}: {head}", f"  source: {kind} ({IPTC}{self.source_type})" if self.source_type else "",
                 f"  generator: {self.generator}", f"  signer: {self.signer}" + (f", {self.signed_at}" if
                                                                                  self.signed_at else "")]
        for k, v in self.made_from.items():
            lines.append(f"  {k}: {v}")
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(x for x in lines if x)


def _context(trust_local: bool) -> Any:
    import c2pa

    if not trust_local:
        return None
    root = key_dir() / "root.pem"
    anchors = os.environ.get("WORLDSIM_C2PA_TRUST")  # extra anchors (PEM), e.g. the CA of your own chain
    pems = [p.read_text() for p in [root, Path(anchors) if anchors else None] if p is not None and p.exists()]
    if not pems:
        return None
    settings = c2pa.Settings.from_dict({"verify": {"verify_trust": True}, "trust": {"user_anchors": "".join(pems)}})
    return c2pa.Context(settings)


def verify(path: str | Path, trust_local: bool = True) -> Verdict:
    """Read and verify the C2PA manifest of a file. `trust_local`: this machine's worldsim root (and
    `$WORLDSIM_C2PA_TRUST`) count as trust anchors, so our own files read "Trusted"."""
    import c2pa

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    mime = MIME.get(path.suffix.lower())
    if mime is None:
        raise InputError(f"{path}: worldsim signs .mp4, .png and .jpg files; this is {path.suffix or 'no suffix'}")
    ctx = _context(trust_local)
    try:
        with open(path, "rb") as f:
            reader = c2pa.Reader.try_create(mime, f, context=ctx) if ctx else c2pa.Reader.try_create(mime, f)
            if reader is None:
                return Verdict(str(path), signed=False)
            with reader:
                state = reader.get_validation_state() or "Invalid"
                results = reader.get_validation_results() or {}
                active = reader.get_active_manifest() or {}
    except c2pa.C2paError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return Verdict(str(path), signed=True, state="Invalid", problems=[f"unreadable manifest: {first}"])
    v = Verdict(str(path), signed=True, state=state)
    failures = (results.get("activeManifest") or {}).get("failure", [])
    # an untrusted signer is not damage: without our root as an anchor it is the expected outcome
    v.problems = [f"{x.get('code')}: {x.get('explanation', '')}" for x in failures
                  if x.get("code") != "signingCredential.untrusted"]
    v.intact = not v.problems and state in ("Valid", "Trusted")
    for a in active.get("assertions", []):
        if a.get("label", "").startswith("c2pa.actions"):
            for act in a.get("data", {}).get("actions", []):
                if act.get("action") == "c2pa.created":
                    v.source_type = str(act.get("digitalSourceType", "")).removeprefix(IPTC)
        elif a.get("label") == LABEL:
            v.made_from = dict(a.get("data", {}))
    gen = active.get("claim_generator_info") or [{}]
    v.generator = " ".join(str(gen[0].get(k, "")) for k in ("name", "version")).strip()
    sig = active.get("signature_info") or {}
    v.signer = ", ".join(str(sig[k]) for k in ("common_name", "issuer") if sig.get(k))
    v.signed_at = str(sig.get("time") or "")
    return v
