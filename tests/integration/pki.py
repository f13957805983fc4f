"""A throwaway PKI made with the openssl command line (openssl ca), for tests
that need server certificates, client certificates in every state (good,
expired, not yet valid, revoked, unknown CA, bad signature) and a CRL."""

import os
import subprocess

_CA_CONF = """
[ ca ]
default_ca = edge_ca
[ edge_ca ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
default_crl_days = 7
[ anything ]
commonName = supplied
[ leaf ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
"""


def _run(args, cwd=None):
    result = subprocess.run(args, capture_output=True, timeout=60, cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(f"{args}: {result.stderr.decode(errors='replace')}")
    return result.stdout


class CertificateAuthority:
    """A CA directory under `parent`; issue() writes <name>.pem and <name>.key."""

    def __init__(self, parent, name):
        self.dir = os.path.join(parent, name)
        self.name = name
        os.makedirs(os.path.join(self.dir, "issued"), exist_ok=True)
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(self.dir, "crlnumber"), "w") as f:
            f.write("1000\n")
        self.conf = os.path.join(self.dir, "ca.cnf")
        with open(self.conf, "w") as f:
            f.write(_CA_CONF.format(dir=self.dir))
        self.key = os.path.join(self.dir, "ca.key")
        self.cert = os.path.join(self.dir, "ca.pem")
        _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", self.key, "-out", self.cert, "-days", "30", "-subj", f"/CN={name}"])

    def issue(self, name, cn, sans=None, start=None, end=None, days=2):
        """start/end: YYYYMMDDHHMMSSZ (openssl ca -startdate/-enddate)."""
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        pem = os.path.join(self.dir, f"{name}.pem")
        req = ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
               "-keyout", key, "-out", csr, "-subj", f"/CN={cn}"]
        if sans:
            req += ["-addext", "subjectAltName=" + ",".join(sans)]
        _run(req)
        args = ["openssl", "ca", "-batch", "-config", self.conf, "-cert", self.cert, "-keyfile", self.key,
                "-extensions", "leaf", "-in", csr, "-out", pem, "-notext"]
        args += ["-startdate", start] if start else []
        args += ["-enddate", end] if end else ["-days", str(days)]
        _run(args)
        return pem, key

    def revoke(self, pem):
        _run(["openssl", "ca", "-config", self.conf, "-cert", self.cert, "-keyfile", self.key, "-revoke", pem])

    def crl(self):
        path = os.path.join(self.dir, "ca.crl")
        _run(["openssl", "ca", "-config", self.conf, "-cert", self.cert, "-keyfile", self.key, "-gencrl", "-out", path])
        return path


def corrupt_signature(pem_in, pem_out):
    """The same certificate with its signature's last byte flipped."""
    der = _run(["openssl", "x509", "-in", pem_in, "-outform", "DER"])
    der = der[:-1] + bytes([der[-1] ^ 0x01])
    pem = subprocess.run(["openssl", "x509", "-inform", "DER", "-outform", "PEM"], input=der,
                         capture_output=True, timeout=30, check=True).stdout
    with open(pem_out, "wb") as f:
        f.write(pem)
    return pem_out
